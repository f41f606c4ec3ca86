"""Compiles a trainyard pipeline with real TFX (KubeflowV2DagRunner) for the golden test.

  TF_USE_LEGACY_KERAS=1 <managed env python> compile_with_tfx.py INPUTS.json OUT.json

INPUTS.json is a serialized trainyard_pipeline::PipelineInputs; the pipeline built here is the
one trainyard compiles natively (same components, ids, parameters and user modules)."""
import json
import os
import shutil
import sys
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
inputs = json.load(open(sys.argv[1]))
out_path = os.path.abspath(sys.argv[2])
here = os.path.dirname(os.path.abspath(__file__))

mods = tempfile.mkdtemp(prefix="ty-golden-")
for name, source in inputs["modules"].items():
    with open(os.path.join(mods, name), "w") as f:
        f.write(source)
shutil.copy(os.path.join(here, "..", "..", "src", "trainyard_evaluator.py"), mods)
sys.path.insert(0, mods)

from tfx import v1 as tfx  # noqa: E402
from trainyard_evaluator import TrainyardEvaluator  # noqa: E402

data = inputs["data"]
if data["kind"] == "big_query":
    example_gen = tfx.extensions.google_cloud_big_query.BigQueryExampleGen(query=data["query"])
else:
    example_gen = tfx.components.CsvExampleGen(input_base=data["path"])
stats = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
schema = tfx.components.SchemaGen(statistics=stats.outputs["statistics"], infer_feature_shape=True)
transform = tfx.components.Transform(
    examples=example_gen.outputs["examples"], schema=schema.outputs["schema"],
    module_file=os.path.join(mods, "transform_module.py"))

t, g, e = inputs["training"], inputs["gpu"], inputs["evaluator"]
settings = {
    "epochs": t["epochs"], "batch_size": t["batch_size"], "learning_rate": t["learning_rate"],
    "optimizer": t["optimizer"], "early_stopping": t["early_stopping"],
    "gpu_enabled": g["gpu_enabled"], "gpu_count": g["gpu_count"] if g["gpu_enabled"] else 0,
}
if inputs.get("mlflow_tracking_uri"):
    settings["mlflow_tracking_uri"] = inputs["mlflow_tracking_uri"]
if inputs.get("trainyard_run_id") is not None:
    settings["trainyard_run_id"] = inputs["trainyard_run_id"]
if inputs.get("trainyard_run_key"):
    settings["trainyard_run_key"] = inputs["trainyard_run_key"]
trainer_args = dict(
    module_file=os.path.join(mods, "trainer_module.py"),
    examples=transform.outputs["transformed_examples"], transform_graph=transform.outputs["transform_graph"],
    schema=schema.outputs["schema"], train_args=tfx.proto.TrainArgs(), eval_args=tfx.proto.EvalArgs())
if g["gpu_enabled"]:
    ai = tfx.extensions.google_cloud_ai_platform
    settings[ai.ENABLE_VERTEX_KEY] = True
    settings[ai.VERTEX_REGION_KEY] = g["training_region"] or inputs["region"]
    settings[ai.TRAINING_ARGS_KEY] = {"project": inputs["project"], "worker_pool_specs": [{
        "machine_spec": {"machine_type": g["machine_type"], "accelerator_type": g["gpu_type"],
                         "accelerator_count": g["gpu_count"]},
        "replica_count": 1, "container_spec": {"image_uri": inputs["trainer_gpu_image"]}}]}
    trainer = ai.Trainer(custom_config=settings, **trainer_args)
else:
    trainer = tfx.components.Trainer(custom_config=settings, **trainer_args)

metric = e["blessing_metric"]
metric_key = "final_val_" + metric if metric in ("rmse", "mae") else ("test_" + metric if metric.startswith("recall_at_") else metric)
lower = metric in ("rmse", "mae", "test_rmse", "test_mae", "final_loss", "loss")
evaluator = TrainyardEvaluator(model_run=trainer.outputs["model_run"], metric_key=metric_key,
                               threshold=float(e["blessing_threshold"]), lower_is_better=int(lower),
                               enabled=int(e["enabled"])).with_id("Evaluator")
pusher = tfx.components.Pusher(
    model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
    push_destination=tfx.proto.PushDestination(
        filesystem=tfx.proto.PushDestination.Filesystem(base_directory=inputs["serving_dir"])))

pipeline = tfx.dsl.Pipeline(pipeline_name=inputs["name"], pipeline_root=inputs["pipeline_root"],
                            components=[example_gen, stats, schema, transform, trainer, evaluator, pusher])
runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
    # per-component images, as trainyard compiles them: its trainer image where generated or
    # trainyard code is imported, the stock TFX image elsewhere
    config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image={
        "default_image_path": inputs["tfx_image"],
        **{c: inputs["trainer_image"] for c in ("Transform", "Trainer", "Evaluator")}}),
    output_dir=os.path.dirname(out_path), output_filename=os.path.basename(out_path))
runner.run(pipeline, write_out=True)
shutil.rmtree(mods)
