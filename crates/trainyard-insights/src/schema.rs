//! TFDV Schema (tensorflow_metadata/proto/v0/schema.proto) as SchemaGen writes it:
//! `schema.pbtxt`, text format. Reads the fields the Data Insights tab shows (type, presence,
//! shape, value counts, domains) into typed structs, and summarizes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::textproto::{self, TextMessage, TextValue};
use crate::InsightsError;

/// `FeatureType` of schema.proto.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SchemaType {
    TypeUnknown,
    Bytes,
    Int,
    Float,
    Struct,
}

impl SchemaType {
    fn parse(token: &str) -> Option<Self> {
        Some(match token {
            "TYPE_UNKNOWN" | "0" => SchemaType::TypeUnknown,
            "BYTES" | "1" => SchemaType::Bytes,
            "INT" | "2" => SchemaType::Int,
            "FLOAT" | "3" => SchemaType::Float,
            "STRUCT" | "4" => SchemaType::Struct,
            _ => return None,
        })
    }
}

/// `FeaturePresence`: required when `min_fraction` is 1.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    pub min_fraction: Option<f64>,
    pub min_count: Option<i64>,
}

/// A feature's value domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Domain {
    String {
        name: Option<String>,
        values: Vec<String>,
    },
    Int {
        name: Option<String>,
        min: Option<i64>,
        max: Option<i64>,
        is_categorical: bool,
    },
    Float {
        name: Option<String>,
        min: Option<f64>,
        max: Option<f64>,
    },
    Bool {
        name: Option<String>,
    },
    /// `domain: "name"`: a reference to a top-level domain that the schema does not define.
    Unresolved {
        name: String,
    },
}

/// One `feature` of the schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaFeature {
    pub name: String,
    #[serde(rename = "type")]
    pub feature_type: SchemaType,
    pub presence: Option<Presence>,
    /// `shape.dim[].size`: a fixed shape (single-valued features are `[1]`).
    pub shape: Option<Vec<i64>>,
    /// `value_count { min max }`: a variable number of values per example.
    pub value_count: Option<(Option<i64>, Option<i64>)>,
    pub domain: Option<Domain>,
    pub deprecated: bool,
    pub not_in_environment: Vec<String>,
}

/// The parsed schema.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub features: Vec<SchemaFeature>,
    pub default_environment: Vec<String>,
}

fn string_of(field: &str, v: &TextValue) -> Result<String, InsightsError> {
    match v {
        TextValue::Str(b) => {
            String::from_utf8(b.clone()).map_err(|_| InsightsError::schema(field, "is not UTF-8"))
        }
        other => Err(InsightsError::schema(
            field,
            format!("must be a string, got {}", other.kind()),
        )),
    }
}

fn token_of<'a>(field: &str, v: &'a TextValue) -> Result<&'a str, InsightsError> {
    match v {
        TextValue::Token(t) => Ok(t),
        other => Err(InsightsError::schema(
            field,
            format!("must be a scalar, got {}", other.kind()),
        )),
    }
}

fn message_of<'a>(field: &str, v: &'a TextValue) -> Result<&'a TextMessage, InsightsError> {
    match v {
        TextValue::Message(m) => Ok(m),
        other => Err(InsightsError::schema(
            field,
            format!("must be a message, got {}", other.kind()),
        )),
    }
}

fn opt_string(m: &TextMessage, field: &str) -> Result<Option<String>, InsightsError> {
    m.get(field).map(|v| string_of(field, v)).transpose()
}

fn opt_i64(m: &TextMessage, field: &str) -> Result<Option<i64>, InsightsError> {
    m.get(field)
        .map(|v| {
            let t = token_of(field, v)?;
            t.parse::<i64>()
                .map_err(|_| InsightsError::schema(field, format!("{t:?} is not an integer")))
        })
        .transpose()
}

fn opt_f64(m: &TextMessage, field: &str) -> Result<Option<f64>, InsightsError> {
    m.get(field)
        .map(|v| {
            let t = token_of(field, v)?;
            let lower = t.to_ascii_lowercase();
            match lower.trim_end_matches('f') {
                "inf" | "infinity" => Ok(f64::INFINITY),
                "-inf" | "-infinity" => Ok(f64::NEG_INFINITY),
                "nan" => Ok(f64::NAN),
                s => s
                    .parse::<f64>()
                    .map_err(|_| InsightsError::schema(field, format!("{t:?} is not a number"))),
            }
        })
        .transpose()
}

fn opt_bool(m: &TextMessage, field: &str) -> Result<bool, InsightsError> {
    match m.get(field) {
        None => Ok(false),
        Some(v) => match token_of(field, v)? {
            "true" | "True" | "t" | "1" => Ok(true),
            "false" | "False" | "f" | "0" => Ok(false),
            t => Err(InsightsError::schema(field, format!("{t:?} is not a bool"))),
        },
    }
}

fn string_domain(m: &TextMessage) -> Result<Domain, InsightsError> {
    Ok(Domain::String {
        name: opt_string(m, "name")?,
        values: m
            .all("value")
            .map(|v| string_of("string_domain.value", v))
            .collect::<Result<_, _>>()?,
    })
}

/// A `string_domain`, `int_domain`, `float_domain` or `bool_domain` field; None for others.
fn inline_domain(at: &str, key: &str, v: &TextValue) -> Result<Option<Domain>, InsightsError> {
    Ok(Some(match key {
        "string_domain" => string_domain(message_of(at, v)?)?,
        "int_domain" => {
            let d = message_of(at, v)?;
            Domain::Int {
                name: opt_string(d, "name")?,
                min: opt_i64(d, "min")?,
                max: opt_i64(d, "max")?,
                is_categorical: opt_bool(d, "is_categorical")?,
            }
        }
        "float_domain" => {
            let d = message_of(at, v)?;
            Domain::Float {
                name: opt_string(d, "name")?,
                min: opt_f64(d, "min")?,
                max: opt_f64(d, "max")?,
            }
        }
        "bool_domain" => Domain::Bool {
            name: opt_string(message_of(at, v)?, "name")?,
        },
        _ => return Ok(None),
    }))
}

fn feature(
    m: &TextMessage,
    domains: &BTreeMap<String, Domain>,
) -> Result<SchemaFeature, InsightsError> {
    let name =
        opt_string(m, "name")?.ok_or_else(|| InsightsError::schema("feature", "has no name"))?;
    let at = |f: &str| format!("feature {name:?}: {f}");
    let feature_type = match m.get("type") {
        None => SchemaType::TypeUnknown,
        Some(v) => {
            let t = token_of(&at("type"), v)?;
            SchemaType::parse(t)
                .ok_or_else(|| InsightsError::schema(at("type"), format!("unknown type {t:?}")))?
        }
    };
    let presence = m
        .get("presence")
        .map(|v| {
            let p = message_of(&at("presence"), v)?;
            Ok::<_, InsightsError>(Presence {
                min_fraction: opt_f64(p, "min_fraction")?,
                min_count: opt_i64(p, "min_count")?,
            })
        })
        .transpose()?;
    let shape = m
        .get("shape")
        .map(|v| {
            let s = message_of(&at("shape"), v)?;
            s.all("dim")
                .map(|d| {
                    let d = message_of(&at("shape.dim"), d)?;
                    Ok(opt_i64(d, "size")?.unwrap_or(-1))
                })
                .collect::<Result<Vec<_>, InsightsError>>()
        })
        .transpose()?;
    let value_count = m
        .get("value_count")
        .map(|v| {
            let c = message_of(&at("value_count"), v)?;
            Ok::<_, InsightsError>((opt_i64(c, "min")?, opt_i64(c, "max")?))
        })
        .transpose()?;
    let mut domain = None;
    for (key, v) in &m.fields {
        if key == "domain" {
            let n = string_of(&at(key), v)?;
            domain = Some(
                domains
                    .get(&n)
                    .cloned()
                    .unwrap_or(Domain::Unresolved { name: n }),
            );
        } else if let Some(d) = inline_domain(&at(key), key, v)? {
            domain = Some(d);
        }
    }
    Ok(SchemaFeature {
        presence,
        shape,
        value_count,
        domain,
        deprecated: opt_bool(m, "deprecated")?,
        not_in_environment: m
            .all("not_in_environment")
            .map(|v| string_of(&at("not_in_environment"), v))
            .collect::<Result<_, _>>()?,
        feature_type,
        name,
    })
}

impl Schema {
    /// Parses `schema.pbtxt`.
    pub fn from_text(text: &str) -> Result<Schema, InsightsError> {
        let root = textproto::parse(text)?;
        // top-level domains that features reference by name (`domain: "city"`)
        let mut domains = BTreeMap::new();
        for (key, v) in &root.fields {
            let Some(d) = inline_domain(key, key, v)? else {
                continue;
            };
            let name = match &d {
                Domain::String { name, .. }
                | Domain::Int { name, .. }
                | Domain::Float { name, .. }
                | Domain::Bool { name } => name.clone(),
                Domain::Unresolved { name } => Some(name.clone()),
            };
            if let Some(n) = name {
                domains.insert(n, d);
            }
        }
        let features = root
            .all("feature")
            .map(|v| feature(message_of("feature", v)?, &domains))
            .collect::<Result<_, _>>()?;
        let default_environment = root
            .all("default_environment")
            .map(|v| string_of("default_environment", v))
            .collect::<Result<_, _>>()?;
        Ok(Schema {
            features,
            default_environment,
        })
    }

    pub fn summary(&self) -> SchemaSummary {
        let mut by_type: BTreeMap<SchemaType, u64> = BTreeMap::new();
        let features: Vec<SchemaFeatureSummary> = self
            .features
            .iter()
            .map(|f| {
                *by_type.entry(f.feature_type).or_default() += 1;
                SchemaFeatureSummary::of(f)
            })
            .collect();
        SchemaSummary {
            feature_count: features.len() as u64,
            required_count: features.iter().filter(|f| f.required).count() as u64,
            by_type,
            features,
        }
    }
}

/// One feature as the Data Insights tab shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaFeatureSummary {
    pub name: String,
    #[serde(rename = "type")]
    pub feature_type: SchemaType,
    /// `presence.min_fraction` is 1: every example must have the feature.
    pub required: bool,
    pub presence: Option<Presence>,
    /// "fixed [1]", "values 1..3" or "variable".
    pub shape: String,
    pub domain: Option<Domain>,
    /// Human-readable constraints: presence, shape, domain bounds or sizes.
    pub constraints: Vec<String>,
    pub deprecated: bool,
}

impl SchemaFeatureSummary {
    fn of(f: &SchemaFeature) -> Self {
        let required = f
            .presence
            .as_ref()
            .and_then(|p| p.min_fraction)
            .is_some_and(|x| x >= 1.0);
        let shape = match (&f.shape, &f.value_count) {
            (Some(dims), _) => format!(
                "fixed [{}]",
                dims.iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (None, Some((min, max))) => format!(
                "values {}..{}",
                min.map_or("?".into(), |x| x.to_string()),
                max.map_or("?".into(), |x| x.to_string())
            ),
            (None, None) => "variable".into(),
        };
        let mut constraints = Vec::new();
        if let Some(p) = &f.presence {
            if let Some(x) = p.min_fraction {
                constraints.push(format!("present in at least {}% of examples", x * 100.0));
            }
            if let Some(c) = p.min_count {
                constraints.push(format!("present in at least {c} examples"));
            }
        }
        if f.shape.is_some() || f.value_count.is_some() {
            constraints.push(format!("shape {shape}"));
        }
        match &f.domain {
            Some(Domain::String { values, .. }) => {
                constraints.push(format!("one of {} string values", values.len()))
            }
            Some(Domain::Int { min, max, .. }) if min.is_some() || max.is_some() => constraints
                .push(format!(
                    "int in [{}, {}]",
                    min.map_or("-inf".into(), |x| x.to_string()),
                    max.map_or("inf".into(), |x| x.to_string())
                )),
            Some(Domain::Float { min, max, .. }) if min.is_some() || max.is_some() => constraints
                .push(format!(
                    "float in [{}, {}]",
                    min.map_or("-inf".into(), |x| x.to_string()),
                    max.map_or("inf".into(), |x| x.to_string())
                )),
            Some(Domain::Bool { .. }) => constraints.push("bool".into()),
            Some(Domain::Unresolved { name }) => {
                constraints.push(format!("domain {name:?} (not defined in the schema)"))
            }
            _ => {}
        }
        SchemaFeatureSummary {
            name: f.name.clone(),
            feature_type: f.feature_type,
            required,
            presence: f.presence.clone(),
            shape,
            domain: f.domain.clone(),
            constraints,
            deprecated: f.deprecated,
        }
    }
}

/// The schema part of the Data Insights tab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaSummary {
    pub feature_count: u64,
    pub required_count: u64,
    pub by_type: BTreeMap<SchemaType, u64>,
    pub features: Vec<SchemaFeatureSummary>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"
feature {
  name: "city"
  type: BYTES
  domain: "city"
  presence { min_fraction: 1.0 min_count: 1 }
  shape { dim { size: 1 } }
}
feature {
  name: "promo"
  type: BYTES
  presence { min_count: 1 }
  value_count { min: 1 max: 1 }
}
feature {
  name: "quantity"
  type: INT
  int_domain { min: 1 max: 20 }
}
string_domain { name: "city" value: "a" value: "b" }
"#;

    #[test]
    fn reads_features_domains_and_presence() {
        let s = Schema::from_text(SCHEMA).unwrap();
        assert_eq!(s.features.len(), 3);
        let city = &s.features[0];
        assert_eq!(city.feature_type, SchemaType::Bytes);
        assert_eq!(city.shape, Some(vec![1]));
        assert_eq!(
            city.domain,
            Some(Domain::String {
                name: Some("city".into()),
                values: vec!["a".into(), "b".into()]
            })
        );
        let sum = s.summary();
        assert_eq!(sum.required_count, 1);
        assert_eq!(sum.by_type[&SchemaType::Bytes], 2);
        assert_eq!(sum.features[1].shape, "values 1..1");
        assert!(!sum.features[1].required);
        assert_eq!(sum.features[2].constraints, vec!["int in [1, 20]"]);
    }

    #[test]
    fn bad_types_are_errors() {
        let e = Schema::from_text("feature { name: \"x\" type: COMPLEX }").unwrap_err();
        assert!(e.to_string().contains("unknown type"), "{e}");
        let e = Schema::from_text("feature { type: INT }").unwrap_err();
        assert!(e.to_string().contains("no name"), "{e}");
        let e = Schema::from_text("feature { name: 3 }").unwrap_err();
        assert!(e.to_string().contains("must be a string"), "{e}");
    }
}
