//! Plain Python values <-> serde: dicts in, dicts out. Every config or entity crosses the
//! boundary as JSON-shaped data (datetimes become RFC 3339 strings in dicts).

use chrono::{DateTime, FixedOffset, Utc};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyDict, PyFloat, PyInt, PyList, PyMapping, PySequence, PyString, PyTuple,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::errors::invalid;

/// A Python value (None, bool, int, float, str, mapping, list/tuple, datetime, date) as JSON.
pub fn py_to_json(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.extract()?));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::Number(u.into()));
        }
        return Err(invalid("value", format!("integer {obj} is too large")));
    }
    if obj.is_instance_of::<PyFloat>() {
        let f: f64 = obj.extract()?;
        return Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| invalid("value", format!("{f} is not a finite number")));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.extract::<String>()?));
    }
    let datetime = obj.py().import("datetime")?;
    if obj.is_instance(&datetime.getattr("datetime")?)? {
        if obj.getattr("tzinfo")?.is_none() {
            return Err(invalid(
                "datetime",
                format!(
                    "{obj} has no time zone; pass an aware datetime (e.g. tzinfo=timezone.utc)"
                ),
            ));
        }
        return Ok(Value::String(obj.call_method0("isoformat")?.extract()?));
    }
    if obj.is_instance(&datetime.getattr("date")?)? {
        return Ok(Value::String(obj.call_method0("isoformat")?.extract()?));
    }
    if let Ok(map) = obj.cast::<PyMapping>() {
        let mut out = Map::new();
        for item in map.items()?.iter() {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
            let key = k
                .cast::<PyString>()
                .map_err(|_| invalid("key", format!("dict keys must be strings, got {k:?}")))?
                .extract::<String>()?;
            out.insert(key, py_to_json(&v)?);
        }
        return Ok(Value::Object(out));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let seq = obj.cast::<PySequence>()?;
        let mut out = Vec::with_capacity(seq.len()?);
        for item in seq.try_iter()? {
            out.push(py_to_json(&item?)?);
        }
        return Ok(Value::Array(out));
    }
    Err(PyTypeError::new_err(format!(
        "cannot pass a {} to trainyard; use dicts, lists, str, int, float, bool, None or datetime",
        obj.get_type().name()?
    )))
}

/// A JSON value as plain Python objects.
pub fn json_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(a) => {
            let list = PyList::empty(py);
            for x in a {
                list.append(json_to_py(py, x)?)?;
            }
            list.into_any()
        }
        Value::Object(m) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(k, json_to_py(py, x)?)?;
            }
            d.into_any()
        }
    })
}

/// A serde value as a plain Python dict/list/....
pub fn to_py<'py, T: Serialize>(py: Python<'py>, v: &T) -> PyResult<Bound<'py, PyAny>> {
    let json =
        serde_json::to_value(v).map_err(|e| invalid("value", format!("cannot serialize: {e}")))?;
    json_to_py(py, &json)
}

/// A serde value from plain Python data; a shape error is a ValidationError on `what`.
pub fn from_py<T: DeserializeOwned>(what: &str, obj: &Bound<'_, PyAny>) -> PyResult<T> {
    from_json(what, py_to_json(obj)?)
}

pub fn from_json<T: DeserializeOwned>(what: &str, json: Value) -> PyResult<T> {
    serde_json::from_value(json)
        .map_err(|e| invalid(what, trainyard_core::strict::explain(&e.to_string())))
}

/// Refuses keys of `obj` (a JSON object) outside `allowed`, so a typo is an error instead of a
/// silently ignored field.
pub fn reject_unknown_keys(what: &str, obj: &Value, allowed: &[&str]) -> PyResult<()> {
    let Value::Object(m) = obj else {
        return Err(invalid(what, "must be a dict"));
    };
    for k in m.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(invalid(
                what,
                trainyard_core::strict::unknown_field_message(k, allowed),
            ));
        }
    }
    Ok(())
}

/// Config sections given as dicts change only the keys they name (core's rule, as in the CLI
/// and REST).
pub use trainyard_core::strict::over_defaults;

/// Top-level keys of a serialized default value (the fields a dict may name).
pub fn field_names<T: Serialize + Default>() -> Vec<String> {
    match serde_json::to_value(T::default()) {
        Ok(Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// A UTC instant from a Python datetime (aware) or an RFC 3339 string.
pub fn instant(what: &str, obj: &Bound<'_, PyAny>) -> PyResult<DateTime<Utc>> {
    match py_to_json(obj)? {
        Value::String(s) => DateTime::parse_from_rfc3339(&s)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|e| invalid(what, format!("{s:?} is not an RFC 3339 instant: {e}"))),
        _ => Err(invalid(
            what,
            "must be an aware datetime or an RFC 3339 string",
        )),
    }
}

/// A fire time in its schedule's zone, as an aware Python datetime (fixed offset).
pub fn local_times<Tz: chrono::TimeZone>(times: &[DateTime<Tz>]) -> Vec<DateTime<FixedOffset>> {
    times.iter().map(|t| t.fixed_offset()).collect()
}

/// A JSON-shaped result that becomes plain Python data (dict, list, ...).
pub struct Json(pub Value);

impl Json {
    pub fn of<T: Serialize>(v: &T) -> trainyard_core::Result<Json> {
        serde_json::to_value(v)
            .map(Json)
            .map_err(|e| trainyard_core::Error::Backend(format!("cannot serialize a result: {e}")))
    }
}

impl<'py> IntoPyObject<'py> for Json {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        json_to_py(py, &self.0)
    }
}

/// A model type by its name ("retrieval", "ranking", "multitask").
pub fn model_type(s: &str) -> PyResult<trainyard_core::model_config::ModelType> {
    from_json("model_type", Value::String(s.into()))
}
