"""Runs trainyard_split's ExampleGen executor (CSV) with Beam on a tiny dataset and checks each
strategy: no train row on or after the cut (time_holdout, strict_temporal), a 2:1 hash split
(random), a deterministic sample. Usage: split_check.py MODULES_DIR WORK_DIR RULE_JSON...
Prints SPLIT_CHECK_OK <json> per rule."""
import csv
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, sys.argv[1])

import apache_beam as beam  # noqa: E402
import trainyard_split  # noqa: E402

DAY = 86400
START = 20_000 * DAY  # 2024-10-04
N = 600


def write_data(d):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "data.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customer_id", "product_id", "timestamp", "day"])
        for i in range(N):
            ts = START + (i * 30 * DAY) // N + (i * 7919) % DAY  # 30 days, times spread
            day = "2024-10-%02d" % (4 + (ts - START) // DAY) if (ts - START) // DAY < 28 else "2024-11-%02d" % ((ts - START) // DAY - 27)
            w.writerow(["c%d" % (i % 37), "p%d" % (i % 11), ts, day])


def run(data, work, rule, tag):
    props = {
        "input_base": data,
        "input_config": json.dumps({"splits": [{"name": "single_split", "pattern": "*"}]}),
        "output_config": json.dumps({"split_config": {"splits": [{"name": "train", "hash_buckets": 2}, {"name": "eval", "hash_buckets": 1}]}}),
        "output_data_format": 6,
        "custom_config": json.dumps({"custom_config": {"@type": "type.googleapis.com/google.protobuf.Struct", "value": rule}}),
    }
    out = os.path.join(work, tag)
    col = rule.get("date_column") or "timestamp"
    with beam.Pipeline(runner="DirectRunner") as p:
        splits = trainyard_split.CsvExecutor().GenerateExamplesByBeam(p, props)
        for name, pcoll in splits.items():
            _ = (
                pcoll
                | ("day_" + name) >> beam.Map(lambda ex: json.dumps([trainyard_split.example_day(ex, col), ex.features.feature["customer_id"].bytes_list.value[0].decode()]))
                | ("write_" + name) >> beam.io.WriteToText(os.path.join(out, name), shard_name_template="")
            )
    res = {}
    for name in ("train", "eval"):
        with open(os.path.join(out, name)) as f:
            res[name] = [json.loads(line) for line in f]
    return res


def main():
    work = sys.argv[2]
    data = os.path.join(work, "data")
    write_data(data)
    for raw in sys.argv[3:]:
        rule = json.loads(raw)
        tag = "%s_%s" % (rule["split_strategy"], rule.get("sample_percent", 100))
        r = run(data, work, rule, tag)
        train_days = [d for d, _ in r["train"]]
        eval_days = [d for d, _ in r["eval"]]
        n = len(train_days) + len(eval_days)
        summary = {"rule": rule, "train": len(train_days), "eval": len(eval_days),
                   "max_train_day": max(train_days) if train_days else None,
                   "min_eval_day": min(eval_days) if eval_days else None,
                   "max_day": max(train_days + eval_days)}
        assert train_days and eval_days, summary
        pct = int(rule.get("sample_percent", 100))
        if pct == 100:
            assert n == N, summary
        else:
            assert abs(n - N * pct / 100) < N * 0.1, summary
            again = run(data, work, rule, tag + "_again")
            assert sorted(map(tuple, again["train"])) == sorted(map(tuple, r["train"])), "sample is not deterministic"
        if rule["split_strategy"] == "time_holdout":
            cut = summary["max_day"] - int(rule["holdout_days"]) + 1
            summary["cut_day"] = cut
            assert max(train_days) < cut, summary  # no train row on or after the cut
            assert min(eval_days) >= cut, summary
        elif rule["split_strategy"] == "strict_temporal":
            assert max(train_days) < min(eval_days), summary
            assert 0.55 < len(train_days) / n < 0.8, summary
        else:
            assert 0.55 < len(train_days) / n < 0.78, summary
            # a random split mixes days
            assert max(train_days) >= min(eval_days), summary
        print("SPLIT_CHECK_OK " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
