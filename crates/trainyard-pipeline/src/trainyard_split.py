"""trainyard's ExampleGen split: row sampling and time-aware train/eval splits.

The custom executor of the pipeline's file-based ExampleGen (CSV or Parquet input) when a run's
sampling_config is not ExampleGen's default. Its rule is the component's custom_config (a
google.protobuf.Struct packed into example_gen_pb2.CustomConfig):

  sample_percent   1-100: rows kept, chosen by a hash of the row (deterministic)
  split_strategy   random | time_holdout | strict_temporal
  date_column      the column temporal strategies order by: epoch seconds (INT64, TIMESTAMP,
                   DATETIME) or a 'YYYY-MM-DD...' string (DATE)
  holdout_days     time_holdout: the last N days (counted back from the newest day) are eval

random: 2/3 train, 1/3 eval by a hash of the row. time_holdout: eval is every row on or after
the cut day (newest day - holdout_days + 1), train every row before it. strict_temporal: the
cut is the first day before which 2/3 of the rows lie. In both temporal strategies no train row
is on or after the cut, and a row without a date goes to eval (it cannot be placed in time).
The same rule is compiled into the local and the Vertex pipeline. Shipped beside the generated
modules and in trainyard's TFX images, like trainyard_evaluator."""
import datetime
import hashlib
import json

import apache_beam as beam
from tfx.components.example_gen.csv_example_gen import executor as csv_executor
from tfx.components.example_gen.custom_executors import parquet_executor
from tfx.proto import example_gen_pb2
from tfx.utils import proto_utils

SECONDS_PER_DAY = 86400
_EPOCH = datetime.date(1970, 1, 1).toordinal()
TRAIN, EVAL = 0, 1


def rule_of(exec_properties):
    """The split rule in ExampleGen's custom_config, or None when there is none."""
    raw = exec_properties.get("custom_config")
    if not raw:
        return None
    if not isinstance(raw, str):  # a CustomConfig proto
        from google.protobuf import json_format

        raw = json_format.MessageToJson(raw)
    doc = json.loads(raw)
    rule = doc.get("custom_config", doc)
    rule = rule.get("value", rule)  # a Struct packed in an Any
    return rule if "split_strategy" in rule else None


def _bucket(example, salt, n):
    digest = hashlib.md5(salt + example.SerializeToString(deterministic=True)).hexdigest()
    return int(digest[:12], 16) % n


def keep(example, percent):
    """Whether a row is in the sample of `percent` percent (a hash of the row)."""
    return percent >= 100 or _bucket(example, b"trainyard-sample", 100) < percent


def day_number(value):
    """Days since 1970-01-01 of a date column value: epoch seconds, or a 'YYYY-MM-DD...' string
    (a DATE, or a TIMESTAMP as text). None when it cannot be read."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        try:
            return datetime.date.fromisoformat(text[:10]).toordinal() - _EPOCH
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                return None
    return int(value // SECONDS_PER_DAY)


def example_day(example, column):
    """The day of a tf.train.Example's date column (None when missing)."""
    feature = example.features.feature.get(column)
    if feature is None:
        return None
    kind = feature.WhichOneof("kind")
    values = getattr(feature, kind).value if kind else []
    return day_number(values[0]) if len(values) else None


def cut_day(day_counts, rule):
    """The first eval day, from (day, rows) pairs of the whole (sampled) data."""
    days = sorted(day_counts)
    if not days:
        return None
    if rule["split_strategy"] == "time_holdout":
        return days[-1][0] - int(rule["holdout_days"]) + 1
    total = sum(n for _, n in days)
    before = 0
    for day, n in days:
        if before >= total * 2.0 / 3.0:
            return day
        before += n
    return days[-1][0]


def split_of(day, cut):
    """TRAIN for a row strictly before the cut day, else EVAL."""
    return TRAIN if day is not None and cut is not None and day < cut else EVAL


def _log_cut(cut, rule):
    when = (datetime.date.fromordinal(cut + _EPOCH).isoformat()) if cut is not None else None
    print("[trainyard] SPLIT " + json.dumps({"strategy": rule["split_strategy"], "cut_day": when}), flush=True)
    return cut


class _Split:
    """GenerateExamplesByBeam with the rule: sample, then split (random or temporal)."""

    def GenerateExamplesByBeam(self, pipeline, exec_properties):  # noqa: N802  (TFX's name)
        rule = rule_of(exec_properties)
        if rule is None:
            return super().GenerateExamplesByBeam(pipeline, exec_properties)
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties["input_config"], input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties["output_config"], output_config)
        names = [s.name for s in output_config.split_config.splits] or ["train", "eval"]
        exec_properties["_beam_pipeline_args"] = self._beam_pipeline_args or []
        to_records = self.GetInputSourceToExamplePTransform()
        records = pipeline | "InputToRecord" >> to_records(exec_properties, input_config.splits[0].pattern)
        percent = int(rule.get("sample_percent", 100))
        if percent < 100:
            records = records | "Sample" >> beam.Filter(keep, percent)
        if rule["split_strategy"] == "random":
            parts = records | "SplitData" >> beam.Partition(
                lambda ex, n: TRAIN if _bucket(ex, b"trainyard-split", 3) < 2 else EVAL, 2
            )
        else:
            column = rule["date_column"]
            dated = records | "Day" >> beam.Map(lambda ex: (example_day(ex, column), ex))
            cut = (
                dated
                | "Days" >> beam.Map(lambda kv: kv[0])
                | "Dated" >> beam.Filter(lambda d: d is not None)
                | "RowsPerDay" >> beam.combiners.Count.PerElement()
                | "AllDays" >> beam.combiners.ToList()
                | "Cut" >> beam.Map(lambda counts: _log_cut(cut_day(counts, rule), rule))
            )
            split = dated | "SplitData" >> beam.Partition(
                lambda kv, n, cut: split_of(kv[0], cut), 2, cut=beam.pvalue.AsSingleton(cut)
            )
            parts = [
                split[i] | ("Strip[%s]" % names[i]) >> beam.Map(lambda kv: kv[1]) for i in (TRAIN, EVAL)
            ]
        return {names[TRAIN]: parts[TRAIN], names[EVAL]: parts[EVAL]}


class CsvExecutor(_Split, csv_executor.Executor):
    """CsvExampleGen's executor with trainyard's sampling and split."""


class ParquetExecutor(_Split, parquet_executor.Executor):
    """The Parquet ExampleGen executor with trainyard's sampling and split."""


try:  # needs google-cloud-bigquery (in the TFX images; optional locally)
    from tfx.extensions.google_cloud_big_query.example_gen import executor as _bq_executor

    class BigQueryExecutor(_Split, _bq_executor.Executor):
        """BigQueryExampleGen's executor with trainyard's sampling and split."""

except ImportError:  # pragma: no cover
    pass
