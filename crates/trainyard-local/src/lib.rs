//! trainyard-local: the embedded backends that run everything on one machine.
//!
//! Owns the durable in-process scheduler ([`EmbeddedScheduler`]): it fires due schedules from
//! the Store, so its state survives restarts and several scheduler processes can share one
//! database without firing anything twice.

mod scheduler;

pub use scheduler::{EmbeddedScheduler, SchedulerConfig, TickReport};
