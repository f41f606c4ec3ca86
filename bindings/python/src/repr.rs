//! How values are written in `__repr__` and `_repr_html_` (a leaf).

/// Text for HTML (the `_repr_html_` of notebooks).
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A metric for HTML: four decimals, a dash when missing.
pub fn fmt_metric(v: Option<f64>) -> String {
    v.map_or_else(|| "&mdash;".to_string(), |x| format!("{x:.4}"))
}

/// A string as Python's repr writes it (single quotes).
pub fn pyq(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

pub fn py_repr_opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "None".into(), |x| x.to_string())
}

/// A bool as Python's repr writes it.
pub fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// A unit enum's serde name ("completed", "weekly", ...).
pub fn to_py_string<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}
