//! OpenAPI schemas of request bodies whose parts are core config types (which carry no schema
//! derive): the shape is inferred from the types' own default values, serialized, so property
//! names, JSON types and examples come from the code and follow it when it changes.

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

/// A schema for values shaped like `example`: objects with its properties (none required),
/// arrays of its first item's shape, scalars of its type; `example` is attached as the default
/// value of every property so a schema-driven client starts from a valid document.
pub fn infer(example: &Value) -> Schema {
    match example {
        Value::Object(map) => {
            let mut b = ObjectBuilder::new().schema_type(Type::Object);
            for (k, v) in map {
                b = b.property(k, infer(v));
            }
            b.default(Some(example.clone())).into()
        }
        Value::Array(items) => {
            let item = items.first().map(infer).unwrap_or_else(any_value);
            ArrayBuilder::new()
                .items(RefOr::T(item))
                .default(Some(example.clone()))
                .into()
        }
        Value::String(_) => scalar(Type::String, example),
        Value::Bool(_) => scalar(Type::Boolean, example),
        Value::Number(n) if n.is_f64() => scalar(Type::Number, example),
        Value::Number(_) => scalar(Type::Integer, example),
        // Optional fields whose default is absent: any JSON value.
        Value::Null => any_value(),
    }
}

/// A schema without a type (utoipa's default builder says "object").
fn any_value() -> Schema {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::AnyValue)
        .into()
}

fn scalar(t: Type, example: &Value) -> Schema {
    ObjectBuilder::new()
        .schema_type(t)
        .default(Some(example.clone()))
        .into()
}

/// The serialized form of a default value (always an object for the config types).
pub fn defaults_of<T: Serialize + Default>() -> serde_json::Map<String, Value> {
    match serde_json::to_value(T::default()) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}

/// An object schema: `required` fields with their schemas, then properties inferred from
/// `defaults` (optional).
pub fn object(
    description: &str,
    required: Vec<(&str, RefOr<Schema>)>,
    optional: Vec<(&str, RefOr<Schema>)>,
    defaults: &serde_json::Map<String, Value>,
) -> RefOr<Schema> {
    let mut b = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description));
    for (name, s) in required {
        b = b.property(name, s).required(name);
    }
    for (name, s) in optional {
        b = b.property(name, s);
    }
    for (k, v) in defaults {
        b = b.property(k, infer(v));
    }
    b.into()
}

/// A name: 1 to `max` characters, not blank.
pub fn name(description: &str, max: usize) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(r"\S"))
        .description(Some(description))
        .into()
}

pub fn string(description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .into()
}

pub fn boolean(description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .description(Some(description))
        .into()
}

pub fn integer(description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Int64,
        )))
        .description(Some(description))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inferred_schema_keeps_names_types_and_defaults() {
        let s = infer(&json!({"epochs": 10, "lr": 0.5, "tags": ["a"], "gpu": null}));
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["properties"]["epochs"]["type"], "integer");
        assert_eq!(v["properties"]["lr"]["type"], "number");
        assert_eq!(v["properties"]["tags"]["type"], "array");
        assert_eq!(v["properties"]["tags"]["items"]["type"], "string");
        assert_eq!(v["properties"]["epochs"]["default"], 10);
        // An absent optional value constrains nothing.
        assert!(v["properties"]["gpu"].get("type").is_none());
    }
}
