//! trainyard-store: persistence for trainyard.
//!
//! Owns the database schema, its migrations, and the implementations of
//! [`trainyard_core::ports::Store`]: [`SqliteStore`], the embedded default (one file, WAL).

mod sqlite;

pub use sqlite::SqliteStore;
