//! Google's naming rules for labels and resource ids, and the deterministic ids trainyard
//! derives from its own records.

use std::collections::BTreeMap;

use trainyard_core::run::TrainingRun;

/// At most this many labels per resource.
pub const MAX_LABELS: usize = 64;
const MAX_LABEL_LEN: usize = 63;

fn label_chars(s: &str) -> String {
    let mut out = String::new();
    for ch in s.chars().flat_map(char::to_lowercase) {
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-' {
            out.push(ch);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out
}

/// A label key: lowercase letters, digits, `_` and `-`, starting with a letter, at most 63
/// characters. `None` when nothing usable is left.
pub fn label_key(key: &str) -> Option<String> {
    let mut k = label_chars(key).trim_matches('_').to_string();
    if k.is_empty() {
        return None;
    }
    if !k.starts_with(|c: char| c.is_ascii_lowercase()) {
        k.insert_str(0, "k_");
    }
    k.truncate(MAX_LABEL_LEN);
    Some(k)
}

/// A label value: lowercase letters, digits, `_` and `-`, at most 63 characters (may be empty).
/// `0.4213` becomes `0_4213`.
pub fn label_value(value: &str) -> String {
    let mut v = label_chars(value.trim());
    v.truncate(MAX_LABEL_LEN);
    v
}

/// Sanitizes a label map; on a key collision the first one (in key order) wins, and at most
/// [`MAX_LABELS`] are kept.
pub fn sanitize_labels<'a, I>(labels: I) -> BTreeMap<String, String>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut out = BTreeMap::new();
    for (k, v) in labels {
        if out.len() >= MAX_LABELS {
            break;
        }
        if let Some(key) = label_key(k) {
            out.entry(key).or_insert_with(|| label_value(v));
        }
    }
    out
}

/// Lowercase letters, digits and single hyphens; no leading or trailing hyphen.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for ch in s.chars().flat_map(char::to_lowercase) {
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            out.push(ch);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// The PipelineJob id of a run: derived from the run alone, so a retried submit names the same
/// job (and Vertex answers ALREADY_EXISTS instead of starting a twin). The creation instant
/// keeps runs of different databases apart. Matches `[a-z][-a-z0-9]{0,127}`.
pub fn pipeline_job_id(run: &TrainingRun) -> String {
    let stamp = run.created_at.format("%Y%m%d%H%M%S%3f").to_string();
    let tail = format!("-{}-{}-{stamp}", run.run_number, run.id);
    let mut model = slug(&run.ml_model);
    if model.is_empty() {
        model = "run".into();
    }
    let room = 127 - "ty-".len() - tail.len();
    model.truncate(room);
    let model = model.trim_end_matches('-');
    format!("ty-{model}{tail}")
}

/// A Vertex model id: `[a-z][a-z0-9_-]{0,62}`.
pub fn model_id(model_name: &str) -> String {
    let mut id: String = slug(model_name);
    if !id.starts_with(|c: char| c.is_ascii_lowercase()) {
        id.insert_str(0, "m-");
    }
    id.truncate(63);
    id.trim_end_matches('-').to_string()
}

/// A Vertex version alias: `[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]`.
pub fn version_alias(s: &str) -> String {
    let mut a = slug(s);
    if !a.starts_with(|c: char| c.is_ascii_lowercase()) {
        a.insert_str(0, "v-");
    }
    a.truncate(128);
    let a = a.trim_end_matches('-').to_string();
    if a.len() < 2 {
        format!("{a}0")
    } else {
        a
    }
}

/// The Cloud Scheduler job id of a schedule (`[a-zA-Z0-9_-]{1,500}`); stable across renames.
pub fn scheduler_job_id(schedule_id: i64) -> String {
    format!("trainyard-schedule-{schedule_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label_ok(k: &str, v: &str) -> bool {
        let ok = |s: &str| {
            s.len() <= 63
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        };
        ok(k) && ok(v) && k.starts_with(|c: char| c.is_ascii_lowercase())
    }

    #[test]
    fn labels_follow_google_rules() {
        let l = sanitize_labels([
            ("training_run_id", "17"),
            ("Recall@100", "0.4213"),
            ("9lives", "Yes Please"),
            ("", "x"),
            ("model_type", "multitask"),
        ]);
        assert_eq!(l["training_run_id"], "17");
        assert_eq!(l["recall_100"], "0_4213");
        assert_eq!(l["k_9lives"], "yes_please");
        assert_eq!(l.len(), 4);
        for (k, v) in &l {
            assert!(label_ok(k, v), "{k}={v}");
        }
        let long = "x".repeat(200);
        let l = sanitize_labels([(long.as_str(), long.as_str())]);
        let (k, v) = l.iter().next().unwrap();
        assert!(label_ok(k, v));
    }

    #[test]
    fn ids_follow_google_rules() {
        assert_eq!(
            model_id("Synthetic B2B Retrieval"),
            "synthetic-b2b-retrieval"
        );
        assert_eq!(model_id("2024 model"), "m-2024-model");
        assert_eq!(version_alias("run-12"), "run-12");
        assert_eq!(version_alias("12"), "v-12");
        assert_eq!(scheduler_job_id(7), "trainyard-schedule-7");
    }
}
