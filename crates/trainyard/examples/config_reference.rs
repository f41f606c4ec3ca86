//! Generates docs/reference/configuration.md from the configuration types themselves: field
//! names, Rust types and doc comments are read from the sources (compiled in with
//! `include_str!`, so the generator always sees the code it was built with), and defaults are
//! the serialized `Default` values. `make test-docs` regenerates it and fails when the
//! committed file is stale.
//!
//! `cargo run -p trainyard --example config_reference > docs/reference/configuration.md`

use serde::Serialize;
use serde_json::Value;
use trainyard::core::config::{
    DatasetSpec, DeploymentConfig, EvaluatorConfig, GpuConfig, ScheduleConfig, TrainingParams,
};
use trainyard::core::feature_config::FeatureConfig;
use trainyard::core::model_config::ModelConfig;
use trainyard::ProjectConfig;

const CORE_CONFIG: &str = include_str!("../../trainyard-core/src/config.rs");
const MODEL_CONFIG: &str = include_str!("../../trainyard-core/src/model_config.rs");
const FEATURE_CONFIG: &str = include_str!("../../trainyard-core/src/feature_config.rs");
const PLATFORM: &str = include_str!("../src/platform.rs");
const GCP_CONFIG: &str = include_str!("../../trainyard-gcp/src/config.rs");

struct Field {
    name: String,
    ty: String,
    doc: String,
}

/// The doc comment and fields of `pub struct NAME { ... }` in rustfmt-formatted source.
fn parse_struct(src: &str, name: &str) -> (String, Vec<Field>) {
    let lines: Vec<&str> = src.lines().collect();
    let header = format!("pub struct {name} {{");
    let start = lines
        .iter()
        .position(|l| l.trim() == header)
        .unwrap_or_else(|| panic!("struct {name} not found in its source"));
    let mut doc = Vec::new();
    for l in lines[..start].iter().rev() {
        let t = l.trim();
        if let Some(d) = t.strip_prefix("///") {
            doc.push(d.trim().to_string());
        } else if !t.starts_with("#[") {
            break;
        }
    }
    doc.reverse();
    let mut fields = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    let mut rename: Option<String> = None;
    for l in &lines[start + 1..] {
        let t = l.trim();
        if t == "}" {
            break;
        }
        if let Some(d) = t.strip_prefix("///") {
            pending.push(d.trim().to_string());
        } else if t.starts_with("#[serde(") {
            if let Some(r) = t.split("rename = \"").nth(1) {
                rename = r.split('"').next().map(str::to_string);
            }
        } else if let Some(rest) = t.strip_prefix("pub ") {
            let (field, ty) = rest
                .split_once(':')
                .unwrap_or_else(|| panic!("{name}: cannot read field line {t:?}"));
            fields.push(Field {
                name: rename.take().unwrap_or_else(|| field.trim().to_string()),
                ty: ty.trim().trim_end_matches(',').to_string(),
                doc: pending.join(" "),
            });
            pending.clear();
        }
    }
    (doc.join(" "), fields)
}

/// A default value for a table cell.
fn show_default(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "*unset*".into(),
        Some(Value::Object(o)) => {
            let text = serde_json::to_string(o).unwrap();
            if text.len() <= 60 {
                format!("`{text}`")
            } else {
                "*see its table*".into()
            }
        }
        Some(Value::Array(a)) if a.is_empty() => "`[]`".into(),
        Some(Value::Array(a)) => {
            let text = serde_json::to_string(a).unwrap();
            if text.len() <= 48 {
                format!("`{text}`")
            } else {
                format!("*{} entries*", a.len())
            }
        }
        Some(v) => format!("`{}`", serde_json::to_string(v).unwrap()),
    }
}

/// The serialized names of a unit-variant enum's values: `#[serde(rename = ...)]`, else the
/// enum's `rename_all` applied to the variant name.
fn parse_enum(src: &str, name: &str) -> Vec<String> {
    let lines: Vec<&str> = src.lines().collect();
    let header = format!("pub enum {name} {{");
    let start = lines
        .iter()
        .position(|l| l.trim() == header)
        .unwrap_or_else(|| panic!("enum {name} not found in its source"));
    let rename_all = lines[..start]
        .iter()
        .rev()
        .take_while(|l| l.trim().starts_with("#[") || l.trim().starts_with("///"))
        .find_map(|l| l.split("rename_all = \"").nth(1))
        .and_then(|r| r.split('"').next())
        .unwrap_or("");
    let mut out = Vec::new();
    let mut rename = None;
    for l in &lines[start + 1..] {
        let t = l.trim();
        if t == "}" {
            break;
        }
        if let Some(r) = t.split("rename = \"").nth(1) {
            rename = r.split('"').next().map(str::to_string);
        } else if t.starts_with(|c: char| c.is_ascii_uppercase()) {
            let variant = t.trim_end_matches(',');
            let snake: String =
                variant
                    .chars()
                    .enumerate()
                    .fold(String::new(), |mut acc, (i, c)| {
                        if c.is_ascii_uppercase() && i > 0 {
                            acc.push('_');
                        }
                        acc.push(c.to_ascii_lowercase());
                        acc
                    });
            out.push(rename.take().unwrap_or_else(|| match rename_all {
                "snake_case" => snake,
                "SCREAMING_SNAKE_CASE" => snake.to_uppercase(),
                "lowercase" => variant.to_lowercase(),
                _ => variant.to_string(),
            }));
        }
    }
    out
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

struct Doc(String);

impl Doc {
    /// A table for one struct; `default` is its serialized default (or its parent's value).
    fn table(&mut self, title: &str, src: &str, name: &str, default: &Value) {
        let (doc, fields) = parse_struct(src, name);
        let obj = default
            .as_object()
            .unwrap_or_else(|| panic!("{name}: the default is not an object"));
        // The parse must account for every serialized key, or the table would lie.
        for key in obj.keys() {
            assert!(
                fields.iter().any(|f| &f.name == key),
                "{name}: serialized key {key:?} has no parsed field"
            );
        }
        self.0.push_str(&format!("\n## {title}\n\n"));
        if !doc.is_empty() {
            self.0.push_str(&format!("{doc}\n\n"));
        }
        self.0.push_str(&format!(
            "Rust type: `{name}`.\n\n| field | type | default | description |\n|---|---|---|---|\n"
        ));
        for f in &fields {
            self.0.push_str(&format!(
                "| `{}` | `{}` | {} | {} |\n",
                f.name,
                cell(&f.ty),
                cell(&show_default(obj.get(&f.name))),
                cell(&f.doc)
            ));
        }
    }
}

fn json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("config types serialize")
}

fn main() {
    let mut d = Doc(String::from(
        "# Configuration reference\n\n\
         <!-- Generated by `cargo run -p trainyard --example config_reference`; do not edit.\n     \
         `make test-docs` fails when this file no longer matches the code. -->\n\n\
         Field names, types and descriptions come from the Rust configuration types; defaults are\n\
         their serialized `Default` values. A run's config is JSON (`trainyard runs create --config\n\
         FILE`); a project's `trainyard.toml` is TOML with the same field names. Fields left out\n\
         take their default.\n\n\
         - [trainyard.toml](#trainyardtoml-project): `[project]`, `[store]`, `[local]`, `[server]`,\n  `[gcp]`\n\
         - [Training run](#training-run-config): `dataset`, `training_params`, `gpu_config`,\n  \
         `evaluator_config`, `deployment_config`, `schedule_config`, `model_config`, `feature_config`\n",
    ));

    let project = json(&ProjectConfig::default());
    d.0.push_str("\n# trainyard.toml (project)\n");
    d.table(
        "`[project]`",
        PLATFORM,
        "ProjectSection",
        &project["project"],
    );
    d.table("`[store]`", PLATFORM, "StoreSection", &project["store"]);
    d.table("`[local]`", PLATFORM, "LocalSection", &project["local"]);
    d.table("`[server]`", PLATFORM, "ServerSection", &project["server"]);
    let gcp = json(&trainyard_gcp::GcpConfig::default());
    d.table("`[gcp]`", GCP_CONFIG, "GcpConfig", &gcp);
    for (key, name) in [
        ("images", "ServingImages"),
        ("endpoints", "ApiEndpoints"),
        ("retry", "RetrySettings"),
        ("operations", "OperationSettings"),
        ("scheduler", "SchedulerSettings"),
    ] {
        d.table(&format!("`[gcp.{key}]`"), GCP_CONFIG, name, &gcp[key]);
    }
    d.table(
        "`[[gcp.gpu_fallback]]` (one table per rung)",
        CORE_CONFIG,
        "GpuRung",
        &gcp["gpu_fallback"][0],
    );

    d.0.push_str("\n# Training run config\n");
    d.table(
        "`dataset`",
        CORE_CONFIG,
        "DatasetSpec",
        &json(&DatasetSpec::default()),
    );
    d.table(
        "`sampling_config`",
        CORE_CONFIG,
        "SamplingConfig",
        &json(&trainyard::core::config::SamplingConfig::default()),
    );
    let params = json(&TrainingParams::default());
    d.table("`training_params`", CORE_CONFIG, "TrainingParams", &params);
    d.table(
        "`training_params.early_stopping`",
        CORE_CONFIG,
        "EarlyStopping",
        &params["early_stopping"],
    );
    d.table(
        "`gpu_config`",
        CORE_CONFIG,
        "GpuConfig",
        &json(&GpuConfig::default()),
    );
    d.table(
        "`evaluator_config`",
        CORE_CONFIG,
        "EvaluatorConfig",
        &json(&EvaluatorConfig::default()),
    );
    d.table(
        "`deployment_config`",
        CORE_CONFIG,
        "DeploymentConfig",
        &json(&DeploymentConfig::default()),
    );
    d.table(
        "`schedule_config`",
        CORE_CONFIG,
        "ScheduleConfig",
        &json(&ScheduleConfig::default()),
    );
    let model = json(&ModelConfig::default());
    d.table("`model_config`", MODEL_CONFIG, "ModelConfig", &model);
    d.table(
        "`model_config.buyer_tower` / `product_tower`",
        MODEL_CONFIG,
        "TowerConfig",
        &model["buyer_tower"],
    );
    d.table(
        "`model_config.loss_weights`",
        MODEL_CONFIG,
        "LossWeights",
        &model["loss_weights"],
    );
    d.table(
        "`model_config.optimizer`",
        MODEL_CONFIG,
        "OptimizerConfig",
        &model["optimizer"],
    );
    d.table(
        "`model_config.scann`",
        MODEL_CONFIG,
        "ScannParams",
        &model["scann"],
    );
    let features = json(&FeatureConfig::default());
    d.table(
        "`feature_config`",
        FEATURE_CONFIG,
        "FeatureConfig",
        &features,
    );
    d.0.push_str(
        "\nThe default `feature_config` describes the synthetic B2B purchase dataset of\n\
         `trainyard-synth`; print it with `cargo run -p trainyard --example config_reference -- --feature-config`.\n",
    );

    d.0.push_str("\n# Values of the enumerations\n\n| type | values |\n|---|---|\n");
    for (src, name) in [
        (CORE_CONFIG, "OptimizerName"),
        (CORE_CONFIG, "GpuType"),
        (CORE_CONFIG, "DeploymentPreset"),
        (CORE_CONFIG, "ScheduleKind"),
        (CORE_CONFIG, "SplitStrategy"),
        (MODEL_CONFIG, "ModelType"),
        (MODEL_CONFIG, "Activation"),
        (MODEL_CONFIG, "RankingLoss"),
        (MODEL_CONFIG, "RetrievalAlgorithm"),
    ] {
        let values: Vec<String> = parse_enum(src, name)
            .iter()
            .map(|v| format!("`{v}`"))
            .collect();
        d.0.push_str(&format!("| `{name}` | {} |\n", values.join(", ")));
    }
    // Spot check against serde: the first value must round-trip through the real type.
    let first = &parse_enum(CORE_CONFIG, "GpuType")[0];
    serde_json::from_value::<trainyard::core::config::GpuType>(Value::String(first.clone()))
        .expect("parsed enum names are serde's names");
    use trainyard::core::config::DataSource;
    let sources: Vec<String> = [
        DataSource::Csv { path: "DIR".into() },
        DataSource::Parquet { path: "DIR".into() },
        DataSource::BigQuery {
            query: "SQL".into(),
        },
    ]
    .iter()
    .map(|v| format!("`{}`", serde_json::to_string(v).unwrap()))
    .collect();
    d.0.push_str(&format!(
        "\n`dataset.source` is one of {} (`DataSource`).\n",
        sources.join(", ")
    ));
    d.0.push_str(
        "\nAliases accepted on input: `model_type` `hybrid` (= `multitask`); BigQuery types \
         `INTEGER` (= `INT64`) and `FLOAT` (= `FLOAT64`).\n",
    );

    if std::env::args().nth(1).as_deref() == Some("--feature-config") {
        println!("{}", serde_json::to_string_pretty(&features).unwrap());
    } else {
        print!("{}", d.0);
    }
}
