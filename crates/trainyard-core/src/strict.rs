//! Strict input: an unknown or misspelled field in anything a user writes (run configs and their
//! parts, schedule bodies, trainyard.toml) is an error naming the field and its nearest valid
//! name — "unknown field `trainig_params`, did you mean `training_params`?" — instead of being
//! ignored.
//!
//! Plain structs carry `#[serde(deny_unknown_fields)]`; serde then reports the field and the
//! expected ones, and [`explain`] rewrites that message into the suggestion (for JSON, TOML and
//! Python input alike). Types made of `#[serde(flatten)]` parts cannot deny unknown fields in
//! serde, so their readers call [`check_keys`] with the names of every part ([`field_names`]
//! reads a plain struct's names from its `Deserialize` impl).

use serde::de::{self, Deserialize, Deserializer, Visitor};

use crate::error::ValidationError;

/// The edit distance between `a` and `b`: insertions, deletions, substitutions and swaps of
/// two neighbours (`stroe` / `store`) each count one (optimal string alignment).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `word`, when it is close enough to be a likely typo (at most a
/// third of the word's length edited, at least one edit allowed) or when one contains the
/// other (`epoch` / `epochs`).
pub fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    let limit = (lower.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| {
            *d <= limit || (lower.len() >= 3 && (c.contains(lower.as_str()) || lower.contains(c)))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// "unknown field `x`, did you mean `y`?" or, with no close name, the list of valid ones.
pub fn unknown_field_message(field: &str, known: &[&str]) -> String {
    match nearest(field, known) {
        Some(n) => format!("unknown field `{field}`, did you mean `{n}`?"),
        None if known.is_empty() => format!("unknown field `{field}`, there are no fields"),
        None => format!(
            "unknown field `{field}`, expected one of {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a` or `b`")
/// anywhere in `message` into [`unknown_field_message`]; other messages are returned whole.
pub fn explain(message: &str) -> String {
    const MARK: &str = "unknown field `";
    let Some(start) = message.find(MARK) else {
        return message.to_string();
    };
    let rest = &message[start + MARK.len()..];
    let Some(end) = rest.find('`') else {
        return message.to_string();
    };
    let field = &rest[..end];
    let after = &rest[end + 1..];
    // The expected names: every backquoted word up to the end of that clause (a line end).
    let clause_end = after.find('\n').unwrap_or(after.len());
    let clause = &after[..clause_end];
    if !clause.starts_with(", expected") {
        return message.to_string();
    }
    let known: Vec<&str> = clause.split('`').skip(1).step_by(2).collect();
    // What follows the last expected name (serde_json's " at line 1 column 26") stays.
    let tail = clause.rfind('`').map_or(clause_end, |i| i + 1);
    format!(
        "{}{}{}",
        &message[..start],
        unknown_field_message(field, &known),
        &after[tail..]
    )
}

/// Refuses the first key of `object` outside `known` (a JSON object's keys, for types made of
/// flattened parts); the error's field is `prefix` + the key.
pub fn check_keys(
    object: &serde_json::Value,
    known: &[&str],
    prefix: &str,
) -> Result<(), ValidationError> {
    let serde_json::Value::Object(map) = object else {
        return Ok(());
    };
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(ValidationError::field(
            format!("{prefix}{k}"),
            unknown_field_message(k, known),
        )),
    }
}

/// The field names a plain struct (no `flatten`) accepts, read from its `Deserialize` impl.
pub fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Names(Option<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("stop")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> Deserializer<'de> for &mut Names {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = Some(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut names = Names(None);
    let _ = T::deserialize(&mut names);
    names.0.unwrap_or(&[])
}

fn same_variant(
    base: &serde_json::Map<String, serde_json::Value>,
    patch: &serde_json::Map<String, serde_json::Value>,
) -> bool {
    match (base.get("kind"), patch.get("kind")) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// Lays `patch` over `base`, object keys recursively. An object of another variant (a
/// different `kind` tag) replaces the base whole: its fields are not the base's, and the parts
/// refuse unknown fields.
pub fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
    use serde_json::Value;
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) if same_variant(b, &p) => {
            for (k, v) in p {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Config sections given as objects change only the keys they name: each section of `obj`
/// that the default value of `T` has is merged over that default (so `{"model_config":
/// {"model_type": "ranking"}}` is a complete ranking model config). The one rule for partial
/// configs, whichever front end reads them.
pub fn over_defaults<T: serde::Serialize + Default>(obj: &mut serde_json::Value) {
    use serde_json::Value;
    let (Ok(Value::Object(defaults)), Value::Object(given)) =
        (serde_json::to_value(T::default()), obj)
    else {
        return;
    };
    for (k, v) in given.iter_mut() {
        if let (Some(d), Value::Object(_)) = (defaults.get(k), &*v) {
            let mut merged = d.clone();
            merge(&mut merged, std::mem::take(v));
            *v = merged;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let known = ["dataset", "training_params", "gpu_config", "model_config"];
        assert_eq!(nearest("trainig_params", &known), Some("training_params"));
        assert_eq!(nearest("Training_Params", &known), Some("training_params"));
        assert_eq!(nearest("gpu", &known), Some("gpu_config"));
        assert_eq!(nearest("zzz", &known), None);
        assert_eq!(edit_distance("stroe", "store"), 1);
        assert_eq!(
            nearest("stroe", &["project", "store", "local"]),
            Some("store")
        );
        assert_eq!(
            unknown_field_message("trainig_params", &known),
            "unknown field `trainig_params`, did you mean `training_params`?"
        );
        assert!(unknown_field_message("qqq", &known).contains("expected one of `dataset`"));
    }

    #[test]
    fn explains_serde_messages() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct P {
            epochs: u32,
            batch_size: u32,
        }
        let e = serde_json::from_str::<P>(r#"{"epochs": 1, "bach_size": 2}"#).unwrap_err();
        let m = explain(&e.to_string());
        assert!(
            m.starts_with("unknown field `bach_size`, did you mean `batch_size`?"),
            "{m}"
        );
        assert!(m.contains("line 1"), "the position stays: {m}");
        assert_eq!(explain("invalid type: string"), "invalid type: string");
        assert_eq!(field_names::<P>(), &["epochs", "batch_size"]);
    }

    #[test]
    fn keys() {
        let v = serde_json::json!({"name": "x", "trainig_params": {}});
        let e = check_keys(&v, &["name", "training_params"], "").unwrap_err();
        assert_eq!(e.field, "trainig_params");
        assert!(e.reason.contains("did you mean `training_params`"), "{e}");
        assert!(check_keys(&v, &["name", "trainig_params"], "").is_ok());
    }

    #[test]
    fn partial_sections_are_merged_over_their_defaults() {
        let mut v = serde_json::json!({
            "name": "m",
            "model_config": {"model_type": "ranking"},
        });
        over_defaults::<crate::run::RunConfig>(&mut v);
        let config: crate::run::RunConfig = serde_json::from_value(serde_json::Value::Object(
            v.as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k != "name")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ))
        .unwrap();
        let defaults = crate::run::RunConfig::default();
        assert_eq!(config.model_config.model_type, crate::ModelType::Ranking);
        assert_eq!(config.model_config.name, defaults.model_config.name);
        assert_eq!(v["name"], "m", "keys the defaults lack are left alone");
        // Another variant (a different `kind`) replaces the section whole.
        let mut base = serde_json::json!({"kind": "csv", "path": "a"});
        merge(
            &mut base,
            serde_json::json!({"kind": "bigquery", "table": "t"}),
        );
        assert_eq!(base, serde_json::json!({"kind": "bigquery", "table": "t"}));
    }
}
