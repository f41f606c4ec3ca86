"""Flask + gunicorn TF-Serving-REST-style baseline server (copied from the shared baseline harness, reference/baselines/server.py), one SavedModel per process.

  MODEL_NAME=retrieval MODEL_BASE_PATH=models/bf_100k \
  TF_USE_LEGACY_KERAS=1 PYTHONPATH=extlib $SCANN_PY -m gunicorn -w 2 -k gthread --threads 4 \
      -b 127.0.0.1:8501 server:app

Endpoints (TF Serving REST API shapes):
  GET  /v1/models/<name>[/versions/<v>]            -> model_version_status
  GET  /v1/models/<name>[/versions/<v>]/metadata   -> signature_def (inputs/outputs dtype+shape)
  POST /v1/models/<name>[/versions/<v>]:predict    -> {"instances":[{...}]}  => {"predictions":[{...}]}
                                                      {"inputs":{...}}       => {"outputs":{...}}
MODEL_BASE_PATH holds numeric version dirs (highest is served), like tensorflow_model_server.
The model is loaded at import time; gunicorn is run WITHOUT --preload so every worker loads
its own copy after fork (TF runtime is not fork-safe).
"""
import os
import re

import numpy as np
import tensorflow as tf

try:  # registers the Scann custom ops if the model uses them; harmless otherwise
    import scann  # noqa: F401
except ImportError:
    pass
from flask import Flask, jsonify, request

MODEL_NAME = os.environ.get("MODEL_NAME", "retrieval")
BASE = os.environ.get("MODEL_BASE_PATH", "models/bf_100k")
VERSION = max(int(d) for d in os.listdir(BASE) if d.isdigit())
_loaded = tf.saved_model.load(os.path.join(BASE, str(VERSION)))
SIGNATURES = {k: _loaded.signatures[k] for k in _loaded.signatures.keys()}
INPUT_SPECS = {k: f.structured_input_signature[1] for k, f in SIGNATURES.items()}


def _warmup():
    for name, specs in INPUT_SPECS.items():
        feed = {}
        for k, spec in specs.items():
            shape = [1 if d is None else d for d in spec.shape.as_list()]
            feed[k] = tf.zeros(shape, spec.dtype) if spec.dtype != tf.string else tf.fill(shape, "")
        SIGNATURES[name](**feed)


_warmup()
if os.environ.get("READY_DIR"):  # lets the benchmark driver wait until every worker has loaded
    open(os.path.join(os.environ["READY_DIR"], str(os.getpid())), "w").close()
app = Flask(__name__)
_PATH = re.compile(r"^(?P<name>[^/:]+)(?:/versions/(?P<ver>\d+))?(?P<rest>/metadata|:predict)?$")


class BadRequest(Exception):
    pass


def _tensor(value, spec):
    """JSON value -> tensor with the signature's dtype. Supports TF-Serving's {"b64": ...}."""
    if spec.dtype == tf.string:
        def conv(v):
            if isinstance(v, dict) and "b64" in v:
                import base64
                return base64.b64decode(v["b64"])
            if isinstance(v, list):
                return [conv(x) for x in v]
            return v.encode("utf-8") if isinstance(v, str) else v
        return tf.constant(conv(value), dtype=tf.string)
    return tf.constant(np.asarray(value, dtype=spec.dtype.as_numpy_dtype))


def _jsonable(t):
    a = t.numpy()
    if a.dtype == object:  # tf.string -> python str
        return np.char.decode(a.astype(np.bytes_), "utf-8").tolist() if a.size else a.tolist()
    return a.tolist()


def _status(ver):
    if ver is not None and int(ver) != VERSION:
        return jsonify({"error": f"Servable not found for request: Specific({MODEL_NAME}, {ver})"}), 404
    return jsonify({"model_version_status": [{"version": str(VERSION), "state": "AVAILABLE",
                                              "status": {"error_code": "OK", "error_message": ""}}]})


def _metadata():
    sd = {}
    for k, f in SIGNATURES.items():
        sd[k] = {"inputs": {n: {"dtype": s.dtype.name, "shape": str(s.shape)} for n, s in INPUT_SPECS[k].items()},
                 "outputs": {n: {"dtype": s.dtype.name, "shape": str(s.shape)}
                             for n, s in f.structured_outputs.items()},
                 "method_name": "tensorflow/serving/predict"}
    return jsonify({"model_spec": {"name": MODEL_NAME, "version": str(VERSION)},
                    "metadata": {"signature_def": {"signature_def": sd}}})


def _predict(body):
    sig_name = body.get("signature_name", "serving_default")
    if sig_name not in SIGNATURES:
        raise BadRequest(f"Serving signature name: \"{sig_name}\" not found in signature def")
    specs = INPUT_SPECS[sig_name]
    fn = SIGNATURES[sig_name]
    if "instances" in body:  # row format
        inst = body["instances"]
        if not isinstance(inst, list) or not inst:
            raise BadRequest("instances must be a non-empty list")
        if isinstance(inst[0], dict):
            feed = {k: _tensor([i[k] for i in inst], s) for k, s in specs.items()}
        elif len(specs) == 1:
            (k, s), = specs.items()
            feed = {k: _tensor(inst, s)}
        else:
            raise BadRequest("instances must be objects when the signature has >1 input")
        out = fn(**feed)
        cols = {k: _jsonable(v) for k, v in out.items()}
        n = len(inst)
        return {"predictions": [{k: cols[k][i] for k in cols} for i in range(n)]}
    if "inputs" in body:  # columnar format
        inp = body["inputs"]
        if not isinstance(inp, dict):
            (k, s), = specs.items()
            inp = {k: inp}
        feed = {k: _tensor(inp[k], s) for k, s in specs.items()}
        return {"outputs": {k: _jsonable(v) for k, v in fn(**feed).items()}}
    raise BadRequest("Missing 'instances' or 'inputs' key")


@app.route("/v1/models/<path:spec>", methods=["GET", "POST"])
def models(spec):
    m = _PATH.match(spec)
    if not m or m.group("name") != MODEL_NAME:
        return jsonify({"error": f"Servable not found for request: {spec}"}), 404
    ver, rest = m.group("ver"), m.group("rest")
    if request.method == "GET":
        if rest is None:
            return _status(ver)
        if rest == "/metadata":
            return _metadata()
        return jsonify({"error": "use POST for :predict"}), 405
    if rest != ":predict":
        return jsonify({"error": "unsupported verb"}), 404
    if ver is not None and int(ver) != VERSION:
        return _status(ver)
    try:
        body = request.get_json(force=True)
        return jsonify(_predict(body))
    except (BadRequest, KeyError, TypeError, ValueError, tf.errors.InvalidArgumentError) as e:
        return jsonify({"error": f"{type(e).__name__}: {e}"}), 400
