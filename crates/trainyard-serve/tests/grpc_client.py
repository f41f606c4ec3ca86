"""Calls trainyard-serve's gRPC API with TF Serving's official Python client
(tensorflow-serving-api's generated stubs, tf.make_tensor_proto / tf.make_ndarray) and prints
what it got as JSON, for tests/serve_grpc.rs to compare with the REST answers.

  python grpc_client.py HOST:PORT MODEL_NAME REQUEST.json

REQUEST.json: {"instances": [...], "embedding_ids": [...]} (the test model's features).
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)


def to_json(outputs):
    out = {}
    for name, proto in outputs.items():
        a = tf.make_ndarray(proto)
        out[name] = {
            "dtype": tf.dtypes.as_dtype(proto.dtype).name,
            "shape": list(a.shape),
            "values": [x.decode() for x in a.ravel()] if a.dtype == object else a.tolist(),
        }
    return out


def error_of(call):
    try:
        call()
    except grpc.RpcError as e:
        return {"code": e.code().name, "details": e.details()}
    return {"code": "OK", "details": ""}


def main():
    addr, name, req_path = sys.argv[1:4]
    req = json.load(open(req_path))
    channel = grpc.insecure_channel(addr)
    predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    result = {}

    status_req = get_model_status_pb2.GetModelStatusRequest()
    status_req.model_spec.name = name
    status = models.GetModelStatus(status_req, timeout=30)
    result["status"] = [
        {"version": s.version, "state": s.state,
         "state_name": get_model_status_pb2.ModelVersionStatus.State.Name(s.state),
         "error_code": s.status.error_code}
        for s in status.model_version_status
    ]

    meta_req = get_model_metadata_pb2.GetModelMetadataRequest()
    meta_req.model_spec.name = name
    meta_req.metadata_field.append("signature_def")
    meta = predict.GetModelMetadata(meta_req, timeout=30)
    defs = get_model_metadata_pb2.SignatureDefMap()
    meta.metadata["signature_def"].Unpack(defs)
    result["metadata"] = {
        "model_spec": {"name": meta.model_spec.name, "version": meta.model_spec.version.value},
        "signature_def": {
            key: {
                "method_name": d.method_name,
                "inputs": {k: {"dtype": tf.dtypes.as_dtype(v.dtype).name,
                               "shape": [x.size for x in v.tensor_shape.dim],
                               "name": v.name} for k, v in d.inputs.items()},
                "outputs": {k: {"dtype": tf.dtypes.as_dtype(v.dtype).name,
                                "shape": [x.size for x in v.tensor_shape.dim],
                                "name": v.name} for k, v in d.outputs.items()},
            }
            for key, d in defs.signature_def.items()
        },
    }

    inst = req["instances"]

    def predict_request(signature="", version=None, model=name):
        r = predict_pb2.PredictRequest()
        r.model_spec.name = model
        if signature:
            r.model_spec.signature_name = signature
        if version is not None:
            r.model_spec.version.value = version
        return r

    # numpy arrays: make_tensor_proto writes numbers as tensor_content, strings as string_val
    r = predict_request()
    r.inputs["customer_id"].CopyFrom(tf.make_tensor_proto([x["customer_id"] for x in inst]))
    r.inputs["city"].CopyFrom(tf.make_tensor_proto([x["city"] for x in inst]))
    r.inputs["revenue"].CopyFrom(
        tf.make_tensor_proto(np.array([x["revenue"] for x in inst], np.float32)))
    r.inputs["visits"].CopyFrom(
        tf.make_tensor_proto(np.array([x["visits"] for x in inst], np.int64)))
    resp = predict.Predict(r, timeout=60)
    result["predict"] = {
        "model_spec": {"name": resp.model_spec.name, "version": resp.model_spec.version.value,
                       "signature_name": resp.model_spec.signature_name},
        "outputs": to_json(resp.outputs),
    }

    # the same request, only `scores`, at the served version by number
    r.output_filter.append("scores")
    r.model_spec.version.value = result["status"][0]["version"]
    result["predict_filtered"] = to_json(predict.Predict(r, timeout=60).outputs)

    # the second signature
    e = predict_request("customer_embedding")
    e.inputs["customer_id"].CopyFrom(tf.make_tensor_proto(req["embedding_ids"]))
    result["embedding"] = to_json(predict.Predict(e, timeout=60).outputs)

    # refusals
    bad_dtype = predict_request()
    bad_dtype.CopyFrom(r)
    del bad_dtype.output_filter[:]
    bad_dtype.inputs["revenue"].CopyFrom(
        tf.make_tensor_proto(np.array([x["revenue"] for x in inst], np.float64)))
    missing = predict_request()
    missing.inputs["customer_id"].CopyFrom(tf.make_tensor_proto(["C0001"]))
    no_sig = predict_request("nope")
    no_sig.inputs["customer_id"].CopyFrom(tf.make_tensor_proto(["C0001"]))
    wrong_version = predict_request(version=999)
    wrong_version.inputs["customer_id"].CopyFrom(tf.make_tensor_proto(["C0001"]))
    wrong_model = predict_request(model="nobody")
    result["errors"] = {
        "bad_dtype": error_of(lambda: predict.Predict(bad_dtype, timeout=30)),
        "missing_input": error_of(lambda: predict.Predict(missing, timeout=30)),
        "unknown_signature": error_of(lambda: predict.Predict(no_sig, timeout=30)),
        "wrong_version": error_of(lambda: predict.Predict(wrong_version, timeout=30)),
        "wrong_model": error_of(lambda: predict.Predict(wrong_model, timeout=30)),
        "classify": error_of(lambda: predict.Classify(
            classification_pb2.ClassificationRequest(), timeout=30)),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
