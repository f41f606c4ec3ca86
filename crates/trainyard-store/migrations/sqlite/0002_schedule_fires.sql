-- A scheduled run remembers which schedule fired it and for which fire time; the pair is
-- unique, which is what makes a fire create at most one run across processes and restarts.
ALTER TABLE training_runs ADD COLUMN schedule_id INTEGER;
ALTER TABLE training_runs ADD COLUMN scheduled_fire_at TEXT;
CREATE UNIQUE INDEX training_runs_schedule_fire ON training_runs (schedule_id, scheduled_fire_at);
