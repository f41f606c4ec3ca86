//! Sampling and time-aware splits (sampling_config): compiled into ExampleGen the same way for
//! the local and the Vertex pipeline (trainyard_split's executor, the rule in custom_config),
//! untouched when the run keeps ExampleGen's default; and the executor run for real with Beam
//! on tiny data (managed env): a time_holdout split puts no training example on or after the
//! cut, strict_temporal no train row after an eval row, a sample is deterministic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use trainyard_core::config::{
    DataSource, EvaluatorConfig, GpuConfig, SamplingConfig, SplitStrategy, TrainingParams,
};
use trainyard_core::model_config::ModelType;
use trainyard_pipeline::{local, vertex, PipelineInputs, SPLIT_MODULE, SPLIT_SOURCE};

fn inputs(data: DataSource, sampling: SamplingConfig) -> PipelineInputs {
    PipelineInputs {
        name: "recs".into(),
        pipeline_root: "/tmp/root".into(),
        data,
        model_type: ModelType::Retrieval,
        modules: BTreeMap::from([
            (
                "transform_module.py".into(),
                "def preprocessing_fn(inputs):\n    return inputs\n".into(),
            ),
            (
                "trainer_module.py".into(),
                "def run_fn(fn_args):\n    pass\n".into(),
            ),
        ]),
        training: TrainingParams::default(),
        gpu: GpuConfig::default(),
        evaluator: EvaluatorConfig::default(),
        sampling,
        serving_dir: "/tmp/serving".into(),
        project: "p".into(),
        region: "europe-central2".into(),
        tfx_image: "tfx".into(),
        trainer_image: "trainer".into(),
        trainer_gpu_image: "tfx-gpu".into(),
        labels: BTreeMap::new(),
        mlflow_tracking_uri: None,
        trainyard_run_id: None,
        trainyard_run_key: None,
    }
}

fn holdout() -> SamplingConfig {
    SamplingConfig {
        sample_percent: 50,
        split_strategy: SplitStrategy::TimeHoldout,
        date_column: Some("timestamp".into()),
        holdout_days: 7,
    }
}

fn csv() -> DataSource {
    DataSource::Csv {
        path: "/data/csv".into(),
    }
}

/// The rule of the local pipeline.py: `SPLIT_RULE = json.loads("<json>")`.
fn local_rule(src: &str) -> Option<Value> {
    let line = src.lines().find(|l| l.starts_with("SPLIT_RULE = "))?;
    let lit = line
        .trim_start_matches("SPLIT_RULE = json.loads(")
        .trim_end_matches(')');
    let text: String = serde_json::from_str(lit).unwrap();
    Some(serde_json::from_str(&text).unwrap())
}

/// ExampleGen's executor class and the rule in its custom_config, from a compiled job.
fn vertex_example_gen(job: &Value, task: &str) -> (String, Option<Value>) {
    let exec = &job["pipelineSpec"]["deploymentSpec"]["executors"][format!("{task}_executor")]
        ["container"]["args"];
    let args: Vec<&str> = exec
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let class = args[args
        .iter()
        .position(|a| *a == "--executor_class_path")
        .unwrap()
        + 1];
    let cc = job["pipelineSpec"]["root"]["dag"]["tasks"][task]["inputs"]["parameters"]
        ["custom_config"]["runtimeValue"]["constantValue"]["stringValue"]
        .as_str()
        .map(|s| {
            let v: Value = serde_json::from_str(s).unwrap();
            assert_eq!(
                v["custom_config"]["@type"],
                "type.googleapis.com/google.protobuf.Struct"
            );
            v["custom_config"]["value"].clone()
        });
    (class.to_string(), cc)
}

#[test]
fn default_sampling_compiles_as_plain_tfx() {
    let i = inputs(csv(), SamplingConfig::default());
    assert_eq!(i.split_rule(), None);
    assert!(!i.all_modules().contains_key(SPLIT_MODULE));
    let src = local::render(&i, "/m", "/md.sqlite").unwrap();
    assert!(src.contains("example_gen = tfx.components.CsvExampleGen(input_base=\"/data/csv\")"));
    assert!(!src.contains("trainyard_split"));
    let job = vertex::compile(&i).unwrap().job;
    let (class, cc) = vertex_example_gen(&job, "CsvExampleGen");
    assert_eq!(
        class,
        "tfx.components.example_gen.csv_example_gen.executor.Executor"
    );
    assert_eq!(cc, None);
}

#[test]
fn local_and_vertex_get_the_same_split_rule() {
    let i = inputs(csv(), holdout());
    let rule = i.split_rule().unwrap();
    assert_eq!(
        rule,
        serde_json::json!({"sample_percent": 50, "split_strategy": "time_holdout",
                           "date_column": "timestamp", "holdout_days": 7})
    );
    // the executor ships with the modules
    assert_eq!(i.all_modules()[SPLIT_MODULE], SPLIT_SOURCE);
    let src = local::render(&i, "/m", "/md.sqlite").unwrap();
    assert!(
        src.contains(
            "custom_executor_spec=executor_spec.BeamExecutorSpec(trainyard_split.CsvExecutor)"
        ),
        "{src}"
    );
    assert!(src.contains(").with_id(\"CsvExampleGen\")"));
    assert_eq!(local_rule(&src), Some(rule.clone()));
    let job = vertex::compile(&i).unwrap().job;
    let (class, cc) = vertex_example_gen(&job, "CsvExampleGen");
    assert_eq!(class, "trainyard_split.CsvExecutor");
    assert_eq!(cc, Some(rule.clone()));
    // the user-code wheels carry the executor too
    let wheels = vertex::compile(&i).unwrap().wheels;
    assert!(!wheels.is_empty());

    // BigQuery (Vertex) and Parquet get the same rule through their own executors
    let bq = inputs(
        DataSource::BigQuery {
            query: "SELECT * FROM `p.d.t`".into(),
        },
        holdout(),
    );
    let (class, cc) = vertex_example_gen(&vertex::compile(&bq).unwrap().job, "BigQueryExampleGen");
    assert_eq!(class, "trainyard_split.BigQueryExecutor");
    assert_eq!(cc, Some(rule.clone()));
    let pq = inputs(
        DataSource::Parquet {
            path: "/data/pq".into(),
        },
        holdout(),
    );
    let (class, cc) = vertex_example_gen(&vertex::compile(&pq).unwrap().job, "FileBasedExampleGen");
    assert_eq!(class, "trainyard_split.ParquetExecutor");
    assert_eq!(cc, Some(rule.clone()));
    let src = local::render(&pq, "/m", "/md.sqlite").unwrap();
    assert!(src.contains("BeamExecutorSpec(trainyard_split.ParquetExecutor)"));
    assert_eq!(local_rule(&src), Some(rule));

    // an invalid sampling config is refused before anything is compiled
    let bad = inputs(
        csv(),
        SamplingConfig {
            date_column: None,
            ..holdout()
        },
    );
    let e = local::render(&bad, "/m", "/md.sqlite").unwrap_err();
    assert!(e.to_string().contains("sampling_config.date_column"), "{e}");
}

fn python() -> PathBuf {
    PathBuf::from(
        std::env::var_os("TRAINYARD_PYTHON").expect(
            "TRAINYARD_PYTHON must name the managed env's python (make test-pipeline sets it)",
        ),
    )
}

#[test]
#[ignore = "needs the managed Python env (TRAINYARD_PYTHON); run by `make test-pipeline`"]
fn the_split_executor_keeps_training_rows_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let modules = dir.path().join("modules");
    std::fs::create_dir_all(&modules).unwrap();
    std::fs::write(modules.join(SPLIT_MODULE), SPLIT_SOURCE).unwrap();
    // the rules exactly as the pipelines compile them
    let rules: Vec<String> = [
        holdout(),
        SamplingConfig {
            sample_percent: 100,
            ..holdout()
        },
        SamplingConfig {
            split_strategy: SplitStrategy::StrictTemporal,
            date_column: Some("day".into()),
            sample_percent: 100,
            ..holdout()
        },
        SamplingConfig {
            sample_percent: 50,
            ..SamplingConfig::default()
        },
    ]
    .into_iter()
    .map(|s| inputs(csv(), s).split_rule().unwrap().to_string())
    .collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/split_check.py");
    let out = std::process::Command::new(python())
        .arg(&script)
        .arg(&modules)
        .arg(dir.path().join("work"))
        .args(&rules)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "split_check failed:\n{text}");
    let results: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("SPLIT_CHECK_OK "))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), rules.len(), "{text}");
    for r in &results {
        println!("{r}");
        if r["rule"]["split_strategy"] == "time_holdout" {
            // the script asserted it; the numbers say it too
            assert!(r["max_train_day"].as_i64() < r["cut_day"].as_i64(), "{r}");
            assert!(r["min_eval_day"].as_i64() >= r["cut_day"].as_i64(), "{r}");
        }
    }
}

#[test]
#[ignore = "needs the managed Python env (TRAINYARD_PYTHON); run by `make test-pipeline`"]
fn the_local_pipeline_builds_its_example_gen_with_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let modules = dir.path().join("modules");
    std::fs::create_dir_all(&modules).unwrap();
    let i = inputs(csv(), holdout());
    let files = local::files(&i, modules.to_str().unwrap(), "/tmp/md.sqlite").unwrap();
    for (name, src) in &files {
        std::fs::write(modules.join(name), src).unwrap();
    }
    let pipeline = modules.join(trainyard_pipeline::local_pipeline_file());
    let probe = r#"
import json, runpy, sys
ns = runpy.run_path(sys.argv[1])
p = ns["create_pipeline"]()
eg = p.components[0]
import trainyard_split  # the executor parses the rule it will be given
print("EXAMPLE_GEN " + json.dumps({"id": eg.id, "executor": eg.executor_spec.executor_class.__name__,
      "rule": trainyard_split.rule_of(eg.exec_properties)}))
"#;
    let out = std::process::Command::new(python())
        .args(["-c", probe])
        .arg(&pipeline)
        .env("TF_USE_LEGACY_KERAS", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("EXAMPLE_GEN "))
        .unwrap_or_else(|| panic!("{text}"));
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["id"], "CsvExampleGen");
    assert_eq!(v["executor"], "CsvExecutor");
    // Struct numbers are doubles
    assert_eq!(v["rule"]["split_strategy"], "time_holdout");
    assert_eq!(v["rule"]["holdout_days"].as_f64(), Some(7.0));
    assert_eq!(v["rule"]["date_column"], "timestamp");
}
