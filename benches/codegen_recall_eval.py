"""The ONE recall@100 both trainers of benches/codegen_trainer_throughput.sh are scored with:
the share of held-out (customer, product) interactions whose product is among the 100 products
a model returns for that customer. Candidates are the products of the training split; a test
product that is not one counts as a miss.

  - the generated trainer: its EXPORTED serving model (serving_default on the raw test
    columns, as trainyard-serve answers), via `python codegen_recall_eval.py SERVING_DIR DATA_DIR`
  - the tutorial trainer: top-100 of its two towers over the same candidates (imported by
    codegen_tutorial_trainer.py)
"""
import csv
import json
import os
import sys

K = 100


def read_split(data_dir, split):
    with open(os.path.join(data_dir, split, "interactions.csv"), newline="") as f:
        return list(csv.DictReader(f))


def recall_at_k(top_ids, true_ids, candidates):
    """top_ids: one sequence of returned product ids per interaction; true_ids: the purchased
    product of each; candidates: the set of products a model may return."""
    assert len(top_ids) == len(true_ids)
    hits = 0
    for returned, true in zip(top_ids, true_ids):
        returned = [r.decode("utf-8") if isinstance(r, bytes) else str(r) for r in returned]
        assert len(returned) <= K
        if true in candidates and true in set(returned):
            hits += 1
    return hits / len(true_ids) if true_ids else 0.0


def serving_model_recall(serving_dir, data_dir, batch_size=1024):
    """recall@100 of an exported trainyard model on data_dir/test (raw columns as served)."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import numpy as np
    import tensorflow as tf

    serve = tf.saved_model.load(serving_dir).signatures["serving_default"]
    inputs = serve.structured_input_signature[1]
    test = read_split(data_dir, "test")
    candidates = {r["product_id"] for r in read_split(data_dir, "train")}
    top = []
    for s in range(0, len(test), batch_size):
        rows = test[s : s + batch_size]
        feed = {}
        for key, spec in inputs.items():
            values = [r[key] for r in rows]
            if spec.dtype == tf.string:
                feed[key] = tf.constant(values)
            else:
                feed[key] = tf.constant(np.array([float(v) for v in values]).astype(spec.dtype.as_numpy_dtype))
        top.extend(serve(**feed)["product_ids"].numpy().tolist())
    return recall_at_k(top, [r["product_id"] for r in test], candidates)


if __name__ == "__main__":
    print("EVAL_RESULT " + json.dumps({"test_recall_at_100": serving_model_recall(sys.argv[1], sys.argv[2])}))
