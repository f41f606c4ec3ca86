//! The Vertex AI target: a PipelineJob body whose PipelineSpec (KFP v2 IR) is what TFX 1.16's
//! KubeflowV2DagRunner compiles for the same pipeline, plus the user-code wheels it names.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};
use trainyard_core::config::DataSource;
use trainyard_core::ValidationError;

use crate::wheel::UserCodeWheel;
use crate::{python_json, PipelineInputs, Result, TFX_VERSION};

const EXAMPLES: &str = "title: tfx.Examples\ntype: object\nproperties:\n  span:\n    type: integer\n    description: Span for an artifact.\n  version:\n    type: integer\n    description: Version for an artifact.\n  split_names:\n    type: string\n    description: JSON-encoded list of splits for an artifact. Empty string means artifact has no split.\n";
const STATISTICS: &str = "title: tfx.ExampleStatistics\ntype: object\nproperties:\n  span:\n    type: integer\n    description: Span for an artifact.\n  split_names:\n    type: string\n    description: JSON-encoded list of splits for an artifact. Empty string means artifact has no split.\n";
const ANOMALIES: &str = "title: tfx.ExampleAnomalies\ntype: object\nproperties:\n  span:\n    type: integer\n    description: Span for an artifact.\n  split_names:\n    type: string\n    description: JSON-encoded list of splits for an artifact. Empty string means artifact has no split.\n";

fn simple(t: &str) -> String {
    format!("title: tfx.{t}\ntype: object\n")
}

/// A parameter value of a task.
enum Param {
    Str(String),
    Int(i64),
    Double(f64),
}

impl Param {
    fn type_name(&self) -> &'static str {
        match self {
            Param::Str(_) => "STRING",
            Param::Int(_) => "INT",
            Param::Double(_) => "DOUBLE",
        }
    }

    fn constant(&self) -> Value {
        // KFP's protobuf JSON writes int64 as a string.
        let v = match self {
            Param::Str(s) => json!({"stringValue": s}),
            Param::Int(i) => json!({"intValue": i.to_string()}),
            Param::Double(d) => json!({"doubleValue": d}),
        };
        json!({"runtimeValue": {"constantValue": v}})
    }
}

/// One component of the DAG.
struct Component {
    name: &'static str,
    executor_class: &'static str,
    /// (input key, producer task, producer output key, instance schema)
    inputs: Vec<(&'static str, &'static str, &'static str, String)>,
    outputs: Vec<(&'static str, String)>,
    params: Vec<(&'static str, Param)>,
    /// File-based ExampleGen's pre-cache-check driver.
    driver: bool,
}

impl Component {
    /// Whether the component's container imports generated or trainyard code (trainyard's
    /// evaluator, split executor, the transform and trainer modules): those run in trainyard's
    /// trainer image, the others in the stock TFX image.
    fn needs_trainer_image(&self) -> bool {
        matches!(self.name, "Transform" | "Trainer")
            || self.executor_class.starts_with("trainyard_")
    }
}

/// TFX's `MessageToJson(indent=2, sort_keys=True)` text of a proto given as JSON.
fn proto_json(v: Value) -> String {
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

fn split_config() -> String {
    proto_json(json!({"split_config": {"splits": [
        {"hash_buckets": 2, "name": "train"},
        {"hash_buckets": 1, "name": "eval"}
    ]}}))
}

fn example_gen(inputs: &PipelineInputs) -> Component {
    let rule = inputs.split_rule();
    let (name, executor_class, pattern, driver) = match &inputs.data {
        DataSource::BigQuery { query } => (
            "BigQueryExampleGen",
            if rule.is_some() {
                "trainyard_split.BigQueryExecutor"
            } else {
                "tfx.extensions.google_cloud_big_query.example_gen.executor.Executor"
            },
            query.clone(),
            false,
        ),
        DataSource::Csv { .. } => (
            "CsvExampleGen",
            if rule.is_some() {
                "trainyard_split.CsvExecutor"
            } else {
                "tfx.components.example_gen.csv_example_gen.executor.Executor"
            },
            "*".into(),
            true,
        ),
        DataSource::Parquet { .. } => (
            "FileBasedExampleGen",
            if rule.is_some() {
                "trainyard_split.ParquetExecutor"
            } else {
                "tfx.components.example_gen.custom_executors.parquet_executor.Executor"
            },
            "*".into(),
            true,
        ),
    };
    let mut params = vec![
        (
            "input_config",
            Param::Str(proto_json(
                json!({"splits": [{"name": "single_split", "pattern": pattern}]}),
            )),
        ),
        ("output_config", Param::Str(split_config())),
        ("output_data_format", Param::Int(6)),
        ("output_file_format", Param::Int(5)),
    ];
    if let Some(rule) = rule {
        // the same rule as the local pipeline's, as TFX writes a CustomConfig holding a Struct
        params.push((
            "custom_config",
            Param::Str(proto_json(json!({"custom_config": {
                "@type": "type.googleapis.com/google.protobuf.Struct",
                "value": rule,
            }}))),
        ));
    }
    if let DataSource::Csv { path } | DataSource::Parquet { path } = &inputs.data {
        params.push(("input_base", Param::Str(path.clone())));
    }
    Component {
        name,
        executor_class,
        inputs: vec![],
        outputs: vec![("examples", EXAMPLES.into())],
        params,
        driver,
    }
}

fn module_path(module: &str, root: &str, wheel: &UserCodeWheel) -> String {
    format!(
        "{}@{}/_wheels/{}",
        module.trim_end_matches(".py"),
        root.trim_end_matches('/'),
        wheel.file_name
    )
}

/// The Trainer's custom_config: run settings, plus the Vertex custom job with its GPU worker
/// pool whenever GPUs are asked for (bug 1 of the platform dropped it).
fn trainer_custom_config(inputs: &PipelineInputs) -> Result<Value> {
    let mut config = inputs.trainer_settings();
    if inputs.gpu.gpu_enabled {
        let region = inputs.gpu.trainer_region(&inputs.region)?;
        let pool = json!({
            "machine_spec": {
                "machine_type": inputs.gpu.machine_type,
                "accelerator_type": inputs.gpu.gpu_type.vertex_name(),
                "accelerator_count": inputs.gpu.gpu_count,
            },
            "replica_count": 1,
            "container_spec": {"image_uri": inputs.trainer_gpu_image},
        });
        let obj = config.as_object_mut().expect("settings are an object");
        obj.insert("ai_platform_enable_vertex".into(), json!(true));
        obj.insert("ai_platform_vertex_region".into(), json!(region));
        let mut args = json!({"project": inputs.project, "worker_pool_specs": [pool]});
        if inputs.gpu.preemptible {
            // CustomJobSpec.scheduling (aiplatform v1): Spot VMs for a preemptible run.
            args["scheduling"] = json!({"strategy": "SPOT"});
        }
        obj.insert("ai_platform_training_args".into(), args);
    }
    Ok(config)
}

fn components(
    inputs: &PipelineInputs,
    transform_wheel: &UserCodeWheel,
    trainer_wheel: &UserCodeWheel,
) -> Result<Vec<Component>> {
    let eg = example_gen(inputs);
    let eg_name = eg.name;
    let root = &inputs.pipeline_root;
    let blessing = inputs.blessing();
    let trainer_class = if inputs.gpu.gpu_enabled {
        "tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor"
    } else {
        "tfx.components.trainer.executor.GenericExecutor"
    };
    Ok(vec![
        eg,
        Component {
            name: "StatisticsGen",
            executor_class: "tfx.components.statistics_gen.executor.Executor",
            inputs: vec![("examples", eg_name, "examples", EXAMPLES.into())],
            outputs: vec![("statistics", STATISTICS.into())],
            params: vec![("exclude_splits", Param::Str("[]".into()))],
            driver: false,
        },
        Component {
            name: "SchemaGen",
            executor_class: "tfx.components.schema_gen.executor.Executor",
            inputs: vec![(
                "statistics",
                "StatisticsGen",
                "statistics",
                STATISTICS.into(),
            )],
            outputs: vec![("schema", simple("Schema"))],
            params: vec![
                ("exclude_splits", Param::Str("[]".into())),
                ("infer_feature_shape", Param::Int(1)),
            ],
            driver: false,
        },
        Component {
            name: "Transform",
            executor_class: "tfx.components.transform.executor.Executor",
            inputs: vec![
                ("examples", eg_name, "examples", EXAMPLES.into()),
                ("schema", "SchemaGen", "schema", simple("Schema")),
            ],
            outputs: vec![
                ("post_transform_anomalies", ANOMALIES.into()),
                ("post_transform_schema", simple("Schema")),
                ("post_transform_stats", STATISTICS.into()),
                ("pre_transform_schema", simple("Schema")),
                ("pre_transform_stats", STATISTICS.into()),
                ("transform_graph", simple("TransformGraph")),
                ("transformed_examples", EXAMPLES.into()),
                ("updated_analyzer_cache", simple("TransformCache")),
            ],
            params: vec![
                ("custom_config", Param::Str("null".into())),
                ("disable_statistics", Param::Int(0)),
                ("force_tf_compat_v1", Param::Int(0)),
                (
                    "module_path",
                    Param::Str(module_path(crate::TRANSFORM_MODULE, root, transform_wheel)),
                ),
            ],
            driver: false,
        },
        Component {
            name: "Trainer",
            executor_class: trainer_class,
            inputs: vec![
                (
                    "examples",
                    "Transform",
                    "transformed_examples",
                    EXAMPLES.into(),
                ),
                ("schema", "SchemaGen", "schema", simple("Schema")),
                (
                    "transform_graph",
                    "Transform",
                    "transform_graph",
                    simple("TransformGraph"),
                ),
            ],
            outputs: vec![
                ("model", simple("Model")),
                ("model_run", simple("ModelRun")),
            ],
            params: vec![
                (
                    "custom_config",
                    Param::Str(python_json(&trainer_custom_config(inputs)?)),
                ),
                ("eval_args", Param::Str("{}".into())),
                (
                    "module_path",
                    Param::Str(module_path(crate::TRAINER_MODULE, root, trainer_wheel)),
                ),
                ("train_args", Param::Str("{}".into())),
            ],
            driver: false,
        },
        Component {
            name: "Evaluator",
            executor_class: "trainyard_evaluator.TrainyardEvaluator_Executor",
            inputs: vec![("model_run", "Trainer", "model_run", simple("ModelRun"))],
            outputs: vec![("blessing", simple("ModelBlessing"))],
            params: vec![
                ("enabled", Param::Int(i64::from(blessing.enabled))),
                (
                    "lower_is_better",
                    Param::Int(i64::from(blessing.lower_is_better)),
                ),
                ("metric_key", Param::Str(blessing.metric_key)),
                ("threshold", Param::Double(blessing.threshold)),
            ],
            driver: false,
        },
        Component {
            name: "Pusher",
            executor_class: "tfx.components.pusher.executor.Executor",
            inputs: vec![
                ("model", "Trainer", "model", simple("Model")),
                (
                    "model_blessing",
                    "Evaluator",
                    "blessing",
                    simple("ModelBlessing"),
                ),
            ],
            outputs: vec![("pushed_model", simple("PushedModel"))],
            params: vec![
                ("custom_config", Param::Str("null".into())),
                (
                    "push_destination",
                    Param::Str(proto_json(
                        json!({"filesystem": {"base_directory": inputs.serving_dir}}),
                    )),
                ),
            ],
            driver: false,
        },
    ])
}

fn artifact_defs(items: impl Iterator<Item = (String, String)>) -> Value {
    let m: Map<String, Value> = items
        .map(|(k, schema)| (k, json!({"artifactType": {"instanceSchema": schema}})))
        .collect();
    Value::Object(m)
}

/// A compiled pipeline: the PipelineJob body and the wheels to upload under
/// `<pipeline_root>/_wheels/`.
#[derive(Debug, Clone, PartialEq)]
pub struct VertexPipeline {
    pub job: Value,
    pub wheels: Vec<UserCodeWheel>,
}

/// Compiles the PipelineJob body for Vertex AI Pipelines.
/// What the Vertex target needs beyond a pipeline: a Google Cloud project (the Trainer's custom
/// job is created in it; empty, it would name `projects//...`) and a Cloud Storage pipeline
/// root (Vertex AI reads and writes artifacts only there).
pub fn check_settings(project: &str, pipeline_root: &str) -> Result<(), ValidationError> {
    if project.trim().is_empty() {
        return Err(ValidationError::field(
            "gcp.project",
            "is required for the Vertex target (set [gcp] project or --gcp-project)",
        ));
    }
    let bucket = pipeline_root
        .strip_prefix("gs://")
        .map(|rest| rest.split('/').next().unwrap_or_default());
    if bucket.is_none_or(str::is_empty) {
        return Err(ValidationError::field(
            "pipeline_root",
            format!("Vertex AI needs a gs://BUCKET/... pipeline root, got {pipeline_root:?}"),
        ));
    }
    Ok(())
}

pub fn compile(inputs: &PipelineInputs) -> Result<VertexPipeline> {
    inputs.validate()?;
    let modules = inputs.all_modules();
    let transform_wheel = UserCodeWheel::build("Transform", &modules)?;
    let trainer_wheel = UserCodeWheel::build("Trainer", &modules)?;
    let comps = components(inputs, &transform_wheel, &trainer_wheel)?;

    let mut components = Map::new();
    let mut executors = Map::new();
    let mut tasks = Map::new();
    for c in &comps {
        let mut input_defs = Map::new();
        if !c.inputs.is_empty() {
            input_defs.insert(
                "artifacts".into(),
                artifact_defs(
                    c.inputs
                        .iter()
                        .map(|(k, _, _, s)| (k.to_string(), s.clone())),
                ),
            );
        }
        if !c.params.is_empty() {
            let p: Map<String, Value> = c
                .params
                .iter()
                .map(|(k, v)| (k.to_string(), json!({"type": v.type_name()})))
                .collect();
            input_defs.insert("parameters".into(), Value::Object(p));
        }
        let mut comp = json!({
            "executorLabel": format!("{}_executor", c.name),
            "outputDefinitions": {"artifacts": artifact_defs(c.outputs.iter().map(|(k, s)| (k.to_string(), s.clone())))},
        });
        if !input_defs.is_empty() {
            comp["inputDefinitions"] = Value::Object(input_defs);
        }
        components.insert(c.name.into(), comp);

        let mut container = json!({
            "args": ["--executor_class_path", c.executor_class, "--json_serialized_invocation_args", "{{$}}"],
            "command": ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"],
            "image": if c.needs_trainer_image() { &inputs.trainer_image } else { &inputs.tfx_image },
        });
        if c.driver {
            container["lifecycle"] = json!({"preCacheCheck": {
                "args": ["--json_serialized_invocation_args", "{{$}}"],
                "command": ["python", "-m", "tfx.orchestration.kubeflow.v2.file_based_example_gen.driver"],
            }});
        }
        executors.insert(
            format!("{}_executor", c.name),
            json!({"container": container}),
        );

        let deps: BTreeSet<&str> = c
            .inputs
            .iter()
            .map(|(_, producer, _, _)| *producer)
            .collect();
        let mut task_inputs = Map::new();
        if !c.inputs.is_empty() {
            let arts: Map<String, Value> = c
                .inputs
                .iter()
                .map(|(k, producer, key, _)| {
                    (k.to_string(), json!({"taskOutputArtifact": {"outputArtifactKey": key, "producerTask": producer}}))
                })
                .collect();
            task_inputs.insert("artifacts".into(), Value::Object(arts));
        }
        let params: Map<String, Value> = c
            .params
            .iter()
            .map(|(k, v)| (k.to_string(), v.constant()))
            .collect();
        task_inputs.insert("parameters".into(), Value::Object(params));
        let mut task = json!({"componentRef": {"name": c.name}, "inputs": task_inputs, "taskInfo": {"name": c.name}});
        if !deps.is_empty() {
            task["dependentTasks"] = json!(deps.into_iter().collect::<Vec<_>>());
        }
        tasks.insert(c.name.into(), task);
    }

    let tfx_label = TFX_VERSION.replace('.', "-");
    let mut labels: BTreeMap<String, String> = BTreeMap::from([
        ("tfx_py_version".to_string(), "3-10".to_string()),
        ("tfx_runner".to_string(), "kubeflow_v2".to_string()),
        ("tfx_version".to_string(), tfx_label),
    ]);
    labels.extend(inputs.labels.clone());
    let job = json!({
        "displayName": inputs.name,
        "labels": labels,
        "pipelineSpec": {
            "components": components,
            "deploymentSpec": {"executors": executors},
            "pipelineInfo": {"name": inputs.name},
            "root": {"dag": {"tasks": tasks}},
            "schemaVersion": "2.0.0",
            "sdkVersion": format!("tfx-{TFX_VERSION}"),
        },
        "runtimeConfig": {"gcsOutputDirectory": inputs.pipeline_root},
    });
    Ok(VertexPipeline {
        job,
        wheels: vec![transform_wheel, trainer_wheel],
    })
}
