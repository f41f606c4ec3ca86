-- Append-only history of aliases (production, staging, ...) and of which version each endpoint
-- served; the newest event of a name is its current state.
CREATE TABLE registry_events (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    registered_model_id  INTEGER NOT NULL REFERENCES registered_models (id) ON DELETE CASCADE,
    version              INTEGER NOT NULL,
    data                 TEXT    NOT NULL
);
CREATE INDEX registry_events_model ON registry_events (registered_model_id, id);
