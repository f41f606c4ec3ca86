//! The TFX trainer module: constants, towers, rating head and the serving module.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use trainyard_core::config::{GpuConfig, OptimizerName, TrainingParams};
use trainyard_core::feature_config::{
    FeatureConfig, FeatureCross, FeatureSpec, FeatureTransform, TargetTransform, TARGET_OUTPUT,
};
use trainyard_core::model_config::{
    DenseLayer, ModelConfig, ModelType, RankingLoss, RetrievalAlgorithm, TowerConfig,
};

use crate::render::{py_bool, py_float, py_str, py_str_tuple, py_value};

pub const TEMPLATE: &str = include_str!("../templates/trainer_module.py");

/// Seed of every generated trainer (shuffling, initializers).
pub const SEED: u64 = 42;

pub fn flags(m: &ModelConfig) -> BTreeSet<&'static str> {
    let mut f = BTreeSet::new();
    match m.model_type {
        ModelType::Retrieval => {
            f.insert("only_retrieval");
        }
        ModelType::Ranking => {
            f.insert("only_ranking");
        }
        ModelType::Multitask => {
            f.insert("multitask");
        }
    }
    if m.model_type.has_retrieval() {
        f.insert("retrieval");
        f.insert(match m.retrieval_algorithm {
            RetrievalAlgorithm::BruteForce => "brute_force",
            RetrievalAlgorithm::Scann => "scann",
        });
    }
    if has_query_signature(m) {
        f.insert("query_signature");
    }
    // the serving module keeps the candidates' embeddings: multitask rates the returned
    // products with them, ScaNN completes short answers by brute force over them
    if m.model_type == ModelType::Multitask
        || (m.model_type.has_retrieval() && m.retrieval_algorithm == RetrievalAlgorithm::Scann)
    {
        f.insert("keeps_candidate_embeddings");
    }
    if m.model_type.has_ranking() {
        f.insert("ranking");
    }
    f
}

fn optimizer_name(o: OptimizerName) -> &'static str {
    match o {
        OptimizerName::Adagrad => "adagrad",
        OptimizerName::Adam => "adam",
        OptimizerName::Sgd => "sgd",
    }
}

/// `{indent}{head}(` + one `key=value,` line per keyword argument + `{indent})`: the exploded form
/// `ruff format` keeps (magic trailing comma), whatever the line length.
fn call_block(indent: usize, head: &str, kwargs: &[(&str, String)]) -> String {
    let pad = " ".repeat(indent);
    let mut s = format!("{pad}{head}(\n");
    for (k, v) in kwargs {
        let _ = writeln!(s, "{pad}    {k}={v},");
    }
    let _ = write!(s, "{pad})");
    s
}

/// A Python tuple of strings, one per line when there are several (formatted as `ruff format`
/// leaves it).
fn py_str_tuple_block(items: &[String]) -> String {
    if items.len() < 2 {
        return py_str_tuple(items);
    }
    let mut s = String::from("(\n");
    for i in items {
        let _ = writeln!(s, "    {},", py_str(i));
    }
    s.push(')');
    s
}

fn tower_feature_names(features: &[FeatureSpec], crosses: &[FeatureCross]) -> Vec<String> {
    let mut names: Vec<String> = features.iter().flat_map(|f| f.output_names()).collect();
    names.extend(crosses.iter().map(|c| c.output_name()));
    names
}

/// A JSON object as a Python dict with one top-level key per line (values compact).
fn py_dict_block(v: &serde_json::Value) -> String {
    let Some(o) = v.as_object() else {
        return py_value(v);
    };
    let mut keys: Vec<&String> = o.keys().collect();
    keys.sort();
    let mut s = String::from("{\n");
    for k in keys {
        let _ = writeln!(s, "    {}: {},", py_str(k), py_value(&o[k]));
    }
    s.push('}');
    s
}

pub fn constants(
    f: &FeatureConfig,
    m: &ModelConfig,
    p: &TrainingParams,
    g: &GpuConfig,
    hash: &str,
) -> String {
    let mut s = String::new();
    let pid = f
        .product_id_feature()
        .expect("validated config has a product id feature");
    let _ = writeln!(s, "MODEL_NAME = {}", py_str(&m.name));
    let _ = writeln!(s, "MODEL_TYPE = {}", py_str(m.model_type.as_str()));
    let _ = writeln!(s, "CONFIG_HASH = {}", py_str(hash));
    let _ = writeln!(s, "SEED = {SEED}");
    s.push('\n');
    let _ = writeln!(
        s,
        "# The column serving returns as product_ids: ORIGINAL values, read from its vocabulary."
    );
    let _ = writeln!(s, "PRODUCT_ID_COLUMN = {}", py_str(&pid.column));
    let _ = writeln!(s, "PRODUCT_ID_FEATURE = {}", py_str(&pid.output_names()[0]));
    let _ = writeln!(
        s,
        "PRODUCT_ID_VOCAB = {}",
        py_str(&pid.vocab_filename().unwrap_or_default())
    );
    let _ = writeln!(s, "PRODUCT_ID_DTYPE = {}", pid.bq_type.tf_dtype().python());
    let _ = writeln!(s, "TARGET_FEATURE = {}", py_str(TARGET_OUTPUT));
    s.push('\n');
    let _ = writeln!(s, "# Transformed features each tower reads.");
    let _ = writeln!(
        s,
        "BUYER_FEATURES = {}",
        py_str_tuple_block(&tower_feature_names(&f.buyer_features, &f.buyer_crosses))
    );
    let _ = writeln!(
        s,
        "PRODUCT_FEATURES = {}",
        py_str_tuple_block(&tower_feature_names(
            &f.product_features,
            &f.product_crosses
        ))
    );
    let _ = writeln!(
        s,
        "# serving_default's inputs: signature input name -> (raw column, dtype)"
    );
    s.push_str("SERVING_INPUTS = {\n");
    for feat in serving_features(f, m) {
        let _ = writeln!(
            s,
            "    {}: ({}, {}),",
            py_str(&feat.key()),
            py_str(&feat.column),
            feat.bq_type.tf_dtype().python()
        );
    }
    s.push_str("}\n");
    let _ = writeln!(s, "# column -> (vocabulary file, OOV buckets)");
    s.push_str("VOCABULARIES = {\n");
    for feat in f.all_features() {
        if let FeatureTransform::Vocabulary {
            num_oov_buckets, ..
        } = feat.transform
        {
            let _ = writeln!(
                s,
                "    {}: ({}, {num_oov_buckets}),",
                py_str(&feat.column),
                py_str(&feat.vocab_filename().unwrap_or_default())
            );
        }
    }
    s.push_str("}\n\n");
    let _ = writeln!(s, "TOP_K = {}", m.top_k);
    let algo = match m.retrieval_algorithm {
        RetrievalAlgorithm::BruteForce => "brute_force",
        RetrievalAlgorithm::Scann => "scann",
    };
    let _ = writeln!(
        s,
        "RETRIEVAL_ALGORITHM = {}",
        py_str(if m.model_type.has_retrieval() {
            algo
        } else {
            "none"
        })
    );
    // brute-force retrieval: the index holds the original ids and the export adds a
    // query_embedding signature (see has_query_signature)
    let _ = writeln!(
        s,
        "INDEX_HOLDS_IDS = {}",
        if has_query_signature(m) {
            "True"
        } else {
            "False"
        }
    );
    if m.model_type.has_retrieval() && m.retrieval_algorithm == RetrievalAlgorithm::Scann {
        let sc = &m.scann;
        let _ = writeln!(
            s,
            "SCANN = {{\n    \"num_leaves\": {},\n    \"num_leaves_to_search\": {},\n    \"num_reordering_candidates\": {},\n    \"dimensions_per_block\": {},\n}}",
            sc.num_leaves, sc.num_leaves_to_search, sc.num_reordering_candidates, sc.dimensions_per_block
        );
    }
    if m.model_type.has_ranking() {
        let (name, ctor) = match m.loss {
            RankingLoss::Mse => ("mse", "tf.keras.losses.MeanSquaredError"),
            RankingLoss::Huber => ("huber", "tf.keras.losses.Huber"),
            RankingLoss::BinaryCrossentropy => {
                ("binary_crossentropy", "tf.keras.losses.BinaryCrossentropy")
            }
        };
        let logits = if m.loss == RankingLoss::BinaryCrossentropy {
            "from_logits=True, "
        } else {
            ""
        };
        let _ = writeln!(s, "RANKING_LOSS = {}", py_str(name));
        let _ = writeln!(
            s,
            "# Reduction.NONE: per-example losses, averaged over the GLOBAL batch by the model\nRANKING_LOSS_FN = {ctor}({logits}reduction=tf.keras.losses.Reduction.NONE)"
        );
        let expm1 = f.target.as_ref().is_some_and(|t| {
            t.transforms
                .iter()
                .any(|x| matches!(x, TargetTransform::Log1p))
                && !t.is_binary()
        });
        let _ = writeln!(
            s,
            "# served ratings are mapped back from the transformed target space\nSERVE_EXPM1 = {}",
            py_bool(expm1)
        );
    }
    if m.model_type == ModelType::Multitask {
        let _ = writeln!(
            s,
            "LOSS_WEIGHTS = {{\"retrieval\": {}, \"ranking\": {}}}",
            py_float(m.loss_weights.retrieval),
            py_float(m.loss_weights.ranking)
        );
    }
    let _ = writeln!(
        s,
        "CLIPNORM = {}",
        m.optimizer
            .clipnorm
            .map(py_float)
            .unwrap_or_else(|| "None".into())
    );
    s.push('\n');
    let es = &p.early_stopping;
    let defaults = serde_json::json!({
        "epochs": p.epochs,
        "batch_size": p.batch_size,
        "learning_rate": p.learning_rate,
        "optimizer": optimizer_name(p.optimizer),
        "early_stopping": {
            "enabled": es.enabled,
            "patience": es.patience,
            "monitor": es.monitor,
            "min_delta": es.min_delta,
        },
        "gpu_enabled": g.gpu_enabled,
        "gpu_count": g.accelerator_count(),
        "test_files": null,
        "mlflow_experiment": null,
        "mlflow_tracking_uri": null,
        // the trainyard run (custom_config): its MLflow run is tagged trainyard.run_id (for
        // people) and trainyard.run_key (unique across projects: what trainyard matches)
        "trainyard_run_id": null,
        "trainyard_run_key": null,
    });
    let _ = writeln!(
        s,
        "# Run settings (TrainingParams, GpuConfig); the Trainer's custom_config overrides any key.\nDEFAULTS = {}",
        py_dict_block(&defaults)
    );
    s
}

fn layers_code(layers: &[DenseLayer], l2: f64, prefix: &str) -> String {
    if layers.is_empty() {
        return "[]".into();
    }
    let mut s = String::from("[\n");
    for (i, l) in layers.iter().enumerate() {
        let act = l
            .activation
            .keras()
            .map(py_str)
            .unwrap_or_else(|| "None".into());
        let call = call_block(
            12,
            "*_dense_block",
            &[
                ("units", l.units.to_string()),
                ("activation", act),
                ("dropout", py_float(l.dropout)),
                ("batch_norm", py_bool(l.batch_norm).into()),
                ("l2", py_float(l2)),
                ("name", py_str(&format!("{prefix}_dense_{i}"))),
            ],
        );
        let _ = writeln!(s, "{call},");
    }
    s.push_str("        ]");
    s
}

/// `_embedding(...)` of the template, with keyword arguments (after `self.x = `, indent 8).
fn embedding_call(input_dim: String, dim: u32, l2: f64, name: &str) -> String {
    call_block(
        8,
        "_embedding",
        &[
            ("input_dim", input_dim),
            ("dim", dim.to_string()),
            ("l2", py_float(l2)),
            ("name", py_str(name)),
        ],
    )
    .trim_start()
    .to_string()
}

fn tower_class(
    class: &str,
    doc: &str,
    features: &[FeatureSpec],
    crosses: &[FeatureCross],
    tower: &TowerConfig,
    out_dim: u32,
    prefix: &str,
) -> String {
    let (layers, l2) = (&tower.layers, tower.l2_regularization);
    let mut init = String::new();
    let mut parts = Vec::new();
    let width = tower_input_width(features, crosses);
    for feat in features {
        // the column itself keys dicts (as a string literal); identifiers use its key
        let c = &feat.column;
        let key = feat.key();
        let names = feat.output_names();
        match &feat.transform {
            FeatureTransform::Vocabulary { embedding_dim, .. } => {
                let call = embedding_call(
                    format!("vocab_sizes[{}]", py_str(c)),
                    *embedding_dim,
                    l2,
                    &format!("{key}_embedding"),
                );
                let _ = writeln!(init, "        self.{key}_embedding = {call}");
                parts.push(format!(
                    "self.{key}_embedding(_ids(features[{}]))",
                    py_str(&names[0])
                ));
            }
            FeatureTransform::Normalize { .. } => {
                parts.push(format!("_column(features[{}])", py_str(&names[0])));
            }
            FeatureTransform::Bucketize {
                num_buckets,
                embedding_dim: None,
            } => {
                parts.push(format!(
                    "tf.one_hot(_ids(features[{}]), depth={})",
                    py_str(&names[0]),
                    num_buckets + 1
                ));
            }
            FeatureTransform::Bucketize {
                num_buckets,
                embedding_dim: Some(dim),
            }
            | FeatureTransform::TimestampBucketize {
                num_buckets,
                embedding_dim: dim,
            } => {
                let call = embedding_call(
                    (num_buckets + 1).to_string(),
                    *dim,
                    l2,
                    &format!("{key}_embedding"),
                );
                let _ = writeln!(init, "        self.{key}_embedding = {call}");
                parts.push(format!(
                    "self.{key}_embedding(_ids(features[{}]))",
                    py_str(&names[0])
                ));
            }
            FeatureTransform::Cyclical { .. } => {
                for n in &names {
                    parts.push(format!("_column(features[{}])", py_str(n)));
                }
            }
        }
    }
    for cross in crosses {
        let name = cross.output_name();
        let attr = name.trim_end_matches("__cross").to_string() + "_cross_embedding";
        let call = embedding_call(
            cross.hash_buckets.to_string(),
            cross.embedding_dim,
            l2,
            &attr,
        );
        let _ = writeln!(init, "        self.{attr} = {call}");
        parts.push(format!("self.{attr}(_ids(features[{}]))", py_str(&name)));
    }
    let reg = if l2 > 0.0 {
        format!("tf.keras.regularizers.l2({})", py_float(l2))
    } else {
        "None".into()
    };
    let mut s = String::new();
    let _ = writeln!(s, "class {class}(tf.keras.Model):");
    let _ = writeln!(s, "    \"\"\"{doc} -> {out_dim}-d embedding.\"\"\"\n");
    let _ = writeln!(s, "    def __init__(self, vocab_sizes, name=None):");
    let _ = writeln!(s, "        super().__init__(name=name)");
    s.push_str(&init);
    let _ = writeln!(
        s,
        "        self.hidden = {}",
        layers_code(layers, l2, prefix)
    );
    // No hidden layers and the features already have the output width: the concatenated
    // embeddings ARE the tower output. A linear projection there adds nothing a model can
    // express and measurably slows learning (benches/codegen_trainer_throughput.sh).
    let project = !layers.is_empty() || width != out_dim;
    if project {
        let call = call_block(
            8,
            "tf.keras.layers.Dense",
            &[
                ("units", out_dim.to_string()),
                ("kernel_regularizer", reg),
                ("name", py_str(&format!("{prefix}_projection"))),
            ],
        );
        let _ = writeln!(s, "        self.projection = {}\n", call.trim_start());
    } else {
        s.push('\n');
    }
    let _ = writeln!(s, "    def call(self, features, training=False):");
    let _ = writeln!(s, "        x = tf.concat(\n            [");
    for part in &parts {
        let _ = writeln!(s, "                {part},");
    }
    let _ = writeln!(s, "            ],\n            axis=1,\n        )");
    let _ = writeln!(s, "        for layer in self.hidden:");
    let _ = writeln!(s, "            x = layer(x, training=training)");
    if project {
        let _ = writeln!(s, "        return self.projection(x)");
    } else {
        let _ = writeln!(
            s,
            "        return x  # {width} = output_embedding_dim: no projection needed"
        );
    }
    s
}

/// Width of a tower's concatenated feature inputs.
pub fn tower_input_width(features: &[FeatureSpec], crosses: &[FeatureCross]) -> u32 {
    let f: u32 = features
        .iter()
        .map(|feat| match &feat.transform {
            FeatureTransform::Vocabulary { embedding_dim, .. } => *embedding_dim,
            FeatureTransform::Normalize { .. } => 1,
            FeatureTransform::Bucketize {
                num_buckets,
                embedding_dim: None,
            } => num_buckets + 1,
            FeatureTransform::Bucketize {
                embedding_dim: Some(d),
                ..
            }
            | FeatureTransform::TimestampBucketize {
                embedding_dim: d, ..
            } => *d,
            FeatureTransform::Cyclical { periods } => 2 * periods.len() as u32,
        })
        .sum();
    f + crosses.iter().map(|c| c.embedding_dim).sum::<u32>()
}

pub fn towers(f: &FeatureConfig, m: &ModelConfig) -> String {
    let cols = |fs: &[FeatureSpec]| fs.iter().map(|x| x.key()).collect::<Vec<_>>().join(", ");
    let mut s = tower_class(
        "BuyerTower",
        &format!("Query tower: {}", cols(&f.buyer_features)),
        &f.buyer_features,
        &f.buyer_crosses,
        &m.buyer_tower,
        m.output_embedding_dim,
        "buyer",
    );
    s.push_str("\n\n");
    s.push_str(&tower_class(
        "ProductTower",
        &format!("Candidate tower: {}", cols(&f.product_features)),
        &f.product_features,
        &f.product_crosses,
        &m.product_tower,
        m.output_embedding_dim,
        "product",
    ));
    if m.model_type.has_ranking() {
        s.push_str("\n\nclass RatingHead(tf.keras.Model):\n");
        s.push_str("    \"\"\"[buyer embedding, product embedding] -> predicted target, [batch, 1].\"\"\"\n\n");
        s.push_str("    def __init__(self, name=None):\n        super().__init__(name=name)\n");
        let _ = writeln!(
            s,
            "        self.hidden = {}",
            layers_code(&m.rating_head, 0.0, "rating")
        );
        s.push_str("        self.out = tf.keras.layers.Dense(1, name=\"rating_output\")\n\n");
        s.push_str("    def call(self, x, training=False):\n");
        s.push_str(
            "        for layer in self.hidden:\n            x = layer(x, training=training)\n",
        );
        s.push_str("        return self.out(x)\n");
    }
    s
}

/// The `serve` method of the template's `ServingModule`: a `tf.function` whose input signature
/// lists the raw columns the model is served with, passing them on to `_serve` as the raw
/// feature dict the Transform graph reads (the rest of the serving code is in the template).
///
/// Any column name works: each column is a TensorSpec named by its key (the signature's input
/// name, `^[A-Za-z][A-Za-z0-9_]*$` as TensorFlow requires), a parameter named `<key>_` (never a
/// Python keyword nor a module the code uses, such as `tf`), and the ORIGINAL column name as
/// the key of the raw dict the Transform graph reads.
/// Whether the export adds a `query_embedding` signature (serving_default's inputs -> the query
/// the index scores) next to serving_default: brute-force retrieval, whose index alone answers.
pub fn has_query_signature(m: &ModelConfig) -> bool {
    m.model_type == ModelType::Retrieval && m.retrieval_algorithm == RetrievalAlgorithm::BruteForce
}

/// serving_default (`serve`), and `query_embedding` where [`has_query_signature`]: one
/// TensorSpec and one parameter per raw column.
pub fn serve_signature(f: &FeatureConfig, m: &ModelConfig) -> String {
    let mut s = signature_method(f, m, "serve", "_serve");
    if has_query_signature(m) {
        s.push('\n');
        s.push_str(&signature_method(
            f,
            m,
            "query_embedding",
            "_query_embedding",
        ));
    }
    s
}

fn signature_method(f: &FeatureConfig, m: &ModelConfig, name: &str, body: &str) -> String {
    let features = serving_features(f, m);
    let mut s = String::from("    @tf.function(\n        input_signature=[\n");
    for feat in &features {
        let _ = writeln!(
            s,
            "            tf.TensorSpec(shape=[None], dtype={}, name={}),",
            feat.bq_type.tf_dtype().python(),
            py_str(&feat.key())
        );
    }
    let _ = write!(s, "        ]\n    )\n    def {name}(\n        self,\n");
    for feat in &features {
        let _ = writeln!(s, "        {}_,", feat.key());
    }
    let _ = write!(s, "    ):\n        return self.{body}(\n            {{\n");
    for feat in &features {
        let _ = writeln!(
            s,
            "                {}: {}_,",
            py_str(&feat.column),
            feat.key()
        );
    }
    s.push_str("            }\n        )\n");
    s
}

/// The raw columns a model is served with: every feature for ranking (it scores the pairs it
/// is given), the buyer features for retrieval and multitask (they rank the catalog).
fn serving_features<'a>(f: &'a FeatureConfig, m: &ModelConfig) -> Vec<&'a FeatureSpec> {
    match m.model_type {
        ModelType::Ranking => f.all_features().collect(),
        ModelType::Retrieval | ModelType::Multitask => f.buyer_features.iter().collect(),
    }
}

pub fn sections(
    f: &FeatureConfig,
    m: &ModelConfig,
    p: &TrainingParams,
    g: &GpuConfig,
    hash: &str,
    header: String,
) -> BTreeMap<&'static str, String> {
    let mut s = BTreeMap::new();
    s.insert("HEADER", header);
    s.insert("CONSTANTS", constants(f, m, p, g, hash));
    s.insert("TOWERS", towers(f, m));
    s.insert("SERVE_SIGNATURE", serve_signature(f, m));
    s
}
