//! The Store port over SQLite: one file, WAL, migrations embedded and applied on open.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite-backed store. Cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

crate::sql::sql_store!(SqliteStore, Sqlite);

impl SqliteStore {
    /// Opens (creating if missing) the database file and applies pending migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let opts = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        Self::connect(opts, 8, true).await
    }

    /// An in-memory database (one connection, so every query sees the same data).
    pub async fn in_memory() -> Result<Self> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(storage)?
            .foreign_keys(true);
        Self::connect(opts, 1, false).await
    }

    async fn connect(opts: SqliteConnectOptions, max: u32, recycle: bool) -> Result<Self> {
        let mut pool = SqlitePoolOptions::new().max_connections(max);
        if recycle {
            // A connection that may have been opened read-only is closed, not reused (an
            // in-memory database's one connection is its data: never recycled).
            pool = pool
                .before_acquire(|_, meta| {
                    Box::pin(async move { Ok(!crate::rows::readonly::is_stale(meta.age)) })
                })
                .after_release(|_, meta| {
                    Box::pin(async move { Ok(!crate::rows::readonly::is_stale(meta.age)) })
                });
        }
        let pool = pool.connect_with(opts).await.map_err(storage)?;
        MIGRATOR.run(&pool).await.map_err(storage)?;
        Ok(SqliteStore { pool })
    }

    /// Test support: makes every connection the pool holds now refuse writes as a file opened
    /// read-only does (`PRAGMA query_only`, SQLite's readonly error), so that recovery can be
    /// tested by a user who bypasses file permissions (root).
    #[doc(hidden)]
    pub async fn poison_connections_read_only_for_test(&self, n: usize) -> Result<()> {
        let mut held = Vec::new();
        for _ in 0..n {
            let mut c = self.pool.acquire().await.map_err(storage)?;
            sqlx::query("PRAGMA query_only = ON")
                .execute(&mut *c)
                .await
                .map_err(storage)?;
            held.push(c);
        }
        Ok(())
    }

    /// Writes a consistent copy of the database to `dest` (SQLite's VACUUM INTO).
    pub async fn backup_to(&self, dest: impl AsRef<Path>) -> Result<()> {
        let mut b = Builder::new("VACUUM INTO ");
        b.push_bind(dest.as_ref().to_string_lossy().into_owned());
        b.build().execute(&self.pool).await.map_err(storage)?;
        Ok(())
    }
}
