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

/// Creates an empty database `name` on the server of `admin_url` (a URL ending in
/// `/DATABASE`) and returns the URL of the new one: scratch databases for tests and tools.
pub async fn create_database(admin_url: &str, name: &str) -> Result<String> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(Error::Validation(ValidationError::field(
            "database name",
            "lowercase letters, digits and underscores only",
        )));
    }
    let (base, _) = admin_url.rsplit_once('/').ok_or_else(|| {
        Error::Validation(ValidationError::field(
            "postgres url",
            "must end with /DATABASE",
        ))
    })?;
    let pool = PgPool::connect(admin_url).await.map_err(storage)?;
    let created = sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await;
    pool.close().await;
    created.map_err(storage)?;
    Ok(format!("{base}/{name}"))
}
