-- trainyard schema v1. Each entity keeps its full JSON in `data`; the columns beside it are
-- what queries filter, join and constrain on. `version` is the optimistic-concurrency counter.

CREATE TABLE registered_models (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ml_model    TEXT    NOT NULL,
    model_name  TEXT    NOT NULL,
    model_type  TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    data        TEXT    NOT NULL,
    UNIQUE (ml_model, model_name)
);

-- Last run_number handed out per model endpoint; bumped in the same transaction as the insert.
CREATE TABLE run_counters (
    ml_model         TEXT    PRIMARY KEY,
    last_run_number  INTEGER NOT NULL
);

CREATE TABLE training_runs (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    ml_model             TEXT    NOT NULL,
    run_number           INTEGER NOT NULL,
    name                 TEXT    NOT NULL,
    status               TEXT    NOT NULL,
    model_type           TEXT    NOT NULL,
    registered_model_id  INTEGER REFERENCES registered_models (id) ON DELETE SET NULL,
    created_at           TEXT    NOT NULL,
    version              INTEGER NOT NULL,
    data                 TEXT    NOT NULL,
    UNIQUE (ml_model, run_number)
);
CREATE INDEX training_runs_status ON training_runs (status);
CREATE INDEX training_runs_registered_model ON training_runs (registered_model_id);

CREATE TABLE training_metrics_history (
    training_run_id  INTEGER NOT NULL REFERENCES training_runs (id) ON DELETE CASCADE,
    epoch            INTEGER NOT NULL,
    recorded_at      TEXT    NOT NULL,
    data             TEXT    NOT NULL,
    PRIMARY KEY (training_run_id, epoch)
);

-- UNIQUE registered_model_id: at most one schedule per registered model.
CREATE TABLE training_schedules (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    registered_model_id  INTEGER NOT NULL UNIQUE REFERENCES registered_models (id) ON DELETE CASCADE,
    ml_model             TEXT    NOT NULL,
    status               TEXT    NOT NULL,
    next_run_at          TEXT,
    version              INTEGER NOT NULL,
    data                 TEXT    NOT NULL
);
CREATE INDEX training_schedules_due ON training_schedules (status, next_run_at);

CREATE TABLE deployed_endpoints (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    registered_model_id  INTEGER NOT NULL REFERENCES registered_models (id) ON DELETE CASCADE,
    service_name         TEXT    NOT NULL UNIQUE,
    is_active            INTEGER NOT NULL,
    version              INTEGER NOT NULL,
    data                 TEXT    NOT NULL
);
