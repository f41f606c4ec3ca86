//! The tf.Transform module: RAW_FEATURE_SPEC and preprocessing_fn.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use trainyard_core::feature_config::{
    column_key, FeatureConfig, FeatureCross, FeatureSpec, FeatureTransform, TargetTransform,
    TARGET_OUTPUT,
};

use crate::render::{py_call, py_float, py_str};

pub const TEMPLATE: &str = include_str!("../templates/transform_module.py");

/// The raw columns the Transform reads, with their TF dtypes (target included).
pub fn raw_feature_spec(f: &FeatureConfig) -> String {
    let mut s = String::from(
        "# Raw columns (BigQuery type -> TF dtype). Serving signatures take the buyer columns\n\
         # (and, for ranking, the product columns) with these dtypes.\nRAW_FEATURE_SPEC = {\n",
    );
    for feat in f.all_features() {
        let _ = writeln!(
            s,
            "    {}: tf.io.FixedLenFeature([], {}),  # {}",
            py_str(&feat.column),
            feat.bq_type.tf_dtype().python(),
            feat.bq_type.as_str()
        );
    }
    if let Some(t) = &f.target {
        let _ = writeln!(
            s,
            "    {}: tf.io.FixedLenFeature([], {}),  # {}, target",
            py_str(&t.column),
            t.bq_type.tf_dtype().python(),
            t.bq_type.as_str()
        );
    }
    s.push('}');
    s
}

/// The local variable holding a column's raw tensor: built from the column's key, so that any
/// column name (a Python keyword, `tf`, one with spaces) gives a safe, distinct identifier.
fn var(column: &str) -> String {
    format!("{}_raw", column_key(column))
}

fn feature_block(out: &mut String, feat: &FeatureSpec) {
    let col = &feat.column;
    let v = var(col);
    let dtype = feat.bq_type.tf_dtype().python();
    let names = feat.output_names();
    let _ = writeln!(out, "    # {col} ({})", feat.bq_type.as_str());
    let _ = writeln!(out, "    {v} = _dense(inputs[{}], {dtype})", py_str(col));
    match &feat.transform {
        FeatureTransform::Vocabulary {
            num_oov_buckets,
            top_k,
            ..
        } => {
            let mut args = vec![v.clone(), format!("num_oov_buckets={num_oov_buckets}")];
            args.extend(top_k.map(|k| format!("top_k={k}")));
            args.push(format!(
                "vocab_filename={}",
                py_str(&feat.vocab_filename().unwrap_or_default())
            ));
            let lhs = format!("outputs[{}] = ", py_str(&names[0]));
            let call = py_call("    ", &lhs, "tft.compute_and_apply_vocabulary", &args);
            let _ = writeln!(out, "{call}");
        }
        FeatureTransform::Normalize { log1p } => {
            let x = if *log1p {
                format!("tf.math.log1p(tf.maximum(tf.cast({v}, tf.float32), 0.0))")
            } else {
                format!("tf.cast({v}, tf.float32)")
            };
            let lhs = format!("outputs[{}] = ", py_str(&names[0]));
            let _ = writeln!(
                out,
                "{}",
                py_call("    ", &lhs, "tft.scale_to_z_score", &[x])
            );
        }
        FeatureTransform::Bucketize { num_buckets, .. }
        | FeatureTransform::TimestampBucketize { num_buckets, .. } => {
            let lhs = format!("outputs[{}] = ", py_str(&names[0]));
            let args = [
                format!("tf.cast({v}, tf.float32)"),
                format!("num_buckets={num_buckets}"),
            ];
            let _ = writeln!(out, "{}", py_call("    ", &lhs, "tft.bucketize", &args));
        }
        FeatureTransform::Cyclical { periods } => {
            for (p, pair) in periods.iter().zip(names.chunks(2)) {
                let (period, offset) = p.seconds();
                let _ = writeln!(out, "    # {}", p.as_str());
                let lhs = format!(
                    "outputs[{}], outputs[{}] = ",
                    py_str(&pair[0]),
                    py_str(&pair[1])
                );
                let args = [
                    v.clone(),
                    format!("period_s={period}"),
                    format!("offset_s={offset}"),
                ];
                let _ = writeln!(out, "{}", py_call("    ", &lhs, "_cyclical", &args));
            }
        }
    }
}

/// The value a column contributes to a cross: the raw value for vocabulary features, the
/// bucket index for bucketized ones.
fn cross_block(out: &mut String, cross: &FeatureCross, features: &[FeatureSpec]) {
    let parts: Vec<String> = cross
        .columns
        .iter()
        .map(|c| {
            let feat = features.iter().find(|f| &f.column == c);
            match feat.map(|f| &f.transform) {
                Some(FeatureTransform::Vocabulary { .. }) | None => {
                    format!("_cross_key({})", var(c))
                }
                Some(_) => format!(
                    "_cross_key(outputs[{}])",
                    py_str(&format!("{}__bucket", column_key(c)))
                ),
            }
        })
        .collect();
    let _ = writeln!(
        out,
        "    # hashed cross {} -> {} buckets",
        cross
            .columns
            .iter()
            .map(|c| column_key(c))
            .collect::<Vec<_>>()
            .join(" x "),
        cross.hash_buckets
    );
    let key = format!(
        "{}_key",
        cross.output_name().trim_end_matches("__cross").to_owned() + "_cross"
    );
    let join = [
        format!("[{}]", parts.join(", ")),
        "separator=\"\\x1f\"".to_string(),
    ];
    let _ = writeln!(
        out,
        "{}",
        py_call("    ", &format!("{key} = "), "tf.strings.join", &join)
    );
    let lhs = format!("outputs[{}] = ", py_str(&cross.output_name()));
    let args = [key, format!("num_buckets={}", cross.hash_buckets)];
    let _ = writeln!(
        out,
        "{}",
        py_call("    ", &lhs, "tf.strings.to_hash_bucket_fast", &args)
    );
}

/// The body of preprocessing_fn (indented, without `return`).
pub fn preprocessing_body(f: &FeatureConfig) -> String {
    let mut out = String::new();
    for (tower, features, crosses) in [
        ("buyer (query) tower", &f.buyer_features, &f.buyer_crosses),
        (
            "product (candidate) tower",
            &f.product_features,
            &f.product_crosses,
        ),
    ] {
        let _ = writeln!(out, "    # ---- {tower} ----");
        for feat in features.iter() {
            feature_block(&mut out, feat);
        }
        for cross in crosses.iter() {
            cross_block(&mut out, cross, features);
        }
    }
    if let Some(t) = &f.target {
        let _ = writeln!(
            out,
            "    # ---- target: {} ({}) ----",
            t.column,
            t.bq_type.as_str()
        );
        let _ = writeln!(
            out,
            "    target = tf.cast(_dense(inputs[{}], {}), tf.float32)",
            py_str(&t.column),
            t.bq_type.tf_dtype().python()
        );
        for tr in &t.transforms {
            let line = match tr {
                TargetTransform::Log1p => "tf.math.log1p(tf.maximum(target, 0.0))".to_string(),
                TargetTransform::Clip { min, max } => {
                    format!(
                        "tf.clip_by_value(target, {}, {})",
                        py_float(*min),
                        py_float(*max)
                    )
                }
                TargetTransform::Binarize { threshold } => {
                    format!("tf.cast(target >= {}, tf.float32)", py_float(*threshold))
                }
            };
            let _ = writeln!(out, "    target = {line}");
        }
        let _ = writeln!(out, "    outputs[{}] = target", py_str(TARGET_OUTPUT));
    }
    out
}

pub fn sections(f: &FeatureConfig, header: String) -> BTreeMap<&'static str, String> {
    let mut s = BTreeMap::new();
    s.insert("HEADER", header);
    s.insert("RAW_FEATURE_SPEC", raw_feature_spec(f));
    s.insert("PREPROCESSING", preprocessing_body(f));
    s
}

pub fn flags() -> BTreeSet<&'static str> {
    BTreeSet::new()
}
