//! The Store implementation, written once and instantiated per database by `sql_store!`.
//! Every statement is built with QueryBuilder so placeholders fit the database; the SQL itself
//! is the dialect SQLite and PostgreSQL share.

/// Implements private row helpers and `Store` for `$store`, a struct with `pool: Pool<$db>`.
macro_rules! sql_store {
    ($store:ty, $db:ty) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use sqlx::{QueryBuilder, Row};

        use trainyard_core::metrics::EpochMetrics;
        use trainyard_core::ports::{Lease, RunFilter, RunKpi, RunPage, Store};
        use trainyard_core::registry::{DeployedEndpoint, RegisteredModel, RegistryEvent};
        use trainyard_core::run::{
            EndpointId, RegisteredModelId, RunId, ScheduleId, TrainingMetricsHistory, TrainingRun,
        };
        use trainyard_core::schedule::{ScheduleStatus, TrainingSchedule};
        use trainyard_core::{Error, Result, RunStatus, ValidationError};

        use $crate::rows::{db_error, enum_str, parse_ts, storage, ts, Col, Stored};

        type Builder<'a> = QueryBuilder<'a, $db>;

        fn push_col(b: &mut Builder<'_>, c: Col) {
            match c {
                Col::Text(v) => b.push_bind(v),
                Col::OptText(v) => b.push_bind(v),
                Col::Int(v) => b.push_bind(v),
                Col::OptInt(v) => b.push_bind(v),
            };
        }

        fn decode<T: Stored>(row: &<$db as sqlx::Database>::Row) -> Result<T> {
            let id: i64 = row.try_get("id").map_err(storage)?;
            let version: i64 = row.try_get("version").map_err(storage)?;
            let data: String = row.try_get("data").map_err(storage)?;
            let mut v: T = serde_json::from_str(&data)
                .map_err(|e| Error::Storage(format!("{} {id} has an unreadable row: {e}", T::ENTITY)))?;
            v.set_identity(id, version);
            Ok(v)
        }

        fn select<T: Stored>() -> Builder<'static> {
            Builder::new(format!("SELECT id, version, data FROM {}", T::TABLE))
        }

        /// `INSERT` of `v` with version 1, returning the new id.
        fn insert_query<T: Stored>(v: &T) -> Result<Builder<'static>> {
            let mut b = Builder::new(format!("INSERT INTO {} (", T::TABLE));
            let cols = v.columns()?;
            for (name, _) in &cols {
                b.push(name).push(", ");
            }
            b.push("version, data) VALUES (");
            for (_, c) in cols {
                push_col(&mut b, c);
                b.push(", ");
            }
            b.push_bind(1_i64).push(", ");
            b.push_bind(serde_json::to_string(v).map_err(storage)?);
            b.push(") RETURNING id");
            Ok(b)
        }

        /// WHERE clause of a run listing without the status filter (KPI counts use it as is).
        fn push_run_filter(b: &mut Builder<'_>, f: &RunFilter) -> Result<()> {
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
            if let Some(id) = f.schedule_id {
                b.push(" AND schedule_id = ").push_bind(id);
            }
            if f.with_step {
                b.push(" AND next_step IS NOT NULL");
            }
            if let Some(id) = &f.mlflow_run_id {
                b.push(" AND mlflow_run_id = ").push_bind(id.clone());
            }
            if let Some(s) = f.search.as_deref().filter(|s| !s.is_empty()) {
                // Wildcards the user typed are literal.
                let escaped = s.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                b.push(" AND LOWER(name) LIKE ")
                    .push_bind(format!("%{escaped}%"))
                    .push(" ESCAPE '\\'");
            }
            Ok(())
        }

        fn push_status_filter(b: &mut Builder<'_>, statuses: &[RunStatus]) {
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

        impl $store {
            async fn get<T: Stored>(&self, id: i64) -> Result<T> {
                let mut b = select::<T>();
                b.push(" WHERE id = ").push_bind(id);
                let row = b
                    .build()
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(storage)?
                    .ok_or_else(|| Error::not_found(T::ENTITY, id))?;
                decode(&row)
            }

            async fn list<T: Stored>(&self, filter: Option<(&str, Col)>) -> Result<Vec<T>> {
                let mut b = select::<T>();
                if let Some((col, v)) = filter {
                    b.push(format!(" WHERE {col} = "));
                    push_col(&mut b, v);
                }
                b.push(" ORDER BY id");
                let rows = b.build().fetch_all(&self.pool).await.map_err(storage)?;
                rows.iter().map(decode).collect()
            }

            async fn insert<T: Stored>(&self, v: &T) -> Result<T> {
                let mut out = v.clone();
                out.set_identity(0, 1);
                let id: i64 = insert_query(&out)?
                    .build_query_scalar()
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| db_error(e, T::ENTITY))?;
                out.set_identity(id, 1);
                Ok(out)
            }

            /// Writes `v` if the stored version equals `v`'s; returns it with the next version.
            async fn update<T: Stored>(&self, v: &T) -> Result<T> {
                let (id, version) = v.identity();
                let mut out = v.clone();
                out.set_identity(id, version + 1);
                let mut b = Builder::new(format!("UPDATE {} SET ", T::TABLE));
                for (name, c) in out.columns()? {
                    b.push(name).push(" = ");
                    push_col(&mut b, c);
                    b.push(", ");
                }
                b.push("version = version + 1, data = ");
                b.push_bind(serde_json::to_string(&out).map_err(storage)?);
                b.push(" WHERE id = ").push_bind(id);
                b.push(" AND version = ").push_bind(version);
                let done = b.build().execute(&self.pool).await.map_err(|e| db_error(e, T::ENTITY))?;
                if done.rows_affected() == 1 {
                    return Ok(out);
                }
                let mut q = Builder::new(format!("SELECT version FROM {} WHERE id = ", T::TABLE));
                q.push_bind(id);
                let current: Option<i64> =
                    q.build_query_scalar().fetch_optional(&self.pool).await.map_err(storage)?;
                Err(match current {
                    None => Error::not_found(T::ENTITY, id),
                    Some(now) => Error::Conflict(format!(
                        "{} {id} was changed by someone else (you read version {version}, it is now {now}); reload and retry",
                        T::ENTITY
                    )),
                })
            }

            async fn delete<T: Stored>(&self, id: i64) -> Result<()> {
                let mut b = Builder::new(format!("DELETE FROM {} WHERE id = ", T::TABLE));
                b.push_bind(id);
                let done = b.build().execute(&self.pool).await.map_err(storage)?;
                if done.rows_affected() == 0 {
                    return Err(Error::not_found(T::ENTITY, id));
                }
                Ok(())
            }

            /// The schema version applied (the newest migration).
            pub async fn schema_version(&self) -> Result<i64> {
                let v: Option<i64> = Builder::new("SELECT MAX(version) FROM _sqlx_migrations")
                    .build_query_scalar()
                    .fetch_one(&self.pool)
                    .await
                    .map_err(storage)?;
                Ok(v.unwrap_or(0))
            }
        }

        #[async_trait]
        impl Store for $store {
            async fn insert_run(&self, run: &TrainingRun) -> Result<TrainingRun> {
                // The counter bump is the transaction's first statement, so it takes the write
                // lock at once: concurrent creates queue and get consecutive numbers. A failed
                // insert rolls the counter back, so numbers have no gaps.
                let mut tx = self.pool.begin().await.map_err(storage)?;
                let mut bump = Builder::new("INSERT INTO run_counters (ml_model, last_run_number) VALUES (");
                bump.push_bind(run.ml_model.clone()).push(", 1) ON CONFLICT (ml_model) DO UPDATE SET last_run_number = run_counters.last_run_number + 1 RETURNING last_run_number");
                let number: i64 = bump.build_query_scalar().fetch_one(&mut *tx).await.map_err(storage)?;
                let mut out = run.clone();
                out.run_number = u32::try_from(number).map_err(storage)?;
                out.set_identity(0, 1);
                let id: i64 = insert_query(&out)?
                    .build_query_scalar()
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| db_error(e, "training run"))?;
                out.set_identity(id, 1);
                // The JSON copy carries the id the database just chose.
                let mut fix = Builder::new("UPDATE training_runs SET data = ");
                fix.push_bind(serde_json::to_string(&out).map_err(storage)?)
                    .push(" WHERE id = ")
                    .push_bind(id);
                fix.build().execute(&mut *tx).await.map_err(storage)?;
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
                    return Err(Error::Validation(ValidationError::field(
                        "page",
                        "page starts at 1 and page_size must be 1..=1000",
                    )));
                }
                let mut kpi_q = Builder::new("SELECT status, COUNT(*) AS n FROM training_runs");
                push_run_filter(&mut kpi_q, f)?;
                kpi_q.push(" GROUP BY status");
                let mut kpi = RunKpi::default();
                for row in kpi_q.build().fetch_all(&self.pool).await.map_err(storage)? {
                    let status: String = row.try_get("status").map_err(storage)?;
                    let n: i64 = row.try_get("n").map_err(storage)?;
                    let status = RunStatus::parse(&status)
                        .ok_or_else(|| Error::Storage(format!("unknown status {status:?} in training_runs")))?;
                    kpi.total += n as u64;
                    kpi.by_status.insert(status, n as u64);
                }
                let total = if f.statuses.is_empty() {
                    kpi.total
                } else {
                    f.statuses.iter().map(|s| kpi.count(*s)).sum()
                };
                let mut q = select::<TrainingRun>();
                push_run_filter(&mut q, f)?;
                push_status_filter(&mut q, &f.statuses);
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

            async fn run_for_fire(&self, schedule_id: ScheduleId, fire_at: DateTime<Utc>) -> Result<Option<TrainingRun>> {
                let mut b = select::<TrainingRun>();
                b.push(" WHERE schedule_id = ").push_bind(schedule_id);
                b.push(" AND scheduled_fire_at = ").push_bind(ts(fire_at));
                let row = b.build().fetch_optional(&self.pool).await.map_err(storage)?;
                row.as_ref().map(decode).transpose()
            }

            async fn record_epochs(&self, run_id: RunId, rows: &[EpochMetrics], at: DateTime<Utc>) -> Result<()> {
                let mut tx = self.pool.begin().await.map_err(storage)?;
                for m in rows {
                    let mut b = Builder::new(
                        "INSERT INTO training_metrics_history (training_run_id, epoch, recorded_at, data) VALUES (",
                    );
                    b.push_bind(run_id)
                        .push(", ")
                        .push_bind(i64::from(m.epoch))
                        .push(", ")
                        .push_bind(ts(at))
                        .push(", ")
                        .push_bind(serde_json::to_string(m).map_err(storage)?)
                        .push(") ON CONFLICT (training_run_id, epoch) DO UPDATE SET recorded_at = excluded.recorded_at, data = excluded.data");
                    b.build().execute(&mut *tx).await.map_err(|e| db_error(e, "training_run_id"))?;
                }
                tx.commit().await.map_err(storage)
            }

            async fn history(&self, run_id: RunId) -> Result<Vec<TrainingMetricsHistory>> {
                let mut b = Builder::new("SELECT recorded_at, data FROM training_metrics_history WHERE training_run_id = ");
                b.push_bind(run_id).push(" ORDER BY epoch");
                let rows = b.build().fetch_all(&self.pool).await.map_err(storage)?;
                rows.iter()
                    .map(|row| {
                        let data: String = row.try_get("data").map_err(storage)?;
                        let at: String = row.try_get("recorded_at").map_err(storage)?;
                        Ok(TrainingMetricsHistory {
                            training_run_id: run_id,
                            metrics: serde_json::from_str(&data).map_err(storage)?,
                            recorded_at: parse_ts(&at)?,
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

            async fn find_registered_model(&self, ml_model: &str, model_name: &str) -> Result<Option<RegisteredModel>> {
                let mut b = select::<RegisteredModel>();
                b.push(" WHERE ml_model = ").push_bind(ml_model.to_string());
                b.push(" AND model_name = ").push_bind(model_name.to_string());
                let row = b.build().fetch_optional(&self.pool).await.map_err(storage)?;
                row.as_ref().map(decode).transpose()
            }

            async fn update_registered_model(&self, model: &RegisteredModel) -> Result<RegisteredModel> {
                self.update(model).await
            }

            async fn list_registered_models(&self, ml_model: Option<&str>) -> Result<Vec<RegisteredModel>> {
                self.list(ml_model.map(|m| ("ml_model", Col::Text(m.into())))).await
            }

            async fn insert_schedule(&self, schedule: &TrainingSchedule) -> Result<TrainingSchedule> {
                match self.insert(schedule).await {
                    Err(Error::Conflict(_)) => {
                        let existing = self.schedule_for_model(schedule.registered_model_id).await?;
                        Err(Error::Conflict(match existing {
                            Some(s) => format!(
                                "registered model {} already has schedule {} ({:?})",
                                schedule.registered_model_id, s.id, s.name
                            ),
                            None => format!("registered model {} already has a schedule", schedule.registered_model_id),
                        }))
                    }
                    other => other,
                }
            }

            async fn get_schedule(&self, id: ScheduleId) -> Result<TrainingSchedule> {
                self.get(id).await
            }

            async fn schedule_for_model(&self, id: RegisteredModelId) -> Result<Option<TrainingSchedule>> {
                Ok(self.list(Some(("registered_model_id", Col::Int(id)))).await?.pop())
            }

            async fn update_schedule(&self, schedule: &TrainingSchedule) -> Result<TrainingSchedule> {
                self.update(schedule).await
            }

            async fn delete_schedule(&self, id: ScheduleId) -> Result<()> {
                self.delete::<TrainingSchedule>(id).await
            }

            async fn list_schedules(&self, ml_model: Option<&str>) -> Result<Vec<TrainingSchedule>> {
                self.list(ml_model.map(|m| ("ml_model", Col::Text(m.into())))).await
            }

            async fn due_schedules(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<TrainingSchedule>> {
                let mut b = select::<TrainingSchedule>();
                b.push(" WHERE status = ").push_bind(enum_str(&ScheduleStatus::Active)?);
                b.push(" AND next_run_at IS NOT NULL AND next_run_at <= ").push_bind(ts(now));
                b.push(" ORDER BY next_run_at, id LIMIT ").push_bind(i64::from(limit));
                let rows = b.build().fetch_all(&self.pool).await.map_err(storage)?;
                rows.iter().map(decode).collect()
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

            async fn list_endpoints(&self, registered_model_id: Option<RegisteredModelId>) -> Result<Vec<DeployedEndpoint>> {
                self.list(registered_model_id.map(|id| ("registered_model_id", Col::Int(id)))).await
            }

            async fn insert_registry_event(&self, event: &RegistryEvent) -> Result<RegistryEvent> {
                self.insert(event).await
            }

            async fn registry_events(&self, id: RegisteredModelId) -> Result<Vec<RegistryEvent>> {
                self.list(Some(("registered_model_id", Col::Int(id)))).await
            }

            async fn acquire_lease(&self, key: &str, owner: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool> {
                // One statement: the row is created, or taken over only when it is ours or has
                // expired; a lease held by someone else makes the upsert change no row. Both
                // databases serialize conflicting upserts on the primary key.
                let mut b = Builder::new("INSERT INTO leases (lease_key, owner, expires_at) VALUES (");
                b.push_bind(key.to_string()).push(", ");
                b.push_bind(owner.to_string()).push(", ");
                b.push_bind(ts(until));
                b.push(") ON CONFLICT (lease_key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at");
                b.push(" WHERE leases.owner = excluded.owner OR leases.expires_at <= ");
                b.push_bind(ts(now));
                let done = b.build().execute(&self.pool).await.map_err(storage)?;
                Ok(done.rows_affected() == 1)
            }

            async fn release_lease(&self, key: &str, owner: &str) -> Result<()> {
                let mut b = Builder::new("DELETE FROM leases WHERE lease_key = ");
                b.push_bind(key.to_string());
                b.push(" AND owner = ").push_bind(owner.to_string());
                b.build().execute(&self.pool).await.map_err(storage)?;
                Ok(())
            }

            async fn live_leases(&self, prefix: &str, now: DateTime<Utc>) -> Result<Vec<Lease>> {
                let escaped = prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                let mut b = Builder::new("SELECT lease_key, owner, expires_at FROM leases WHERE lease_key LIKE ");
                b.push_bind(format!("{escaped}%")).push(" ESCAPE '\\'");
                b.push(" AND expires_at > ").push_bind(ts(now));
                b.push(" ORDER BY lease_key");
                let rows = b.build().fetch_all(&self.pool).await.map_err(storage)?;
                rows.iter()
                    .map(|row| {
                        let expires: String = row.try_get("expires_at").map_err(storage)?;
                        Ok(Lease {
                            key: row.try_get("lease_key").map_err(storage)?,
                            owner: row.try_get("owner").map_err(storage)?,
                            expires_at: parse_ts(&expires)?,
                        })
                    })
                    .collect()
            }
        }
    };
}

pub(crate) use sql_store;
