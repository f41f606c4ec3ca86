"""Baseline for benches/codegen_trainer_throughput.sh: a plain TFRS-tutorial-style retrieval
trainer (tensorflow.org/recommenders/examples/basic_retrieval): StringLookup + Embedding towers
on customer_id and product_id, tfrs.tasks.Retrieval with FactorizedTopK over all products,
model.fit on a cached, batched tf.data pipeline. Reads the same synthetic CSVs and reports
training examples/s and recall@100 on the same held-out test interactions, scored by the same
code as the generated trainer's exported model (benches/codegen_recall_eval.py).

  python codegen_tutorial_trainer.py DATA_DIR --epochs N --batch-size B [--lr X]
"""
import argparse
import csv
import json
import os
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import codegen_recall_eval as recall_eval  # noqa: E402


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return np.array([r["customer_id"] for r in rows]), np.array([r["product_id"] for r in rows])


class TutorialModel(tfrs.Model):
    def __init__(self, customers, products, dim):
        super().__init__()
        self.customer_model = tf.keras.Sequential(
            [tf.keras.layers.StringLookup(vocabulary=customers, mask_token=None),
             tf.keras.layers.Embedding(len(customers) + 1, dim)])
        self.product_model = tf.keras.Sequential(
            [tf.keras.layers.StringLookup(vocabulary=products, mask_token=None),
             tf.keras.layers.Embedding(len(products) + 1, dim)])
        candidates = tf.data.Dataset.from_tensor_slices(products).batch(128).map(self.product_model)
        self.task = tfrs.tasks.Retrieval(metrics=tfrs.metrics.FactorizedTopK(candidates=candidates))

    def compute_loss(self, features, training=False):
        return self.task(self.customer_model(features["customer_id"]),
                         self.product_model(features["product_id"]))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--dim", type=int, default=32)
    a = p.parse_args()
    tf.keras.utils.set_random_seed(42)
    tc, tp = read(os.path.join(a.data, "train", "interactions.csv"))
    xc, xp = read(os.path.join(a.data, "test", "interactions.csv"))
    customers, products = np.unique(tc), np.unique(tp)
    train = (tf.data.Dataset.from_tensor_slices({"customer_id": tc, "product_id": tp})
             .shuffle(len(tc), seed=42, reshuffle_each_iteration=True).batch(a.batch_size).cache())
    model = TutorialModel(customers, products, a.dim)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=a.lr))
    t0 = time.time()
    model.fit(train, epochs=a.epochs, verbose=2)
    seconds = time.time() - t0
    # recall@100 on the test interactions with the code that scores the generated trainer:
    # the top 100 of all training products for each test customer
    cand = model.product_model(tf.constant(products)).numpy()
    top = []
    for s in range(0, len(xc), 1024):
        q = model.customer_model(tf.constant(xc[s:s + 1024])).numpy()
        _, rows = tf.math.top_k(tf.constant(q @ cand.T), k=recall_eval.K)
        top.extend(products[rows.numpy()].tolist())
    recall = recall_eval.recall_at_k(top, xp.tolist(), set(products.tolist()))
    result = {"examples_per_second": len(tc) * a.epochs / seconds, "train_seconds": seconds,
              "train_examples": int(len(tc)), "epochs": a.epochs, "test_recall_at_100": recall}
    print("TUTORIAL_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
