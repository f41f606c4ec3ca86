//! The Store port over PostgreSQL, for several service instances sharing one database.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// PostgreSQL-backed store. Cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
}

crate::sql::sql_store!(PostgresStore, Postgres);

impl PostgresStore {
    /// Connects (e.g. `postgres://user@127.0.0.1:5432/db`) and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let opts: PgConnectOptions = url.parse().map_err(|e| {
            Error::Validation(ValidationError::field("postgres url", format!("{e}")))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await
            .map_err(storage)?;
        MIGRATOR.run(&pool).await.map_err(storage)?;
        Ok(PostgresStore { pool })
    }
}
