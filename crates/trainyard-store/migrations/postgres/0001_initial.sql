-- trainyard schema for PostgreSQL: the same tables as SQLite's 0001 + 0002. Timestamps are
-- RFC 3339 UTC text with a fixed width, compared in the "C" collation so text order is time order.

CREATE TABLE registered_models (
    id          BIGSERIAL PRIMARY KEY,
    ml_model    TEXT   NOT NULL,
    model_name  TEXT   NOT NULL,
    model_type  TEXT   NOT NULL,
    version     BIGINT NOT NULL,
    data        TEXT   NOT NULL,
    UNIQUE (ml_model, model_name)
);

CREATE TABLE run_counters (
    ml_model         TEXT   PRIMARY KEY,
    last_run_number  BIGINT NOT NULL
);

CREATE TABLE training_runs (
    id                   BIGSERIAL PRIMARY KEY,
    ml_model             TEXT   NOT NULL,
    run_number           BIGINT NOT NULL,
    name                 TEXT   NOT NULL,
    status               TEXT   NOT NULL,
    model_type           TEXT   NOT NULL,
    registered_model_id  BIGINT REFERENCES registered_models (id) ON DELETE SET NULL,
    created_at           TEXT   COLLATE "C" NOT NULL,
    version              BIGINT NOT NULL,
    data                 TEXT   NOT NULL,
    schedule_id          BIGINT,
    scheduled_fire_at    TEXT   COLLATE "C",
    UNIQUE (ml_model, run_number)
);
CREATE INDEX training_runs_status ON training_runs (status);
CREATE INDEX training_runs_registered_model ON training_runs (registered_model_id);
CREATE UNIQUE INDEX training_runs_schedule_fire ON training_runs (schedule_id, scheduled_fire_at);

CREATE TABLE training_metrics_history (
    training_run_id  BIGINT NOT NULL REFERENCES training_runs (id) ON DELETE CASCADE,
    epoch            BIGINT NOT NULL,
    recorded_at      TEXT   NOT NULL,
    data             TEXT   NOT NULL,
    PRIMARY KEY (training_run_id, epoch)
);

CREATE TABLE training_schedules (
    id                   BIGSERIAL PRIMARY KEY,
    registered_model_id  BIGINT NOT NULL UNIQUE REFERENCES registered_models (id) ON DELETE CASCADE,
    ml_model             TEXT   NOT NULL,
    status               TEXT   NOT NULL,
    next_run_at          TEXT   COLLATE "C",
    version              BIGINT NOT NULL,
    data                 TEXT   NOT NULL
);
CREATE INDEX training_schedules_due ON training_schedules (status, next_run_at);

CREATE TABLE deployed_endpoints (
    id                   BIGSERIAL PRIMARY KEY,
    registered_model_id  BIGINT NOT NULL REFERENCES registered_models (id) ON DELETE CASCADE,
    service_name         TEXT   NOT NULL UNIQUE,
    is_active            BIGINT NOT NULL,
    version              BIGINT NOT NULL,
    data                 TEXT   NOT NULL
);
