"""Executes generated trainyard modules for real (used by the Rust integration tests and the
benchmark). Subcommands:

  transform  --modules DIR --data DIR --work DIR
      tf.Transform analysis (tft_beam.AnalyzeAndTransformDataset, Beam DirectRunner) of
      data/train/interactions.csv with the generated preprocessing_fn; transforms eval and
      test with the analyzed graph; writes TFRecords of transformed tf.Examples and the
      transform output (transform_fn + vocabularies), the layout TFX Transform produces.
  train      --modules DIR --work DIR --out DIR [--devices N] [--gpu-count N] [--epochs N]
             [--batch-size N] [--learning-rate X]
      Builds the TFX FnArgs (with a DataAccessor over TFXIO, as the TFX Trainer does) and
      calls the generated run_fn. --devices N splits the CPU into N logical devices first.
  serve      --serving-dir DIR --request JSON
      In a process that never imported a generated module (a fresh one, or a serve-only
      worker): loads the exported SavedModel, calls serving_default with raw feature
      tensors, prints the outputs as JSON on a line starting with SERVE_RESULT.
  onestep    --work DIR --modules DIR [DIR...]
      For each trainer module: one SGD step from identical weights on one device and on a
      2-replica MirroredStrategy; prints the max weight difference per module.
"""
import argparse
import csv
import glob
import importlib.util
import json
import os
import sys
import time
import traceback

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# folders of generated modules that _load put on sys.path (a worker drops them after each command)
_GENERATED_DIRS = set()
# the logical CPU devices once split (TensorFlow's device config is per process, set once)
_DEVICES = None


def _load(path, name):
    # the generated modules import their support module from the same folder (as in the wheel)
    folder = os.path.dirname(os.path.abspath(path))
    _GENERATED_DIRS.add(folder)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    # registered, so Beam/dill pickle its functions by reference (like TFX's module_file import)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _split_devices(n):
    """Must run before TensorFlow initializes its devices; once per process (a worker splits at
    its start, a later call must ask for the same number)."""
    global _DEVICES
    import tensorflow as tf

    if _DEVICES is not None:
        if len(_DEVICES) != max(1, n):
            raise RuntimeError("this process has %d logical CPU devices, not %d (a worker's --devices)" % (len(_DEVICES), n))
        return _DEVICES
    if n > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    devices = tf.config.list_logical_devices("CPU")
    assert len(devices) == max(1, n), devices
    _DEVICES = devices
    return devices


def _read_csv(path, spec, rename=None):
    """Rows of the CSV as the raw spec's columns; `rename` maps a spec column to the CSV
    column it is read from (configs whose column names the synthetic data does not use)."""
    import tensorflow as tf

    rename = rename or {}
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            row = {}
            for k, feat in spec.items():
                v = r[rename.get(k, k)]
                if feat.dtype == tf.string:
                    row[k] = v.encode("utf-8")
                elif feat.dtype == tf.int64:
                    row[k] = int(float(v))
                else:
                    row[k] = float(v)
            rows.append(row)
    return rows


def cmd_synth(a):
    """Tiny random data shaped by a generated transform module's RAW_FEATURE_SPEC: CSVs under
    <data>/{train,eval,test}/interactions.csv (header: the ORIGINAL column names), product ids
    from a small catalog (INT64 ids when the column is INT64), and <data>/first_row.json."""
    import random

    import tensorflow as tf

    tm = _load(os.path.join(a.modules, "transform_module.py"), "transform_module")
    spec = tm.RAW_FEATURE_SPEC
    rng = random.Random(a.seed)

    def value(column, feat):
        if column == a.product_id:
            i = rng.randrange(25)
            return 1000 + i if feat.dtype == tf.int64 else "p%d" % i
        if column == a.target:
            return round(rng.uniform(1.0, 5.0), 3)
        if feat.dtype == tf.string:
            return "v%d" % rng.randrange(12)
        if feat.dtype == tf.int64:
            return rng.randrange(1_700_000_000, 1_710_000_000)
        return round(rng.uniform(0.0, 100.0), 3)

    first = None
    for split, n in (("train", 300), ("eval", 80), ("test", 80)):
        d = os.path.join(a.data, split)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "interactions.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(list(spec))
            for _ in range(n):
                row = {k: value(k, feat) for k, feat in spec.items()}
                w.writerow([row[k] for k in spec])
                if split == "test" and first is None:
                    first = row
    with open(os.path.join(a.data, "first_row.json"), "w") as f:
        json.dump(first, f)
    print("SYNTH_OK", flush=True)


def cmd_transform(a):
    import apache_beam as beam
    import tensorflow as tf
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from tensorflow_transform.tf_metadata import dataset_metadata

    t0 = time.time()
    tm = _load(os.path.join(a.modules, "transform_module.py"), "transform_module")
    spec = tm.RAW_FEATURE_SPEC
    raw_metadata = dataset_metadata.DatasetMetadata.from_feature_spec(spec)
    rename = json.loads(a.rename) if a.rename else {}
    splits = {s: _read_csv(os.path.join(a.data, s, "interactions.csv"), spec, rename) for s in ("train", "eval", "test")}
    out_dir = os.path.join(a.work, "transform_output")
    options = PipelineOptions(["--direct_num_workers=1", "--direct_running_mode=in_memory"])
    with beam.Pipeline(runner="DirectRunner", options=options) as p:
        with tft_beam.Context(temp_dir=os.path.join(a.work, "tft_tmp"), force_tf_compat_v1=False):
            train = p | "train" >> beam.Create(splits["train"], reshuffle=False)
            (transformed, transformed_md), transform_fn = (
                train,
                raw_metadata,
            ) | "analyze" >> tft_beam.AnalyzeAndTransformDataset(tm.preprocessing_fn)
            _ = transform_fn | "write_fn" >> tft_beam.WriteTransformFn(out_dir)
            outputs = {"train": transformed}
            for s in ("eval", "test"):
                raw = p | s >> beam.Create(splits[s], reshuffle=False)
                (outputs[s], _) = (
                    (raw, raw_metadata),
                    transform_fn,
                ) | ("transform_" + s) >> tft_beam.TransformDataset()
            for s, pcoll in outputs.items():
                coder = tft.coders.ExampleProtoCoder(transformed_md.schema)
                _ = (
                    pcoll
                    | ("encode_" + s) >> beam.Map(coder.encode)
                    | ("write_" + s)
                    >> beam.io.WriteToTFRecord(
                        os.path.join(a.work, "transformed", s, "data"), file_name_suffix=".tfrecord", num_shards=1
                    )
                )
    # the raw schema next to transform_fn, as TFX Transform writes it (TFTransformOutput.raw_metadata)
    from tensorflow_transform.tf_metadata import metadata_io

    metadata_io.write_metadata(raw_metadata, os.path.join(out_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    n = {s: len(v) for s, v in splits.items()}
    print("TRANSFORM_OK rows=%s seconds=%.1f" % (json.dumps(n), time.time() - t0), flush=True)
    del tf


class _FnArgs:
    """The attributes of tfx.components.FnArgs that a run_fn reads."""


def _fn_args(a, custom_config):
    import tensorflow_transform as tft
    from tfx_bsl.public import tfxio

    try:  # the real TFX types when TFX is importable (it is in the managed env)
        from tfx.components.trainer.fn_args_utils import DataAccessor, FnArgs
    except ImportError:  # pragma: no cover
        DataAccessor, FnArgs = None, None

    def factory(file_pattern, options, schema):
        if isinstance(file_pattern, (list, tuple)):
            file_pattern = file_pattern[0] if len(file_pattern) == 1 else file_pattern
        return tfxio.TFExampleRecord(file_pattern=file_pattern, schema=schema).TensorFlowDataset(options)

    files = {s: sorted(glob.glob(os.path.join(a.work, "transformed", s, "data*.tfrecord"))) for s in ("train", "eval", "test")}
    for s, f in files.items():
        assert f, "no transformed %s data under %s" % (s, a.work)
    custom_config = dict(custom_config)
    custom_config["test_files"] = files["test"]
    kwargs = dict(
        train_files=files["train"],
        eval_files=files["eval"],
        transform_output=os.path.join(a.work, "transform_output"),
        transform_graph_path=os.path.join(a.work, "transform_output"),
        serving_model_dir=os.path.join(a.out, "serving_model"),
        model_run_dir=os.path.join(a.out, "model_run"),
        custom_config=custom_config,
        train_steps=None,
        eval_steps=None,
    )
    if FnArgs is not None:
        fn_args = FnArgs(data_accessor=DataAccessor(tf_dataset_factory=factory, record_batch_factory=None, data_view_decode_fn=None), **kwargs)
    else:
        fn_args = _FnArgs()
        for k, v in kwargs.items():
            setattr(fn_args, k, v)
        fn_args.data_accessor = type("DA", (), {"tf_dataset_factory": staticmethod(factory)})()
    tft.TFTransformOutput(fn_args.transform_output)  # fail early on a bad transform output
    return fn_args


def cmd_train(a):
    devices = _split_devices(a.devices)
    print("logical CPU devices: %s" % [d.name for d in devices], flush=True)
    if a.gpu_count > 0:
        # the multi-device path on this CPU-only machine: logical CPUs stand in for the GPUs
        os.environ["TRAINYARD_CPU_STANDS_IN_FOR_GPU"] = "1"
    trainer = _load(os.path.join(a.modules, "trainer_module.py"), "trainer_module")
    custom = {
        "epochs": a.epochs,
        "batch_size": a.batch_size,
        "gpu_enabled": a.gpu_count > 0,
        "gpu_count": a.gpu_count,
        "early_stopping": {"enabled": False, "patience": 3, "monitor": "val_loss", "min_delta": 0.0},
    }
    if a.learning_rate:
        custom["learning_rate"] = a.learning_rate
    if a.optimizer:
        custom["optimizer"] = a.optimizer
    fn_args = _fn_args(a, custom)
    t0 = time.time()
    trainer.run_fn(fn_args)
    print("RUN_FN_OK seconds=%.1f" % (time.time() - t0), flush=True)
    # without a tracking URI the trainer must not even import the MLflow client
    print("MLFLOW_IMPORTED=%s" % ("mlflow" in sys.modules), flush=True)


def cmd_serve(a):
    import tensorflow as tf

    # the export must load without anything the trainer defined in Python
    loaded = sorted(n for n in ("trainer_module", "transform_module", "trainyard_trainer_support") if n in sys.modules)
    assert not loaded, "serve in a process that imported generated modules: %s" % loaded

    try:  # registers the ScaNN TF ops a ScaNN SavedModel needs
        importlib.import_module("scann.scann_ops.py.scann_ops")
    except ImportError:
        pass
    model = tf.saved_model.load(a.serving_dir)
    sig = model.signatures["serving_default"]
    request = json.loads(a.request)
    inputs = {}
    for name, spec in sig.structured_input_signature[1].items():
        inputs[name] = tf.constant([inst[name] for inst in request["instances"]], dtype=spec.dtype)
    out = sig(**inputs)
    result = {}
    for k, v in out.items():
        v = v.numpy()
        if v.dtype.kind in "SO":
            result[k] = [[x.decode("utf-8") for x in row] if hasattr(row, "__len__") and not isinstance(row, bytes) else row.decode("utf-8") for row in v]
        else:
            result[k] = v.tolist()
    result["__dtypes__"] = {k: v.dtype.name for k, v in out.items()}
    print("SERVE_RESULT " + json.dumps(result), flush=True)


def cmd_onestep(a):
    import numpy as np

    _split_devices(2)
    import tensorflow as tf
    import tensorflow_transform as tft

    # ONE MirroredStrategy per command (a second one would reuse its collective keys; a worker
    # gives each command its own)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    single = tf.distribute.get_strategy()
    tft_output = tft.TFTransformOutput(os.path.join(a.work, "transform_output"))
    files = sorted(glob.glob(os.path.join(a.work, "transformed", "train", "data*.tfrecord")))
    from tfx_bsl.public import tfxio

    options = tfxio.TensorFlowDatasetOptions(batch_size=a.batch_size, shuffle=False, num_epochs=1)
    data = tfxio.TFExampleRecord(file_pattern=files[0], schema=tft_output.transformed_metadata.schema).TensorFlowDataset(options)
    batch = next(iter(data))
    results = {}
    for i, mdir in enumerate(a.modules):
        trainer = _load(os.path.join(mdir, "trainer_module.py"), "trainer_%d" % i)
        # a non-uniform sampling-bias correction (product frequencies in the batch), so the
        # retrieval loss's gathered log q is checked under MirroredStrategy too
        n_products = trainer.vocab_sizes_from(tft_output)[trainer.PRODUCT_ID_COLUMN]
        ids = batch[trainer.PRODUCT_ID_FEATURE]
        ids = tf.sparse.to_dense(ids) if isinstance(ids, tf.SparseTensor) else ids
        ids = ids.numpy().reshape(-1).astype(np.int64)
        counts = np.bincount(np.minimum(ids, n_products - 1), minlength=n_products).astype(np.float64)
        log_q = np.log(np.maximum(counts, 1.0) / counts.sum())

        def step(strategy, init):
            tf.keras.utils.set_random_seed(1)
            model = trainer.build_model(tft_output, strategy, "sgd", a.learning_rate, product_log_q=log_q)
            with strategy.scope():
                model.compute_loss(batch)  # creates the variables (inside the scope)
            if init is not None:
                model.set_weights(init)
            ds = tf.data.Dataset.from_tensors(batch)
            model.fit(ds, epochs=1, verbose=0)
            return model.get_weights(), [v.numpy() for v in model.trainable_variables]

        tf.keras.utils.set_random_seed(1)
        init = trainer.build_model(tft_output, single, "sgd", a.learning_rate, product_log_q=log_q)
        init.compute_loss(batch)
        start = [v.numpy() for v in init.trainable_variables]
        init = init.get_weights()
        _, ref = step(single, init)
        _, got = step(mirrored, init)
        moved = max(float(np.max(np.abs(x - y))) for x, y in zip(start, ref))
        diff = max(float(np.max(np.abs(x - y))) for x, y in zip(ref, got))
        results[trainer.MODEL_TYPE] = {"max_weight_diff": diff, "max_step_size": moved, "num_weights": len(ref)}
        print("ONESTEP %s max|w(1 device) - w(2 replicas)| = %.3e (step moved weights by up to %.3e)" % (trainer.MODEL_TYPE, diff, moved), flush=True)
    print("ONESTEP_RESULT " + json.dumps(results), flush=True)


def cmd_batch(a):
    """synth + transform + train for each job of a JSON plan, in this one process (TensorFlow,
    TFX and Beam are imported once instead of three times per config)."""
    with open(a.plan) as f:
        jobs = json.load(f)
    for job in jobs:
        t0 = time.time()
        ns = argparse.Namespace
        cmd_synth(ns(modules=job["modules"], data=job["data"], product_id=job["product_id"], target=job["target"], seed=job["seed"]))
        cmd_transform(ns(modules=job["modules"], data=job["data"], work=job["work"], rename=""))
        cmd_train(
            ns(
                modules=job["modules"], work=job["work"], out=job["out"], devices=1, gpu_count=0,
                epochs=job["epochs"], batch_size=job["batch_size"], learning_rate=0.0, optimizer="", mlflow_stub="",
            )
        )
        print("BATCH_JOB_OK %s seconds=%.1f" % (job["out"], time.time() - t0), flush=True)


def _drop_generated_modules():
    """Forgets the generated modules (and their folders on sys.path) of the last command, so the
    next command imports its own, as a fresh process would."""
    for name, mod in list(sys.modules.items()):
        f = getattr(mod, "__file__", None)
        if f and os.path.dirname(os.path.abspath(f)) in _GENERATED_DIRS:
            del sys.modules[name]
    sys.path[:] = [p for p in sys.path if p not in _GENERATED_DIRS]
    _GENERATED_DIRS.clear()


def cmd_worker(a):
    # the answers go to the original stdout; each command's output goes to its log file
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything printed outside a command goes to the worker's log, never the answers
    parser = _parser()
    _split_devices(a.devices)
    import tensorflow as tf

    # the libraries its commands import, loaded now (while the test binary does other work)
    if not a.only or set(a.only) - {"serve"}:
        for m in ("apache_beam", "tensorflow_recommenders", "tensorflow_transform.beam", "tfx_bsl.public.tfxio", "tfx.components.trainer.fn_args_utils"):
            importlib.import_module(m)
    if not a.only or "serve" in a.only:
        try:
            importlib.import_module("scann.scann_ops.py.scann_ops")
        except ImportError:
            pass

    n_commands = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        saved = (os.dup(1), os.dup(2))
        log_fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        ok = False
        env = dict(os.environ)
        try:
            cmd = parser.parse_args(req["argv"])
            if cmd.cmd == "worker" or (a.only and cmd.cmd not in a.only):
                raise SystemExit("this worker does not run %r (it runs: %s)" % (cmd.cmd, a.only or "all but worker"))
            if cmd.cmd in ("train", "onestep", "batch"):
                tf.keras.backend.clear_session()  # a fresh Keras state, as in a new process
                # the MirroredStrategies of each command get their own collective group keys
                # (TF's hook for several strategies in one process: a second strategy with the
                # same keys aborts its all-gathers as "Collective instance ... expected type")
                tf.distribute.MirroredStrategy._collective_key_base = 1000 * n_commands
            n_commands += 1
            t0 = time.time()
            _COMMANDS[cmd.cmd](cmd)
            print("WORKER_DONE %s seconds=%.1f" % (cmd.cmd, time.time() - t0), flush=True)
            ok = True
        except BaseException:  # noqa: B036  a failed command (also argparse's SystemExit) is answered, not fatal
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            _drop_generated_modules()
            os.environ.clear()
            os.environ.update(env)
        answers.write(json.dumps({"ok": ok}) + "\n")
        answers.flush()


def _parser():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("transform")
    t.add_argument("--modules", required=True)
    t.add_argument("--data", required=True)
    t.add_argument("--work", required=True)
    t.add_argument("--rename", default="", help="JSON: config column -> CSV column")
    sa = sub.add_parser("short-answers")
    sa.add_argument("--modules", required=True)
    y = sub.add_parser("synth")
    y.add_argument("--modules", required=True)
    y.add_argument("--data", required=True)
    y.add_argument("--product-id", required=True)
    y.add_argument("--target", default="")
    y.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("train")
    r.add_argument("--modules", required=True)
    r.add_argument("--work", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--devices", type=int, default=1)
    r.add_argument("--gpu-count", type=int, default=0)
    r.add_argument("--epochs", type=int, default=2)
    r.add_argument("--batch-size", type=int, default=256)
    r.add_argument("--learning-rate", type=float, default=0.0)
    r.add_argument("--optimizer", default="")
    s = sub.add_parser("serve")
    s.add_argument("--serving-dir", required=True)
    s.add_argument("--request", required=True)
    o = sub.add_parser("onestep")
    o.add_argument("--work", required=True)
    o.add_argument("--modules", nargs="+", required=True)
    o.add_argument("--batch-size", type=int, default=64)
    o.add_argument("--learning-rate", type=float, default=0.05)
    b = sub.add_parser("batch")
    b.add_argument("--plan", required=True, help="JSON list of {modules, data, work, out, product_id, target, seed, epochs, batch_size}")
    w = sub.add_parser("worker")
    w.add_argument("--devices", type=int, default=1)
    w.add_argument("--only", nargs="*", default=[], help="the subcommands this worker accepts (default: all)")
    return p


def cmd_short_answers(a):
    """A ScaNN trainer's serving completion: a batch with a short answer (NaN-padded, or
    narrower than k) is answered by exact brute force; a full answer is kept as it is."""
    import numpy as np
    import tensorflow as tf

    trainer = _load(os.path.join(a.modules, "trainer_module.py"), "trainer_module")
    cands = tf.constant([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    query = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    nan = float("nan")
    cases = {
        "nan-padded": (tf.constant([[1.0, nan], [1.0, 0.5]]), tf.constant([[1, 0], [0, 2]], dtype=tf.int32)),
        "narrow": (tf.constant([[1.0], [1.0]]), tf.constant([[1], [0]], dtype=tf.int32)),
    }
    for name, (scores, rows) in cases.items():
        s, r = trainer._complete_short_answers(scores, rows, query, cands, 2)
        assert r.numpy().tolist() == [[1, 2], [0, 2]], (name, r.numpy())
        assert np.allclose(s.numpy(), [[1.0, 0.5], [1.0, 0.5]]), (name, s.numpy())
    full = (tf.constant([[9.0, 8.0], [7.0, 6.0]]), tf.constant([[2, 0], [1, 0]], dtype=tf.int32))
    s, r = trainer._complete_short_answers(*full, query, cands, 2)
    assert r.numpy().tolist() == [[2, 0], [1, 0]] and s.numpy().tolist() == [[9.0, 8.0], [7.0, 6.0]]
    print("SHORT_ANSWERS_OK", flush=True)


_COMMANDS = {
    "short-answers": cmd_short_answers,
    "transform": cmd_transform,
    "synth": cmd_synth,
    "train": cmd_train,
    "serve": cmd_serve,
    "onestep": cmd_onestep,
    "batch": cmd_batch,
    "worker": cmd_worker,
}


def main():
    a = _parser().parse_args()
    _COMMANDS[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
