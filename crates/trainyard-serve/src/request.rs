//! TF Serving REST predict requests, validated against the signature before anything runs.
//!
//! Row format `{"instances": [{feature: value, ...}, ...]}` (a bare value per instance when the
//! signature has one input) and columnar `{"inputs": {feature: [value per row], ...}}`.
//! A value fills one row of its input: a scalar for `[batch]`, a scalar or `[x]` for
//! `[batch, 1]`, a list of `d` for `[batch, d]`, nested lists beyond. A string value may be
//! given as `{"b64": "<base64>"}` (TF Serving's encoding for binary strings).
//! `signature_name` picks the signature (default `serving_default`).

use serde_json::Value;

use crate::signature::{Dtype, TensorSpec, SERVING_DEFAULT};
use crate::tensor::{Column, Values};

/// A request the server refuses, with a message naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

fn bad<T>(msg: impl Into<String>) -> Result<T, BadRequest> {
    Err(BadRequest(msg.into()))
}

/// How the answer must be shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rows,
    Columns,
}

/// A parsed predict request: one column per signature input (in the model's input order),
/// each `[rows, inner...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The signature the columns feed.
    pub signature: String,
    pub format: Format,
    pub rows: usize,
    pub columns: Vec<Column>,
}

impl Batch {
    /// Requests can share a session run when every input has the same row shape.
    /// (The signature must match too: see [`Batch::signature`].)
    pub fn shape_key(&self) -> Vec<&[u64]> {
        self.columns.iter().map(|c| &c.dims[1..]).collect()
    }
}

/// Parses and validates a `serving_default` predict body against `inputs` (name, spec) in
/// feed order; any other `signature_name` is refused.
pub fn parse_predict<'a>(
    body: &[u8],
    inputs: &[(&'a str, &'a TensorSpec)],
) -> Result<Batch, BadRequest> {
    parse_predict_as(body, |sig| {
        if sig == SERVING_DEFAULT {
            Ok(inputs.to_vec())
        } else {
            bad(format!(
                "signature_name: only \"{SERVING_DEFAULT}\" is served, got \"{sig}\""
            ))
        }
    })
}

/// Parses and validates a predict body against the inputs (name, spec, in feed order) that
/// `inputs_of` gives for the body's `signature_name` (`serving_default` when absent).
pub fn parse_predict_as<'a>(
    body: &[u8],
    inputs_of: impl FnOnce(&str) -> Result<Vec<(&'a str, &'a TensorSpec)>, BadRequest>,
) -> Result<Batch, BadRequest> {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad(format!("body: invalid JSON: {e}")),
    };
    let Value::Object(mut obj) = v else {
        return bad("body: expected a JSON object with `instances` or `inputs`");
    };
    let signature = match obj.remove("signature_name") {
        None => SERVING_DEFAULT.to_string(),
        Some(Value::String(s)) if s.is_empty() => SERVING_DEFAULT.to_string(),
        Some(Value::String(s)) => s,
        Some(other) => {
            return bad(format!(
                "signature_name: expected a string, got {}",
                kind(&other)
            ))
        }
    };
    let inputs = inputs_of(&signature)?;
    let mut batch = match (obj.remove("instances"), obj.remove("inputs")) {
        (Some(_), Some(_)) => bad("body: give either `instances` or `inputs`, not both"),
        (Some(instances), None) => parse_rows(instances, &inputs),
        (None, Some(columns)) => parse_columns(columns, &inputs),
        (None, None) => bad("body: missing `instances` (row format) or `inputs` (columnar)"),
    }?;
    batch.signature = signature;
    Ok(batch)
}

/// `{"b64": "..."}`: TF Serving's JSON form of a binary string.
fn b64_object(map: &serde_json::Map<String, Value>) -> Option<&Value> {
    match map.len() {
        1 => map.get("b64"),
        _ => None,
    }
}

fn parse_rows(instances: Value, inputs: &[(&str, &TensorSpec)]) -> Result<Batch, BadRequest> {
    let Value::Array(rows) = instances else {
        return bad(format!(
            "instances: expected a list of instances, got {}",
            kind(&instances)
        ));
    };
    if rows.is_empty() {
        return bad("instances: empty list, nothing to predict");
    }
    let mut builders = builders(inputs)?;
    for (i, row) in rows.iter().enumerate() {
        match row {
            Value::Object(map) if !(builders.len() == 1 && b64_object(map).is_some()) => {
                if let Some(unknown) = map.keys().find(|k| !inputs.iter().any(|(n, _)| n == k)) {
                    return bad(format!(
                        "instances[{i}].{unknown}: unknown feature (the model takes: {})",
                        names(inputs)
                    ));
                }
                for b in builders.iter_mut() {
                    let Some(value) = map.get(b.name) else {
                        return bad(format!(
                            "instances[{i}].{}: missing feature ({} expected)",
                            b.name,
                            b.spec.dtype.json_kind()
                        ));
                    };
                    b.push(value, &format!("instances[{i}].{}", b.name))?;
                }
            }
            value if builders.len() == 1 => {
                builders[0].push(value, &format!("instances[{i}]"))?;
            }
            other => {
                return bad(format!(
                    "instances[{i}]: expected an object of features ({}), got {}",
                    names(inputs),
                    kind(other)
                ))
            }
        }
    }
    finish(Format::Rows, rows.len(), builders)
}

fn parse_columns(columns: Value, inputs: &[(&str, &TensorSpec)]) -> Result<Batch, BadRequest> {
    let map = match columns {
        Value::Object(map) => map,
        // one input: `"inputs": [values]`
        other if inputs.len() == 1 => [(inputs[0].0.to_string(), other)].into_iter().collect(),
        other => {
            return bad(format!(
                "inputs: expected an object of features ({}), got {}",
                names(inputs),
                kind(&other)
            ))
        }
    };
    if let Some(unknown) = map.keys().find(|k| !inputs.iter().any(|(n, _)| n == k)) {
        return bad(format!(
            "inputs.{unknown}: unknown feature (the model takes: {})",
            names(inputs)
        ));
    }
    let mut builders = builders(inputs)?;
    let mut rows = None;
    for b in builders.iter_mut() {
        let field = format!("inputs.{}", b.name);
        let Some(value) = map.get(b.name) else {
            return bad(format!("{field}: missing feature"));
        };
        let Value::Array(list) = value else {
            return bad(format!(
                "{field}: expected a list with one value per row, got {}",
                kind(value)
            ));
        };
        if list.is_empty() {
            return bad(format!("{field}: empty list, nothing to predict"));
        }
        match rows {
            None => rows = Some(list.len()),
            Some(n) if n != list.len() => {
                return bad(format!(
                    "{field}: {} rows, but other inputs have {n}",
                    list.len()
                ))
            }
            _ => {}
        }
        for (i, v) in list.iter().enumerate() {
            b.push(v, &format!("{field}[{i}]"))?;
        }
    }
    finish(Format::Columns, rows.unwrap_or(0), builders)
}

fn names(inputs: &[(&str, &TensorSpec)]) -> String {
    inputs
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

struct Builder<'a> {
    name: &'a str,
    spec: &'a TensorSpec,
    /// Row dims the signature fixes (`-1` = any); `None` when the rank is unknown.
    inner: Option<Vec<i64>>,
    /// Row dims of the first row; every later row must match.
    row_dims: Option<Vec<u64>>,
    values: Values,
}

fn builders<'a>(inputs: &[(&'a str, &'a TensorSpec)]) -> Result<Vec<Builder<'a>>, BadRequest> {
    inputs
        .iter()
        .map(|&(name, spec)| {
            let Some(values) = Values::empty(spec.dtype) else {
                return bad(format!(
                    "{name}: the model's input type {} cannot be fed from JSON",
                    spec.tf_dtype
                ));
            };
            let inner = match &spec.shape {
                Some(s) if s.is_empty() => {
                    return bad(format!(
                        "{name}: the model's input is a scalar without a batch dimension"
                    ))
                }
                Some(s) => Some(s[1..].to_vec()),
                None => None,
            };
            Ok(Builder {
                name,
                spec,
                inner,
                row_dims: None,
                values,
            })
        })
        .collect()
}

impl Builder<'_> {
    fn push(&mut self, value: &Value, field: &str) -> Result<(), BadRequest> {
        let before = self.values.len();
        let mut dims = Vec::new();
        shape_of(value, &mut dims);
        // reconcile the JSON nesting with the signature: [batch, 1] takes a scalar, [batch]
        // takes a one-element list
        let dims = match &self.inner {
            Some(inner) if dims.is_empty() && inner.len() == 1 && inner[0] <= 1 => vec![1],
            Some(inner) if inner.is_empty() && dims == [1] => Vec::new(),
            _ => dims,
        };
        if let Some(inner) = &self.inner {
            let fits = inner.len() == dims.len()
                && inner
                    .iter()
                    .zip(&dims)
                    .all(|(&s, &d)| s < 0 || s as u64 == d);
            if !fits {
                return bad(format!(
                    "{field}: expected {} per row (the model's input is {}), got {}",
                    describe_row(inner, self.spec.dtype),
                    shape_text(self.spec.shape.as_deref()),
                    describe_value(value)
                ));
            }
        }
        if let Some(first) = &self.row_dims {
            if *first != dims {
                return bad(format!(
                    "{field}: row shape {dims:?} differs from the first row's {first:?}"
                ));
            }
        }
        self.flatten(value, field)?;
        let expect: u64 = dims.iter().product();
        if (self.values.len() - before) as u64 != expect {
            return bad(format!("{field}: ragged nested lists"));
        }
        self.row_dims = Some(dims);
        Ok(())
    }

    fn flatten(&mut self, value: &Value, field: &str) -> Result<(), BadRequest> {
        if let Value::Array(items) = value {
            for v in items {
                self.flatten(v, field)?;
            }
            return Ok(());
        }
        let wrong = || {
            bad(format!(
                "{field}: expected {} for {} input `{}`, got {}",
                self.spec.dtype.json_kind(),
                self.spec.tf_dtype,
                self.name,
                describe_value(value)
            ))
        };
        match (&mut self.values, value) {
            (Values::Str(v), Value::String(s)) => v.push(s.clone()),
            (Values::I64(v), Value::Number(n)) => match n.as_i64() {
                Some(x) => v.push(x),
                None => return wrong(),
            },
            (Values::I32(v), Value::Number(n)) => match n.as_i64().map(i32::try_from) {
                Some(Ok(x)) => v.push(x),
                _ => return wrong(),
            },
            (Values::F32(v), Value::Number(n)) => match n.as_f64() {
                Some(x) => v.push(x as f32),
                None => return wrong(),
            },
            (Values::F64(v), Value::Number(n)) => match n.as_f64() {
                Some(x) => v.push(x),
                None => return wrong(),
            },
            (Values::Bool(v), Value::Bool(b)) => v.push(*b),
            (Values::Str(v), Value::Object(map)) => match b64_object(map) {
                Some(Value::String(text)) => {
                    use base64::Engine as _;
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(text.trim_end_matches('\n'))
                        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
                        .map_err(|e| {
                            BadRequest(format!("{field}: invalid base64 in `b64`: {e}"))
                        })?;
                    match String::from_utf8(bytes) {
                        Ok(s) => v.push(s),
                        Err(_) => {
                            return bad(format!(
                                "{field}: the `b64` value decodes to bytes that are not UTF-8, \
                                 which this server cannot feed to a string input"
                            ))
                        }
                    }
                }
                Some(other) => {
                    return bad(format!(
                        "{field}: `b64` must be a base64 string, got {}",
                        kind(other)
                    ))
                }
                None => return wrong(),
            },
            _ => return wrong(),
        }
        Ok(())
    }
}

/// The nesting of a JSON value along its first elements (raggedness is caught by counting).
fn shape_of(v: &Value, dims: &mut Vec<u64>) {
    if let Value::Array(items) = v {
        dims.push(items.len() as u64);
        if let Some(first) = items.first() {
            shape_of(first, dims);
        }
    }
}

fn describe_row(inner: &[i64], dtype: Dtype) -> String {
    if inner.is_empty() {
        return format!("one value ({})", dtype.json_kind());
    }
    let dims: Vec<String> = inner
        .iter()
        .map(|&d| if d < 0 { "n".into() } else { d.to_string() })
        .collect();
    format!("a list of [{}] ({})", dims.join(", "), dtype.json_kind())
}

fn shape_text(shape: Option<&[i64]>) -> String {
    match shape {
        None => "of unknown rank".into(),
        Some(s) => {
            let dims: Vec<String> = s
                .iter()
                .map(|&d| if d < 0 { "None".into() } else { d.to_string() })
                .collect();
            format!("[{}]", dims.join(", "))
        }
    }
}

fn describe_value(v: &Value) -> String {
    let mut text = v.to_string();
    if text.len() > 40 {
        let mut cut = 37;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    format!("{} {}", kind(v), text)
}

fn finish(format: Format, rows: usize, builders: Vec<Builder<'_>>) -> Result<Batch, BadRequest> {
    let columns = builders
        .into_iter()
        .map(|b| {
            let mut dims = vec![rows as u64];
            dims.extend(b.row_dims.unwrap_or_default());
            Column {
                dims,
                values: b.values,
            }
        })
        .collect();
    Ok(Batch {
        signature: SERVING_DEFAULT.to_string(),
        format,
        rows,
        columns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dtype: Dtype, shape: &[i64]) -> TensorSpec {
        TensorSpec {
            dtype,
            tf_dtype: format!("DT_{dtype:?}").to_uppercase(),
            shape: Some(shape.to_vec()),
            tensor: "x:0".into(),
        }
    }

    fn parse(body: &str) -> Result<Batch, BadRequest> {
        let city = spec(Dtype::String, &[-1]);
        let cid = spec(Dtype::String, &[-1]);
        let rev = spec(Dtype::Float32, &[-1]);
        let visits = spec(Dtype::Int64, &[-1, 1]);
        parse_predict(
            body.as_bytes(),
            &[
                ("city", &city),
                ("customer_id", &cid),
                ("revenue", &rev),
                ("visits", &visits),
            ],
        )
    }

    fn err(body: &str) -> String {
        parse(body).unwrap_err().0
    }

    #[test]
    fn rows_become_columns_with_the_signature_shapes() {
        let b = parse(
            r#"{"instances":[{"customer_id":"a","city":"W","revenue":1,"visits":3},
                {"customer_id":"b","city":"K","revenue":2.5,"visits":[4]}]}"#,
        )
        .unwrap();
        assert_eq!(b.rows, 2);
        assert_eq!(
            b.columns[0].values,
            Values::Str(vec!["W".into(), "K".into()])
        );
        assert_eq!(b.columns[2].values, Values::F32(vec![1.0, 2.5]));
        assert_eq!(b.columns[3].dims, vec![2, 1]);
        assert_eq!(b.columns[3].values, Values::I64(vec![3, 4]));
        let c = parse(
            r#"{"inputs":{"customer_id":["a","b"],"city":["W","K"],"revenue":[1,2.5],"visits":[[3],[4]]}}"#,
        )
        .unwrap();
        assert_eq!(c.format, Format::Columns);
        assert_eq!(c.columns, b.columns);
    }

    #[test]
    fn b64_values_feed_string_inputs_and_bad_ones_are_refused() {
        // "Qzk5" = "C99", "V2Fyc2F3" = "Warsaw"
        let b = parse(
            r#"{"instances":[{"customer_id":{"b64":"Qzk5"},"city":{"b64":"V2Fyc2F3"},"revenue":1,"visits":3}]}"#,
        )
        .unwrap();
        assert_eq!(b.columns[0].values, Values::Str(vec!["Warsaw".into()]));
        assert_eq!(b.columns[1].values, Values::Str(vec!["C99".into()]));
        let c = parse(
            r#"{"inputs":{"customer_id":[{"b64":"Qzk5"}],"city":["Warsaw"],"revenue":[1],"visits":[[3]]}}"#,
        )
        .unwrap();
        assert_eq!(c.columns, b.columns);
        // one input: a bare b64 object per instance is that input's value
        let one = spec(Dtype::String, &[-1]);
        let single = parse_predict(
            br#"{"instances":[{"b64":"Qzk5"},"C1"]}"#,
            &[("customer_id", &one)],
        )
        .unwrap();
        assert_eq!(
            single.columns[0].values,
            Values::Str(vec!["C99".into(), "C1".into()])
        );
        let cases = [
            (r#"{"b64":"%%%"}"#, "invalid base64"),
            (r#"{"b64":7}"#, "`b64` must be a base64 string"),
            (r#"{"b64":"//79"}"#, "not UTF-8"),
            (r#"{"b65":"Qzk5"}"#, "expected a string"),
        ];
        for (value, want) in cases {
            let body = format!(
                r#"{{"instances":[{{"customer_id":{value},"city":"W","revenue":1,"visits":3}}]}}"#
            );
            let e = err(&body);
            assert!(
                e.starts_with("instances[0].customer_id: ") && e.contains(want),
                "{value}: {e}"
            );
        }
        // b64 is only for string inputs
        let e = err(
            r#"{"instances":[{"customer_id":"a","city":"W","revenue":{"b64":"MQ=="},"visits":3}]}"#,
        );
        assert!(e.contains("instances[0].revenue: expected a number"), "{e}");
    }

    #[test]
    fn signature_name_picks_the_inputs_to_validate_against() {
        let cid = spec(Dtype::String, &[-1]);
        let rev = spec(Dtype::Float32, &[-1]);
        let pick = |sig: &str| match sig {
            "serving_default" => Ok(vec![("customer_id", &cid), ("revenue", &rev)]),
            "embed" => Ok(vec![("customer_id", &cid)]),
            other => Err(BadRequest(format!("no signature {other}"))),
        };
        let b = parse_predict_as(
            br#"{"signature_name":"embed","instances":["C1","C2"]}"#,
            pick,
        )
        .unwrap();
        assert_eq!((b.signature.as_str(), b.rows), ("embed", 2));
        let d =
            parse_predict_as(br#"{"instances":[{"customer_id":"C1","revenue":2}]}"#, pick).unwrap();
        assert_eq!(d.signature, "serving_default");
        // the default signature's inputs are not accepted by the other one
        let e = parse_predict_as(
            br#"{"signature_name":"embed","instances":[{"customer_id":"C1","revenue":2}]}"#,
            pick,
        )
        .unwrap_err()
        .0;
        assert!(e.contains("instances[0].revenue: unknown feature"), "{e}");
        let e = parse_predict_as(br#"{"signature_name":"nope","instances":["C1"]}"#, pick)
            .unwrap_err()
            .0;
        assert_eq!(e, "no signature nope");
        let e = parse_predict_as(br#"{"signature_name":3,"instances":["C1"]}"#, pick)
            .unwrap_err()
            .0;
        assert!(e.contains("signature_name: expected a string"), "{e}");
        // parse_predict serves serving_default only
        let e = parse_predict(
            br#"{"signature_name":"embed","instances":["C1"]}"#,
            &[("customer_id", &cid)],
        )
        .unwrap_err()
        .0;
        assert!(e.contains("only \"serving_default\""), "{e}");
    }

    #[test]
    fn every_malformed_request_names_its_field() {
        let ok = r#""customer_id":"a","city":"W","revenue":1.5"#;
        let cases = [
            (r#"{"instances":[]}"#.to_string(), "instances: empty"),
            (
                r#"{"instances":{"a":1}}"#.into(),
                "instances: expected a list",
            ),
            (r#"{"instances":[{"customer_id":"a"#.into(), "invalid JSON"),
            (
                format!(r#"{{"instances":[{{{ok}}}]}}"#),
                "instances[0].visits: missing",
            ),
            (
                format!(r#"{{"instances":[{{{ok},"visits":1,"colour":"red"}}]}}"#),
                "instances[0].colour: unknown feature",
            ),
            (
                r#"{"instances":[{"customer_id":7,"city":"W","revenue":1,"visits":1}]}"#.into(),
                "instances[0].customer_id: expected a string",
            ),
            (
                format!(r#"{{"instances":[{{{ok},"visits":"many"}}]}}"#),
                "instances[0].visits: expected an integer",
            ),
            (
                format!(r#"{{"instances":[{{{ok},"visits":1.5}}]}}"#),
                "instances[0].visits: expected an integer",
            ),
            (
                r#"{"instances":[{"customer_id":"a","city":"W","revenue":"lots","visits":1}]}"#
                    .into(),
                "instances[0].revenue: expected a number",
            ),
            (
                format!(r#"{{"instances":[{{{ok},"visits":[1,2]}}]}}"#),
                "instances[0].visits: expected a list of [1]",
            ),
            (
                r#"{"instances":["a"]}"#.into(),
                "instances[0]: expected an object",
            ),
            (r#"{"rows":[]}"#.into(), "missing `instances`"),
            (
                r#"{"inputs":{"customer_id":["a"],"city":["W","K"],"revenue":[1],"visits":[1]}}"#
                    .into(),
                "rows, but other inputs have",
            ),
        ];
        for (body, want) in cases {
            let got = err(&body);
            assert!(got.contains(want), "{body}\n  -> {got}\n  want: {want}");
        }
    }

    #[test]
    fn a_single_input_signature_takes_bare_values() {
        let s = spec(Dtype::String, &[-1]);
        let b = parse_predict(br#"{"instances":["a","b"]}"#, &[("customer_id", &s)]).unwrap();
        assert_eq!(
            b.columns[0].values,
            Values::Str(vec!["a".into(), "b".into()])
        );
        let c = parse_predict(br#"{"inputs":["a","b"]}"#, &[("customer_id", &s)]).unwrap();
        assert_eq!(c.columns, b.columns);
    }
}
