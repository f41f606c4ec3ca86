"""Writes the tour's pushed model: a tiny, real retrieval SavedModel, where the Pusher puts one.

  TF_USE_LEGACY_KERAS=1 .venv-tf/bin/python examples/tour/make_pushed_model.py [OUT]

OUT (default: examples/tour/pushed_model, committed) gets `<version>/saved_model.pb`,
`variables/` and `assets.extra/tf_serving_warmup_requests`, the layout the Pusher writes, so
the tour (README "Using the CLI", scripts/demo.sh) can register, deploy and query a model
without training one.

The model is a popularity recommender over a 12-product catalog of the synthetic B2B dataset,
nudged by the buyer's segment. Its `serving_default` signature has the contract of the
generated trainer's retrieval export for the default feature config (examples/tour/
retrieval_run.json gives none): the raw buyer features in (customer_id, city, segment:
string [batch]; revenue: float32 [batch]; timestamp: int64 [batch]) and the top K original
product ids with their scores out (product_ids: string [batch, K], scores: float32
[batch, K]). trainyard-serve checks that contract on deploy.
"""
import os
import shutil
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

VERSION = "1"
K = 5
# Product ids as trainyard-synth writes them (P + 6 digits).
CATALOG = [f"P{100000 + p * 7:06d}" for p in range(12)]
POPULARITY = np.linspace(1.0, 0.45, len(CATALOG)).astype(np.float32)
SEGMENTS = ["office", "industrial", "wholesale", "retail"]
# Each segment prefers a few products of its own (rows: segments, columns: products).
BOOST = np.zeros((len(SEGMENTS), len(CATALOG)), np.float32)
for s in range(len(SEGMENTS)):
    BOOST[s, [s + 6, (s * 3 + 7) % len(CATALOG)]] = 0.6


class PopularityRecommender(tf.Module):
    def __init__(self):
        super().__init__()
        self.catalog = tf.constant(CATALOG)
        self.segments = tf.constant(SEGMENTS)
        self.popularity = tf.Variable(POPULARITY, name="popularity")
        self.boost = tf.Variable(BOOST, name="segment_boost")

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="customer_id"),
        tf.TensorSpec([None], tf.string, name="city"),
        tf.TensorSpec([None], tf.string, name="segment"),
        tf.TensorSpec([None], tf.float32, name="revenue"),
        tf.TensorSpec([None], tf.int64, name="timestamp"),
    ])
    def serve(self, customer_id, city, segment, revenue, timestamp):
        # customer_id, city, revenue and timestamp are part of the contract; a popularity model
        # reads only the segment (an unknown segment gets the plain popularity ranking).
        del customer_id, city, revenue, timestamp
        onehot = tf.cast(tf.equal(segment[:, None], self.segments[None, :]), tf.float32)
        scores = self.popularity[None, :] + tf.matmul(onehot, self.boost)
        top = tf.math.top_k(scores, k=K)
        return {
            "product_ids": tf.ensure_shape(tf.gather(self.catalog, top.indices), [None, K]),
            "scores": tf.ensure_shape(top.values, [None, K]),
        }


def warmup_requests(path):
    """TF Serving's warm-up records, as the generated trainer writes them."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    feed = {
        "customer_id": tf.constant(["C10102", "C10196"]),
        "city": tf.constant(["city_04", "city_05"]),
        "segment": tf.constant(["office", "retail"]),
        "revenue": tf.constant([1200.5, 80.0], tf.float32),
        "timestamp": tf.constant([1764000000, 1764090000], tf.int64),
    }
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as w:
        req = predict_pb2.PredictRequest()
        req.model_spec.name = "recommender"
        req.model_spec.signature_name = "serving_default"
        for key, v in feed.items():
            req.inputs[key].CopyFrom(tf.make_tensor_proto(v))
        w.write(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=req)).SerializeToString())


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "pushed_model")
    shutil.rmtree(out, ignore_errors=True)
    version_dir = os.path.join(out, VERSION)
    module = PopularityRecommender()
    tf.saved_model.save(module, version_dir, signatures={"serving_default": module.serve})
    warmup_requests(os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests"))
    # What the reloaded model answers, for a look (the tests ask trainyard-serve).
    f = tf.saved_model.load(version_dir).signatures["serving_default"]
    got = f(customer_id=tf.constant(["C10102"]), city=tf.constant(["city_04"]),
            segment=tf.constant(["office"]), revenue=tf.constant([1200.5]),
            timestamp=tf.constant([1764000000], tf.int64))
    print("wrote", version_dir, [x.decode() for x in got["product_ids"].numpy()[0]])


if __name__ == "__main__":
    main()
