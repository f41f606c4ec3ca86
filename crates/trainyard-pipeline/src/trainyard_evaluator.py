"""trainyard's Evaluator: blesses a model by the held-out metric its trainer measured.

TFRS retrieval models have no label TFMA could score against, so the blessing reads the
trainer's training_metrics.json (final_metrics) and compares one value with a threshold.
Shipped beside the generated modules and in trainyard's TFX images."""
import json
import os

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import ModelBlessing, ModelRun


@component
def TrainyardEvaluator(
    model_run: InputArtifact[ModelRun],
    blessing: OutputArtifact[ModelBlessing],
    metric_key: Parameter[str],
    threshold: Parameter[float],
    lower_is_better: Parameter[int],
    enabled: Parameter[int],
):
    with open(os.path.join(model_run.uri, "training_metrics.json")) as f:
        final = json.load(f).get("final_metrics", {})
    value = final.get(metric_key)
    if not enabled:
        blessed = True
    elif value is None:
        blessed = False
    else:
        blessed = value <= threshold if lower_is_better else value >= threshold
    blessing.set_int_custom_property("blessed", int(blessed))
    open(os.path.join(blessing.uri, "BLESSED" if blessed else "NOT_BLESSED"), "w").close()
    verdict = {"blessed": bool(blessed), "metric": metric_key, "value": value, "threshold": threshold}
    print("[trainyard] BLESSING " + json.dumps(verdict), flush=True)
