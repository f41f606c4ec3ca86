-- The MLflow run a training run's trainer logged to, as an indexed column (it was only in the
-- row's JSON), so that an MLflow run leads back to its trainyard run.
ALTER TABLE training_runs ADD COLUMN mlflow_run_id TEXT;
UPDATE training_runs SET mlflow_run_id = json_extract(data, '$.mlflow_run_id');
CREATE INDEX training_runs_mlflow_run_id ON training_runs (mlflow_run_id) WHERE mlflow_run_id IS NOT NULL;
