//! trainyard-store: persistence for trainyard.
//!
//! Owns the database schemas, their migrations, and the implementations of
//! [`trainyard_core::ports::Store`]: [`SqliteStore`], the embedded default (one file, WAL), and
//! [`PostgresStore`], for several service instances sharing one database. Both are the same
//! code (`sql.rs`) instantiated per database.

mod postgres;
mod rows;
mod sql;
mod sqlite;

pub use postgres::{create_database, PostgresStore};
pub use sqlite::SqliteStore;

use std::sync::Arc;

use trainyard_core::ports::Store;
use trainyard_core::Result;

/// Opens a store from a URL: `postgres://...`/`postgresql://...`, or `sqlite://PATH` / a path.
pub async fn open_url(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else {
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        Ok(Arc::new(SqliteStore::open(path).await?))
    }
}
