-- The control plane (DESIGN.md "Control plane"): each run's due step as an indexed column, so
-- servers find their work without reading every run, and leases that say who does it.
ALTER TABLE training_runs ADD COLUMN next_step TEXT;
CREATE INDEX training_runs_next_step ON training_runs (next_step) WHERE next_step IS NOT NULL;
CREATE TABLE leases (
    lease_key   TEXT COLLATE "C" PRIMARY KEY,
    owner       TEXT NOT NULL,
    expires_at  TEXT COLLATE "C" NOT NULL
);
