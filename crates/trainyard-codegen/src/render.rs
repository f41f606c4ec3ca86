//! Template rendering: `#%if FLAG` / `#%endif` line blocks (nestable) and `#@@NAME@@` section
//! lines, plus Python literal formatting.

use std::collections::{BTreeMap, BTreeSet};

use crate::CodegenError;

/// Renders `template`: keeps `#%if FLAG` blocks whose flag is in `flags` (drops the marker
/// lines), replaces each `#@@NAME@@` line by `sections[NAME]`. Unknown sections, unbalanced
/// blocks and unused sections are errors, so a template and its generator cannot drift apart.
pub fn render(
    template_name: &str,
    template: &str,
    flags: &BTreeSet<&str>,
    sections: &BTreeMap<&str, String>,
) -> Result<String, CodegenError> {
    let err = |line: usize, msg: String| CodegenError::Template {
        template: template_name.to_string(),
        line,
        message: msg,
    };
    let mut out = String::with_capacity(template.len() * 2);
    let mut stack: Vec<bool> = Vec::new();
    let mut used = BTreeSet::new();
    for (i, line) in template.lines().enumerate() {
        let lineno = i + 1;
        let trimmed = line.trim();
        if let Some(flag) = trimmed.strip_prefix("#%if ") {
            stack.push(flags.contains(flag.trim()));
            continue;
        }
        if trimmed == "#%endif" {
            if stack.pop().is_none() {
                return Err(err(lineno, "#%endif without #%if".into()));
            }
            continue;
        }
        if stack.iter().any(|keep| !keep) {
            continue;
        }
        if let Some(name) = trimmed
            .strip_prefix("#@@")
            .and_then(|s| s.strip_suffix("@@"))
        {
            let body = sections
                .get(name)
                .ok_or_else(|| err(lineno, format!("no section named {name}")))?;
            used.insert(name);
            out.push_str(body.trim_end_matches('\n'));
            out.push('\n');
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !stack.is_empty() {
        return Err(err(template.lines().count(), "unclosed #%if".into()));
    }
    if let Some(unused) = sections.keys().find(|k| !used.contains(*k)) {
        return Err(err(
            0,
            format!("section {unused} is not used by the template"),
        ));
    }
    Ok(collapse_blank_lines(&out))
}

/// At most two consecutive blank lines (block removal can leave more).
fn collapse_blank_lines(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blanks = 0;
    for line in s.lines() {
        if line.trim().is_empty() {
            blanks += 1;
            if blanks > 2 {
                continue;
            }
        } else {
            blanks = 0;
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// The line length of generated code (`ruff format --line-length`, see `RUFF_FORMAT_ARGS`).
pub const LINE_LENGTH: usize = 120;

/// `{indent}{lhs}{func}(args)` as `ruff format` writes it: on one line when it fits in
/// [`LINE_LENGTH`], else one argument per line with a trailing comma (which ruff keeps).
pub fn py_call(indent: &str, lhs: &str, func: &str, args: &[String]) -> String {
    let one = format!("{indent}{lhs}{func}({})", args.join(", "));
    if one.chars().count() <= LINE_LENGTH {
        return one;
    }
    let mut s = format!("{indent}{lhs}{func}(\n");
    for a in args {
        s.push_str(&format!("{indent}    {a},\n"));
    }
    s.push_str(&format!("{indent})"));
    s
}

/// A Python string literal (JSON string syntax is valid Python).
pub fn py_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serializes")
}

/// A Python float literal (config validation guarantees finite values).
pub fn py_float(x: f64) -> String {
    let s = format!("{x:?}");
    if s.contains(['.', 'e', 'E']) {
        s
    } else {
        format!("{s}.0")
    }
}

pub fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// A Python tuple of strings.
pub fn py_str_tuple(items: &[String]) -> String {
    match items.len() {
        0 => "()".into(),
        1 => format!("({},)", py_str(&items[0])),
        _ => format!(
            "({})",
            items
                .iter()
                .map(|s| py_str(s))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A JSON value as a Python literal (dicts with sorted keys, true/false/null -> True/False/None).
pub fn py_value(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "None".into(),
        Value::Bool(b) => py_bool(*b).into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => py_float(f),
            _ => "None".into(),
        },
        Value::String(s) => py_str(s),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(py_value).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            format!(
                "{{{}}}",
                keys.iter()
                    .map(|k| format!("{}: {}", py_str(k), py_value(&o[*k])))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(f: &[&'static str]) -> BTreeSet<&'static str> {
        f.iter().copied().collect()
    }

    #[test]
    fn keeps_and_drops_nested_blocks() {
        let t = "a\n#%if x\nb\n#%if y\nc\n#%endif\nd\n#%endif\ne\n";
        let none = BTreeMap::new();
        assert_eq!(
            render("t", t, &flags(&["x"]), &none).unwrap(),
            "a\nb\nd\ne\n"
        );
        assert_eq!(
            render("t", t, &flags(&["x", "y"]), &none).unwrap(),
            "a\nb\nc\nd\ne\n"
        );
        assert_eq!(render("t", t, &flags(&["y"]), &none).unwrap(), "a\ne\n");
    }

    #[test]
    fn sections_must_exist_and_be_used() {
        let mut s = BTreeMap::new();
        s.insert("X", "1\n2\n".to_string());
        assert_eq!(
            render("t", "a\n#@@X@@\nb\n", &flags(&[]), &s).unwrap(),
            "a\n1\n2\nb\n"
        );
        assert!(render("t", "#@@Y@@\n", &flags(&[]), &s).is_err());
        assert!(render("t", "a\n", &flags(&[]), &s).is_err());
        assert!(render("t", "#%if a\n", &flags(&[]), &BTreeMap::new()).is_err());
        assert!(render("t", "#%endif\n", &flags(&[]), &BTreeMap::new()).is_err());
    }

    #[test]
    fn calls_fit_or_explode() {
        let short = py_call("    ", "x = ", "f", &["a".into(), "b=1".into()]);
        assert_eq!(short, "    x = f(a, b=1)");
        let long_arg = "y".repeat(110);
        let long = py_call("    ", "x = ", "f", &[long_arg.clone(), "b=1".into()]);
        assert_eq!(
            long,
            format!("    x = f(\n        {long_arg},\n        b=1,\n    )")
        );
    }

    #[test]
    fn python_literals() {
        assert_eq!(py_float(1.0), "1.0");
        assert_eq!(py_float(0.1), "0.1");
        assert_eq!(py_float(1e-7), "1e-7");
        assert_eq!(py_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(py_str_tuple(&["a".into()]), "(\"a\",)");
        let v = serde_json::json!({"b": true, "a": [1, 2.5, null]});
        assert_eq!(py_value(&v), "{\"a\": [1, 2.5, None], \"b\": True}");
    }
}
