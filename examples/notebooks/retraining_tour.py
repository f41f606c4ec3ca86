# %% [markdown]
# # trainyard in a notebook: a run, its metrics, and a weekly retraining schedule
#
# A notebook-style script (cells marked `# %%`, as VS Code and Jupytext open them). It runs
# headless end to end on the embedded defaults (SQLite, no cloud), in `make test`:
#
#     MPLBACKEND=Agg python examples/notebooks/retraining_tour.py [output-dir]
#
# Where a notebook would display a value, this script prints it (or writes the HTML and the
# figure to the output directory).

# %%
import os
import shutil
import sys
import tempfile
from pathlib import Path

import trainyard
from trainyard.config_types import NewSchedule

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="trainyard-tour-"))
platform = trainyard.Platform.init(out / "project")
platform

# %% [markdown]
# ## A training run, configured with plain dicts

# %%
run = platform.training.create(
    "product-retrieval",
    {
        "model_config": {"model_type": "multitask"},
        "training_params": {"epochs": 4, "batch_size": 1024, "learning_rate": 0.05},
    },
    description="first try",
)
print(run)
print("config sections:", sorted(run.config))

# %% [markdown]
# ## What a pipeline reports (a local or Vertex executor sends these events)

# %%
t = platform.training
t.handle_event(run.id, {"event": "submitted", "job_name": "local/1", "job_id": "1"})
t.handle_event(run.id, {"event": "stage_started", "stage": "train"})
metrics = {
    "loss": {
        "loss": [1.92, 1.41, 1.18, 1.07],
        "val_loss": [1.75, 1.36, 1.22, 1.15],
        "val_rmse": [0.83, 0.77, 0.6512, 0.627],
        "val_mae": [0.58, 0.52, 0.4381, 0.4199],
        "val_recall_at_50": [0.11, 0.19, 0.24, 0.26],
        "val_recall_at_100": [0.18, 0.27, 0.33, 0.35],
    },
    "final_metrics": {"test_rmse": 0.6071, "test_mae": 0.4124},
}
# TFX's Pusher leaves the blessed SavedModel under <pipeline_root>/pushed_model/<version>/. This
# tour trains nothing: it stands in the small exported test model of scripts/serve-export-models.py
# when TRAINYARD_SERVE_TEST_MODELS points at one (as in `make test`), else a placeholder file (the
# filesystem registry copies and checksums files; only serving loads them).
pipeline_root = out / "runs" / str(run.id)
pushed = pipeline_root / "pushed_model" / "1764000000"
test_models = Path(os.environ.get("TRAINYARD_SERVE_TEST_MODELS", "/nonexistent"))
if (test_models / "bf" / "1" / "saved_model.pb").exists():
    shutil.copytree(test_models / "bf" / "1", pushed)
else:
    pushed.mkdir(parents=True)
    (pushed / "saved_model.pb").write_text("placeholder")
run = t.handle_event(
    run.id,
    {
        "event": "completed",
        "training_metrics": metrics,
        "blessed": True,
        "artifacts": {"pipeline_root": str(pipeline_root)},
    },
)
print(run, "rmse:", run.rmse, "recall@100:", run.recall_at_100)
assert run.status == "completed" and run.is_blessed

# %%
(out / "run.html").write_text(run._repr_html_())  # what Jupyter shows for `run`
history = run.history()
print(history)

# %%
fig = run.plot()
fig.savefig(out / "run_curves.png", dpi=80)
assert {line.get_label() for ax in fig.axes for line in ax.get_lines()} >= {"loss", "recall_at_100"}

# %% [markdown]
# ## Retrain every Monday at 09:00 Warsaw time

# %%
weekly: NewSchedule = {
    "name": "weekly retraining",
    "schedule_type": "weekly",
    "schedule_time": "09:00",
    "schedule_day_of_week": 0,
    "schedule_timezone": "Europe/Warsaw",
}
print("cron:", trainyard.ScheduleService.cron(weekly))
schedule = platform.schedules.create_from_run(run.id, weekly)
(out / "schedule.html").write_text(schedule._repr_html_())
for fire in platform.schedules.upcoming(schedule.id, 5):
    print("next fire:", fire.isoformat())
    assert fire.weekday() == 0 and fire.hour == 9

# %%
fired = platform.schedules.trigger(schedule.id)
print(fired)
print(platform.schedules.get(schedule.id))
models = platform.registry.list()
print(models)
assert [m.model_name for m in models] == ["product-retrieval"]
assert len(platform.registry.versions(models[0].id)) == 2, "both runs of the model"

# %% [markdown]
# ## The registry: the blessed run became version 1; aliases; the model list with its KPIs

# %%
model_id = models[0].id
versions = platform.registry.model_versions(model_id)
print(versions)
assert [v.version for v in versions] == ["1"] and versions[0].training_run_id == run.id
platform.registry.set_alias(model_id, "production", "1")
print("aliases:", platform.registry.aliases(model_id))
listing = platform.registry.list_with_kpi()
print(listing, listing.kpi)
for summary in listing:
    print(" ", summary)
print(platform.deployments.status(run.id))  # the record ("skipped": auto-deploy was off) and the live state

# %% [markdown]
# ## Deploy version 1 and ask it for recommendations
#
# The local deployer runs `trainyard-serve` (TRAINYARD_SERVE_BIN) with TensorFlow from the
# managed env (TRAINYARD_PYTHON); without them this cell only says so.

# %%
serve_bin = os.environ.get("TRAINYARD_SERVE_BIN", "")
if serve_bin and Path(serve_bin).exists() and os.environ.get("TRAINYARD_PYTHON") and test_models.exists():
    deployed = platform.deployments.deploy(run.id, preset="development")
    endpoint = platform.deployments.endpoint(deployed.config["deployment_config"]["service_name"])
    print(endpoint)
    try:
        answer = trainyard.predict(
            endpoint.service_url,
            [{"customer_id": "C0000", "city": "Warsaw", "revenue": 120.0, "visits": [3]}],
        )
        top = answer[0]
        print("top products:", list(zip(top["product_ids"], top["scores"]))[:5])
        assert all(isinstance(p, str) for p in top["product_ids"])
        assert top["scores"] == sorted(top["scores"], reverse=True)
    finally:
        print(platform.deployments.undeploy(endpoint.service_name))
else:
    print("no model server here: set TRAINYARD_SERVE_BIN and TRAINYARD_PYTHON to deploy")
print("tour finished; outputs in", out)
