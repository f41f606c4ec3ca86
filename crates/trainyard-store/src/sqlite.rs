//! The Store port over SQLite (sqlx, WAL, migrations embedded and applied on open).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use trainyard_core::metrics::EpochMetrics;
use trainyard_core::ports::{RunFilter, RunKpi, RunPage, Store};
use trainyard_core::registry::{DeployedEndpoint, RegisteredModel};
use trainyard_core::run::{
    EndpointId, RegisteredModelId, RunId, ScheduleId, TrainingMetricsHistory, TrainingRun,
};
use trainyard_core::schedule::TrainingSchedule;
use trainyard_core::{Error, Result, RunStatus};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite-backed store. Cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn storage(e: impl std::fmt::Display) -> Error {
    Error::Storage(e.to_string())
}

/// Maps constraint violations to the domain's kinds; everything else is a storage error.
fn db_error(e: sqlx::Error, what: &str) -> Error {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return Error::Conflict(format!("{what} already exists ({})", db.message()));
        }
        if db.is_foreign_key_violation() {
            return Error::Validation(trainyard_core::ValidationError::field(
                what,
                "refers to a record that does not exist",
            ));
        }
    }
    storage(e)
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn enum_str<T: Serialize>(v: &T) -> Result<String> {
    match serde_json::to_value(v).map_err(storage)? {
        serde_json::Value::String(s) => Ok(s),
        other => Err(Error::Storage(format!(
            "expected a string enum, got {other}"
        ))),
    }
}

/// An entity stored as JSON with `id` and `version` columns beside it.
trait Stored: Serialize + DeserializeOwned + Send + Sync {
    const TABLE: &'static str;
    const ENTITY: &'static str;
    fn identity(&self) -> (i64, i64);
    fn set_identity(&mut self, id: i64, version: i64);
    /// The indexed columns besides id/version/data, as (name, value).
    fn columns(&self) -> Result<Vec<(&'static str, Col)>>;
}

/// A column value to bind.
enum Col {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
}

fn push_col(b: &mut QueryBuilder<'_, Sqlite>, c: Col) {
    match c {
        Col::Text(v) => b.push_bind(v),
        Col::OptText(v) => b.push_bind(v),
        Col::Int(v) => b.push_bind(v),
        Col::OptInt(v) => b.push_bind(v),
    };
}

impl Stored for TrainingRun {
    const TABLE: &'static str = "training_runs";
    const ENTITY: &'static str = "training run";
    fn identity(&self) -> (i64, i64) {
        (self.id, self.version)
    }
    fn set_identity(&mut self, id: i64, version: i64) {
        self.id = id;
        self.version = version;
    }
    fn columns(&self) -> Result<Vec<(&'static str, Col)>> {
        Ok(vec![
            ("name", Col::Text(self.name.clone())),
            ("status", Col::Text(self.status.as_str().into())),
            ("model_type", Col::Text(enum_str(&self.model_type())?)),
            ("registered_model_id", Col::OptInt(self.registered_model_id)),
        ])
    }
}

impl Stored for RegisteredModel {
    const TABLE: &'static str = "registered_models";
    const ENTITY: &'static str = "registered model";
    fn identity(&self) -> (i64, i64) {
        (self.id, self.version)
    }
    fn set_identity(&mut self, id: i64, version: i64) {
        self.id = id;
        self.version = version;
    }
    fn columns(&self) -> Result<Vec<(&'static str, Col)>> {
        Ok(vec![
            ("ml_model", Col::Text(self.ml_model.clone())),
            ("model_name", Col::Text(self.model_name.clone())),
            ("model_type", Col::Text(enum_str(&self.model_type)?)),
        ])
    }
}

impl Stored for TrainingSchedule {
    const TABLE: &'static str = "training_schedules";
    const ENTITY: &'static str = "schedule";
    fn identity(&self) -> (i64, i64) {
        (self.id, self.version)
    }
    fn set_identity(&mut self, id: i64, version: i64) {
        self.id = id;
        self.version = version;
    }
    fn columns(&self) -> Result<Vec<(&'static str, Col)>> {
        Ok(vec![
            ("registered_model_id", Col::Int(self.registered_model_id)),
            ("ml_model", Col::Text(self.ml_model.clone())),
            ("status", Col::Text(enum_str(&self.status)?)),
            ("next_run_at", Col::OptText(self.next_run_at.map(ts))),
        ])
    }
}

impl Stored for DeployedEndpoint {
    const TABLE: &'static str = "deployed_endpoints";
    const ENTITY: &'static str = "endpoint";
    fn identity(&self) -> (i64, i64) {
        (self.id, self.version)
    }
    fn set_identity(&mut self, id: i64, version: i64) {
        self.id = id;
        self.version = version;
    }
    fn columns(&self) -> Result<Vec<(&'static str, Col)>> {
        Ok(vec![
            ("registered_model_id", Col::Int(self.registered_model_id)),
            ("service_name", Col::Text(self.service_name.clone())),
            ("is_active", Col::Int(i64::from(self.is_active))),
        ])
    }
}

fn decode<T: Stored>(row: &sqlx::sqlite::SqliteRow) -> Result<T> {
    let id: i64 = row.try_get("id").map_err(storage)?;
    let version: i64 = row.try_get("version").map_err(storage)?;
    let data: String = row.try_get("data").map_err(storage)?;
    let mut v: T = serde_json::from_str(&data)
        .map_err(|e| Error::Storage(format!("{} {id} has an unreadable row: {e}", T::ENTITY)))?;
    v.set_identity(id, version);
    Ok(v)
}

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
        Self::connect(opts, 8).await
    }

    /// An in-memory database (one connection, so every query sees the same data).
    pub async fn in_memory() -> Result<Self> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(storage)?
            .foreign_keys(true);
        Self::connect(opts, 1).await
    }

    async fn connect(opts: SqliteConnectOptions, max: u32) -> Result<Self> {
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .connect_with(opts)
            .await
            .map_err(storage)?;
        MIGRATOR.run(&pool).await.map_err(storage)?;
        Ok(SqliteStore { pool })
    }

    /// The schema version applied (the newest migration).
    pub async fn schema_version(&self) -> Result<i64> {
        let v: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&self.pool)
            .await
            .map_err(storage)?;
        Ok(v.unwrap_or(0))
    }

    /// Writes a consistent copy of the database to `dest` (SQLite's VACUUM INTO).
    pub async fn backup_to(&self, dest: impl AsRef<Path>) -> Result<()> {
        let dest = dest.as_ref().to_string_lossy().into_owned();
        sqlx::query("VACUUM INTO ?")
            .bind(dest)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(())
    }

    async fn get<T: Stored>(&self, id: i64) -> Result<T> {
        let sql = format!("SELECT id, version, data FROM {} WHERE id = ?", T::TABLE);
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?
            .ok_or_else(|| Error::not_found(T::ENTITY, id))?;
        decode(&row)
    }

    async fn list<T: Stored>(&self, filter_col: &str, value: Option<Col>) -> Result<Vec<T>> {
        let mut b =
            QueryBuilder::<Sqlite>::new(format!("SELECT id, version, data FROM {}", T::TABLE));
        if let Some(v) = value {
            b.push(format!(" WHERE {filter_col} = "));
            push_col(&mut b, v);
        }
        b.push(" ORDER BY id");
        let rows = b.build().fetch_all(&self.pool).await.map_err(storage)?;
        rows.iter().map(decode).collect()
    }

    /// Inserts `v` (its id ignored) with version 1.
    async fn insert<T: Stored + Clone>(&self, v: &T) -> Result<T> {
        let mut out = v.clone();
        out.set_identity(0, 1);
        let cols = out.columns()?;
        let mut b = QueryBuilder::<Sqlite>::new(format!("INSERT INTO {} (", T::TABLE));
        for (name, _) in &cols {
            b.push(name).push(", ");
        }
        b.push("version, data) VALUES (");
        for (_, c) in cols {
            push_col(&mut b, c);
            b.push(", ");
        }
        b.push_bind(1_i64).push(", ");
        b.push_bind(serde_json::to_string(&out).map_err(storage)?);
        b.push(") RETURNING id");
        let id: i64 = b
            .build_query_scalar()
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db_error(e, T::ENTITY))?;
        out.set_identity(id, 1);
        Ok(out)
    }

    /// Writes `v` if the stored version equals `v`'s; returns it with the next version.
    async fn update<T: Stored + Clone>(&self, v: &T) -> Result<T> {
        let (id, version) = v.identity();
        let mut out = v.clone();
        out.set_identity(id, version + 1);
        let mut b = QueryBuilder::<Sqlite>::new(format!("UPDATE {} SET ", T::TABLE));
        for (name, c) in out.columns()? {
            b.push(name).push(" = ");
            push_col(&mut b, c);
            b.push(", ");
        }
        b.push("version = version + 1, data = ");
        b.push_bind(serde_json::to_string(&out).map_err(storage)?);
        b.push(" WHERE id = ").push_bind(id);
        b.push(" AND version = ").push_bind(version);
        let done = b
            .build()
            .execute(&self.pool)
            .await
            .map_err(|e| db_error(e, T::ENTITY))?;
        if done.rows_affected() == 1 {
            return Ok(out);
        }
        let current: Option<i64> =
            sqlx::query_scalar(&format!("SELECT version FROM {} WHERE id = ?", T::TABLE))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(storage)?;
        Err(match current {
            None => Error::not_found(T::ENTITY, id),
            Some(now) => Error::Conflict(format!(
                "{} {id} was changed by someone else (you read version {version}, it is now {now}); reload and retry",
                T::ENTITY
            )),
        })
    }

    /// WHERE clause of a run listing, without the status filter (the KPI counts use it as is).
    fn push_run_filter(b: &mut QueryBuilder<'_, Sqlite>, f: &RunFilter) -> Result<()> {
        b.push(" WHERE 1 = 1");
        if let Some(m) = &f.ml_model {
            b.push(" AND ml_model = ").push_bind(m.clone());
        }
        if let Some(t) = &f.model_type {
            b.push(" AND model_type = ").push_bind(enum_str(t)?);
        }
        if let Some(id) = f.registered_model_id {
            b.push(" AND registered_model_id = ").push_bind(id);
        }
        if let Some(s) = f.search.as_deref().filter(|s| !s.is_empty()) {
            let escaped = s
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            b.push(" AND name LIKE ")
                .push_bind(format!("%{escaped}%"))
                .push(" ESCAPE '\\'");
        }
        Ok(())
    }

    fn push_status_filter(b: &mut QueryBuilder<'_, Sqlite>, statuses: &[RunStatus]) {
        if statuses.is_empty() {
            return;
        }
        b.push(" AND status IN (");
        let mut sep = b.separated(", ");
        for s in statuses {
            sep.push_bind(s.as_str());
        }
        b.push(")");
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_run(&self, run: &TrainingRun) -> Result<TrainingRun> {
        // The counter bump is the transaction's first statement, so it takes the write lock at
        // once: concurrent creates queue on busy_timeout and get consecutive numbers. A failed
        // insert rolls the counter back, so numbers have no gaps.
        let mut tx = self.pool.begin().await.map_err(storage)?;
        let number: i64 = sqlx::query_scalar(
            "INSERT INTO run_counters (ml_model, last_run_number) VALUES (?, 1) \
             ON CONFLICT (ml_model) DO UPDATE SET last_run_number = last_run_number + 1 \
             RETURNING last_run_number",
        )
        .bind(&run.ml_model)
        .fetch_one(&mut *tx)
        .await
        .map_err(storage)?;
        let mut out = run.clone();
        out.run_number = u32::try_from(number).map_err(storage)?;
        out.set_identity(0, 1);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO training_runs (ml_model, run_number, name, status, model_type, \
             registered_model_id, created_at, version, data) VALUES (?, ?, ?, ?, ?, ?, ?, 1, '{}') RETURNING id",
        )
        .bind(&out.ml_model)
        .bind(number)
        .bind(&out.name)
        .bind(out.status.as_str())
        .bind(enum_str(&out.model_type())?)
        .bind(out.registered_model_id)
        .bind(ts(out.created_at))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| db_error(e, "training run"))?;
        out.set_identity(id, 1);
        sqlx::query("UPDATE training_runs SET data = ? WHERE id = ?")
            .bind(serde_json::to_string(&out).map_err(storage)?)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(out)
    }

    async fn get_run(&self, id: RunId) -> Result<TrainingRun> {
        self.get(id).await
    }

    async fn update_run(&self, run: &TrainingRun) -> Result<TrainingRun> {
        self.update(run).await
    }

    async fn list_runs(&self, f: &RunFilter) -> Result<RunPage> {
        if f.page == 0 || f.page_size == 0 || f.page_size > 1000 {
            return Err(Error::Validation(trainyard_core::ValidationError::field(
                "page",
                "page starts at 1 and page_size must be 1..=1000",
            )));
        }
        let mut kpi_q =
            QueryBuilder::<Sqlite>::new("SELECT status, COUNT(*) AS n FROM training_runs");
        Self::push_run_filter(&mut kpi_q, f)?;
        kpi_q.push(" GROUP BY status");
        let mut kpi = RunKpi::default();
        for row in kpi_q.build().fetch_all(&self.pool).await.map_err(storage)? {
            let status: String = row.try_get("status").map_err(storage)?;
            let n: i64 = row.try_get("n").map_err(storage)?;
            let status = RunStatus::parse(&status).ok_or_else(|| {
                Error::Storage(format!("unknown status {status:?} in training_runs"))
            })?;
            kpi.total += n as u64;
            kpi.by_status.insert(status, n as u64);
        }
        let total = if f.statuses.is_empty() {
            kpi.total
        } else {
            f.statuses.iter().map(|s| kpi.count(*s)).sum()
        };
        let mut q = QueryBuilder::<Sqlite>::new("SELECT id, version, data FROM training_runs");
        Self::push_run_filter(&mut q, f)?;
        Self::push_status_filter(&mut q, &f.statuses);
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(f.page_size))
            .push(" OFFSET ")
            .push_bind(i64::from(f.page - 1) * i64::from(f.page_size));
        let rows = q.build().fetch_all(&self.pool).await.map_err(storage)?;
        Ok(RunPage {
            runs: rows.iter().map(decode).collect::<Result<_>>()?,
            total,
            page: f.page,
            page_size: f.page_size,
            kpi,
        })
    }

    async fn record_epochs(
        &self,
        run_id: RunId,
        rows: &[EpochMetrics],
        at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        for m in rows {
            sqlx::query(
                "INSERT INTO training_metrics_history (training_run_id, epoch, recorded_at, data) \
                 VALUES (?, ?, ?, ?) ON CONFLICT (training_run_id, epoch) \
                 DO UPDATE SET recorded_at = excluded.recorded_at, data = excluded.data",
            )
            .bind(run_id)
            .bind(i64::from(m.epoch))
            .bind(ts(at))
            .bind(serde_json::to_string(m).map_err(storage)?)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error(e, "training_run_id"))?;
        }
        tx.commit().await.map_err(storage)
    }

    async fn history(&self, run_id: RunId) -> Result<Vec<TrainingMetricsHistory>> {
        let rows = sqlx::query(
            "SELECT recorded_at, data FROM training_metrics_history WHERE training_run_id = ? ORDER BY epoch",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        rows.iter()
            .map(|row| {
                let data: String = row.try_get("data").map_err(storage)?;
                let at: String = row.try_get("recorded_at").map_err(storage)?;
                Ok(TrainingMetricsHistory {
                    training_run_id: run_id,
                    metrics: serde_json::from_str(&data).map_err(storage)?,
                    recorded_at: DateTime::parse_from_rfc3339(&at)
                        .map_err(storage)?
                        .with_timezone(&Utc),
                })
            })
            .collect()
    }

    async fn insert_registered_model(&self, model: &RegisteredModel) -> Result<RegisteredModel> {
        self.insert(model).await
    }

    async fn get_registered_model(&self, id: RegisteredModelId) -> Result<RegisteredModel> {
        self.get(id).await
    }

    async fn find_registered_model(
        &self,
        ml_model: &str,
        model_name: &str,
    ) -> Result<Option<RegisteredModel>> {
        let row = sqlx::query(
            "SELECT id, version, data FROM registered_models WHERE ml_model = ? AND model_name = ?",
        )
        .bind(ml_model)
        .bind(model_name)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        row.as_ref().map(decode).transpose()
    }

    async fn update_registered_model(&self, model: &RegisteredModel) -> Result<RegisteredModel> {
        self.update(model).await
    }

    async fn list_registered_models(&self, ml_model: Option<&str>) -> Result<Vec<RegisteredModel>> {
        self.list("ml_model", ml_model.map(|m| Col::Text(m.into())))
            .await
    }

    async fn insert_schedule(&self, schedule: &TrainingSchedule) -> Result<TrainingSchedule> {
        match self.insert(schedule).await {
            Err(Error::Conflict(_)) => {
                let existing = self
                    .schedule_for_model(schedule.registered_model_id)
                    .await?;
                Err(Error::Conflict(match existing {
                    Some(s) => format!(
                        "registered model {} already has schedule {} ({:?})",
                        schedule.registered_model_id, s.id, s.name
                    ),
                    None => format!(
                        "registered model {} already has a schedule",
                        schedule.registered_model_id
                    ),
                }))
            }
            other => other,
        }
    }

    async fn get_schedule(&self, id: ScheduleId) -> Result<TrainingSchedule> {
        self.get(id).await
    }

    async fn schedule_for_model(&self, id: RegisteredModelId) -> Result<Option<TrainingSchedule>> {
        Ok(self
            .list("registered_model_id", Some(Col::Int(id)))
            .await?
            .pop())
    }

    async fn update_schedule(&self, schedule: &TrainingSchedule) -> Result<TrainingSchedule> {
        self.update(schedule).await
    }

    async fn delete_schedule(&self, id: ScheduleId) -> Result<()> {
        let done = sqlx::query("DELETE FROM training_schedules WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("schedule", id));
        }
        Ok(())
    }

    async fn list_schedules(&self, ml_model: Option<&str>) -> Result<Vec<TrainingSchedule>> {
        self.list("ml_model", ml_model.map(|m| Col::Text(m.into())))
            .await
    }

    async fn insert_endpoint(&self, endpoint: &DeployedEndpoint) -> Result<DeployedEndpoint> {
        self.insert(endpoint).await
    }

    async fn get_endpoint(&self, id: EndpointId) -> Result<DeployedEndpoint> {
        self.get(id).await
    }

    async fn update_endpoint(&self, endpoint: &DeployedEndpoint) -> Result<DeployedEndpoint> {
        self.update(endpoint).await
    }

    async fn list_endpoints(
        &self,
        registered_model_id: Option<RegisteredModelId>,
    ) -> Result<Vec<DeployedEndpoint>> {
        self.list("registered_model_id", registered_model_id.map(Col::Int))
            .await
    }
}
