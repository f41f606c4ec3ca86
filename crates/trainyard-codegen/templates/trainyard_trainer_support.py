# Shipped by trainyard-codegen with the generated modules -- DO NOT EDIT; it is written anew on every generation.
"""Support code of trainyard's generated TFX trainers (the same for every config).

Shipped next to the generated modules, in the user-code wheels TFX installs for the Trainer,
so that each generated trainer_module.py holds only what its config decides:

- MetricsCollector: per-epoch and final values -> training_metrics.json (the spec's shape),
  a progress line per epoch, and MLflow when tracking is on.
- EpochMetrics: the Keras callback that records each epoch's losses and validation metrics.
- WeightStats: per-epoch statistics and histograms of each tower's weights and gradients.
- MlflowRun: the MLflow glue, on the `mlflow` client library (a SIGTERM, trainyard's cancel,
  ends the run KILLED: raise_on_sigterm). Tracking is on only when a
  tracking URI is given (the Trainer's custom_config `mlflow_tracking_uri`, else the
  MLFLOW_TRACKING_URI environment variable); without one, mlflow is never imported.
  Tracking never fails a training: an MLflow error turns tracking off with a warning.
"""

import json
import logging
import os
import time

# the generated trainers run on tf-keras (Keras 2), whichever module imports TensorFlow first
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

log = logging.getLogger("trainyard.trainer")

WEIGHT_HISTOGRAM_BINS = 30
# Artifact folder (in the MLflow run) of the per-epoch weight and gradient histograms.
HISTOGRAM_ARTIFACT_DIR = "weight_stats"


def log_line(msg, *args):
    """Logs through `logging` and prints, so the lines show in TFX and in plain runs."""
    text = msg % args if args else msg
    log.info(text)
    print("[trainyard] " + text, flush=True)


# --------------------------------------------------------------------------------------------
# MLflow
# --------------------------------------------------------------------------------------------


# MLflow client settings (environment variables; a value already set wins)
MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def tracking_uri(settings):
    """The MLflow tracking URI of a run: custom_config's, else the environment's, else None."""
    return (settings.get("mlflow_tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI") or "").strip() or None


class MlflowRun:
    """One MLflow run per training, logged with mlflow.MlflowClient (no global state)."""

    def __init__(self, client, run_id, experiment_id):
        self.client = client
        self.run_id = run_id
        self.experiment_id = experiment_id

    @classmethod
    def start(cls, uri, experiment, params, tags):
        """Creates the experiment (if needed) and the run; None when tracking is off or fails."""
        if not uri:
            return None
        # an unreachable server costs seconds, not MLflow's default minutes of retries
        for key, value in MLFLOW_HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        client, run_id = None, None
        try:
            from mlflow import MlflowClient
            from mlflow.entities import Param

            client = MlflowClient(tracking_uri=uri)
            found = client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
            run = client.create_run(experiment_id, tags=dict(tags))
            run_id = run.info.run_id
            client.log_batch(run_id, params=[Param(k, str(v)) for k, v in sorted(params.items())])
        except Terminated:  # cancelled while the run was being created
            if run_id is not None:
                cls(client, run_id, None).finish("KILLED")
            raise
        except Exception as e:  # tracking must never fail the training
            log_line("WARNING: MLflow tracking disabled: %s: %s", type(e).__name__, e)
            return None
        log_line("MLflow run %s (experiment %s) at %s", run_id, experiment_id, uri)
        return cls(client, run_id, experiment_id)

    def _safely(self, what, fn, *args, **kwargs):
        try:
            fn(*args, **kwargs)
        except Exception as e:  # tracking must never fail the training
            log_line("WARNING: MLflow %s not logged: %s: %s", what, type(e).__name__, e)

    def log_metrics(self, values, step):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(k, float(v), now, int(step)) for k, v in sorted(values.items()) if v is not None and np.isfinite(v)
        ]
        if metrics:
            self._safely("metrics", self.client.log_batch, self.run_id, metrics=metrics)

    def log_dict(self, doc, artifact_file):
        self._safely(artifact_file, self.client.log_dict, self.run_id, doc, artifact_file)

    def log_file(self, path):
        self._safely(os.path.basename(path), self.client.log_artifact, self.run_id, path)

    def finish(self, status):
        self._safely("run status", self.client.set_terminated, self.run_id, status=status)


class Terminated(BaseException):
    """SIGTERM in the middle of a training: trainyard cancels a run by SIGTERM to its process
    group (SIGKILL after a grace), and the training ends its MLflow run KILLED on the way out
    rather than leaving it RUNNING."""


def raise_on_sigterm():
    """Makes SIGTERM raise Terminated in the main thread; returns the handler it replaced (None
    where none was installed: off the main thread, signals cannot be handled)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise Terminated("SIGTERM")

    return signal.signal(signal.SIGTERM, handler)


def restore_sigterm(previous):
    if previous is not None:
        import signal

        signal.signal(signal.SIGTERM, previous)


# --------------------------------------------------------------------------------------------
# training_metrics.json
# --------------------------------------------------------------------------------------------


class MetricsCollector:
    """Per-epoch values as arrays under "loss", scalars under "final_metrics" (the spec's shape);
    the MLflow run's ids under "mlflow" when tracking is on."""

    def __init__(self, model_type, config_hash, mlflow):
        self.doc = {"model_type": model_type, "config_hash": config_hash, "loss": {}, "final_metrics": {}}
        self.mlflow = mlflow
        if mlflow is not None:
            self.doc["mlflow"] = {"run_id": mlflow.run_id, "experiment_id": mlflow.experiment_id}

    def epoch(self, epoch, values):
        for k, v in values.items():
            self.doc["loss"].setdefault(k, []).append(float(v))
        # One line per epoch for runners that stream progress (trainyard's local runner).
        line = json.dumps({"epoch": epoch, "metrics": {k: float(v) for k, v in values.items()}})
        print("[trainyard] EPOCH " + line, flush=True)
        if self.mlflow is not None:
            self.mlflow.log_metrics(values, step=epoch)

    def final(self, values):
        self.doc["final_metrics"].update({k: float(v) for k, v in values.items()})
        if self.mlflow is not None:
            self.mlflow.log_metrics(values, step=0)

    def write(self, directory):
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "training_metrics.json")
        with open(path, "w") as f:
            json.dump(self.doc, f, indent=2, sort_keys=True)
        log_line("Wrote %s", path)
        if self.mlflow is not None:
            self.mlflow.log_file(path)
        return path


class EpochMetrics(tf.keras.callbacks.Callback):
    """Records loss/val_loss and the validation metrics of each epoch. `evaluate(model)` returns
    (recorded values, Keras log entries); the latter go into the Keras logs, so EarlyStopping can
    monitor them."""

    def __init__(self, collector, evaluate):
        super().__init__()
        self.collector = collector
        self.evaluate = evaluate

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        values = {k: float(v) for k, v in logs.items() if k in ("loss", "val_loss", "regularization_loss")}
        recorded, keras_logs = self.evaluate(self.model)
        values.update(recorded)
        logs.update(keras_logs)
        self.collector.epoch(epoch, values)
        log_line("epoch %d: %s", epoch + 1, ", ".join("%s=%.4f" % kv for kv in sorted(values.items())))


# --------------------------------------------------------------------------------------------
# Weight and gradient statistics
# --------------------------------------------------------------------------------------------


def tensor_stats(arrays, variables):
    """L1/L2 norms, mean, std, min, max and a WEIGHT_HISTOGRAM_BINS-bin histogram of every value
    of `arrays` (non-finite values counted apart); bins sum to the number of finite values."""
    values = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays]) if arrays else np.zeros(0)
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(finite, bins=WEIGHT_HISTOGRAM_BINS, range=(lo, hi))
    return {
        "count": int(values.size),
        "nonfinite": int(values.size - finite.size),
        "l1_norm": float(np.abs(finite).sum()),
        "l2_norm": float(np.sqrt(np.square(finite).sum())),
        "mean": float(finite.mean()) if finite.size else 0.0,
        "std": float(finite.std()) if finite.size else 0.0,
        "min": float(finite.min()) if finite.size else 0.0,
        "max": float(finite.max()) if finite.size else 0.0,
        "histogram": {"bin_edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
        "variables": [{"name": v.name, "shape": [int(d) for d in v.shape]} for v in variables],
    }


class WeightStats(tf.keras.callbacks.Callback):
    """Per epoch and tower: statistics of the trainable weights and of their gradients, into
    training_metrics.json["weight_stats"]; to MLflow, the norms as metrics and each epoch's
    histograms as the artifact weight_stats/epoch_NNN.json. Gradients are those of the training
    loss on one fixed probe batch of training data, in inference mode (no dropout, batch-norm
    moving statistics) so that recording never changes the model."""

    TOWERS = ("buyer_tower", "product_tower", "rating_head")

    def __init__(self, collector, probe):
        super().__init__()
        self.collector = collector
        self.probe = probe  # a dataset of one global batch
        self.doc = collector.doc.setdefault("weight_stats", {"histogram_bins": WEIGHT_HISTOGRAM_BINS, "epochs": []})

    def _towers(self):
        return [(n, getattr(self.model, n)) for n in self.TOWERS if hasattr(self.model, n)]

    def _gradients(self, towers):
        """The gradient of one training step on the probe batch, computed as training does:
        the batch split over the replicas, per-replica gradients summed."""
        strategy = self.model.distribute_strategy
        variables = [v for _, t in towers for v in t.trainable_variables]

        def step(batch):
            with tf.GradientTape() as tape:
                total = self.model.compute_loss(batch, training=False) + self.model._regularization()
            grads = tape.gradient(total, variables)
            # a variable the loss does not reach has a zero gradient; IndexedSlices -> dense
            return [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for v, g in zip(variables, grads)]

        batch = next(iter(strategy.experimental_distribute_dataset(self.probe)))
        per_replica = strategy.run(step, args=(batch,))
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None).numpy() for g in per_replica]

    def on_epoch_end(self, epoch, logs=None):
        towers = self._towers()
        try:
            grads = self._gradients(towers)
            error = None
        except Exception as e:  # statistics must never fail the training
            grads, error = None, "%s: %s" % (type(e).__name__, e)
            log_line("WARNING: gradient statistics not recorded: %s", error)
        entry = {"epoch": int(epoch), "towers": {}}
        i = 0
        norms = {}
        for name, tower in towers:
            variables = tower.trainable_variables
            stats = {"weights": tensor_stats([v.numpy() for v in variables], variables)}
            if grads is not None:
                stats["gradients"] = tensor_stats(grads[i : i + len(variables)], variables)
            else:
                stats["gradients"] = None
                stats["gradients_error"] = error
            i += len(variables)
            entry["towers"][name] = stats
            for kind in ("weights", "gradients"):
                if stats.get(kind):
                    norms["%s_%s_l1_norm" % (name, kind)] = stats[kind]["l1_norm"]
                    norms["%s_%s_l2_norm" % (name, kind)] = stats[kind]["l2_norm"]
        self.doc["epochs"].append(entry)
        mlflow = self.collector.mlflow
        if mlflow is not None:
            mlflow.log_metrics(norms, step=epoch)
            mlflow.log_dict(entry, "%s/epoch_%03d.json" % (HISTOGRAM_ARTIFACT_DIR, epoch))
