//! Plain-Rust tensors: what requests are parsed into and what a session run returns.

use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;

use crate::signature::Dtype;

/// The elements of one tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Str(Vec<String>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
}

impl Values {
    /// An empty vector for a served dtype (`None` for unsupported ones).
    pub fn empty(dtype: Dtype) -> Option<Values> {
        Some(match dtype {
            Dtype::String => Values::Str(Vec::new()),
            Dtype::Int64 => Values::I64(Vec::new()),
            Dtype::Int32 => Values::I32(Vec::new()),
            Dtype::Float32 => Values::F32(Vec::new()),
            Dtype::Float64 => Values::F64(Vec::new()),
            Dtype::Bool => Values::Bool(Vec::new()),
            Dtype::Unsupported => return None,
        })
    }

    pub fn len(&self) -> usize {
        match self {
            Values::Str(v) => v.len(),
            Values::I64(v) => v.len(),
            Values::I32(v) => v.len(),
            Values::F32(v) => v.len(),
            Values::F64(v) => v.len(),
            Values::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `other` (same variant; callers build both from one signature).
    pub fn extend_from(&mut self, other: &Values) {
        match (self, other) {
            (Values::Str(a), Values::Str(b)) => a.extend_from_slice(b),
            (Values::I64(a), Values::I64(b)) => a.extend_from_slice(b),
            (Values::I32(a), Values::I32(b)) => a.extend_from_slice(b),
            (Values::F32(a), Values::F32(b)) => a.extend_from_slice(b),
            (Values::F64(a), Values::F64(b)) => a.extend_from_slice(b),
            (Values::Bool(a), Values::Bool(b)) => a.extend_from_slice(b),
            (a, b) => unreachable!("mixed column types {a:?} / {b:?}"),
        }
    }

    /// Serializes elements `[start, start + product(dims))` nested by `dims` (row-major), so
    /// a row of a `[batch, 10]` output becomes a JSON list of 10, a row of `[batch]` a scalar.
    pub fn serialize_nested<S: Serializer>(
        &self,
        start: usize,
        dims: &[u64],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match self {
            Values::Str(v) => nested(v, start, dims, s),
            Values::I64(v) => nested(v, start, dims, s),
            Values::I32(v) => nested(v, start, dims, s),
            // f32 through serde_json's f32 path: the shortest text that reads back as the same f32
            Values::F32(v) => nested(v, start, dims, s),
            Values::F64(v) => nested(v, start, dims, s),
            Values::Bool(v) => nested(v, start, dims, s),
        }
    }
}

fn nested<T: Serialize, S: Serializer>(
    v: &[T],
    start: usize,
    dims: &[u64],
    s: S,
) -> Result<S::Ok, S::Error> {
    struct Nested<'a, T> {
        v: &'a [T],
        start: usize,
        dims: &'a [u64],
    }
    impl<T: Serialize> Serialize for Nested<'_, T> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            nested(self.v, self.start, self.dims, s)
        }
    }
    match dims.split_first() {
        None => v[start].serialize(s),
        Some((&n, rest)) => {
            let stride: usize = rest.iter().product::<u64>() as usize;
            let mut seq = s.serialize_seq(Some(n as usize))?;
            for i in 0..n as usize {
                seq.serialize_element(&Nested {
                    v,
                    start: start + i * stride,
                    dims: rest,
                })?;
            }
            seq.end()
        }
    }
}

/// A tensor: full dims (batch first) and its elements.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub dims: Vec<u64>,
    pub values: Values,
}

impl Column {
    /// Elements per batch row.
    pub fn row_len(&self) -> usize {
        self.dims.iter().skip(1).product::<u64>() as usize
    }

    pub fn rows(&self) -> usize {
        self.dims.first().copied().unwrap_or(0) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: &Values, start: usize, dims: &[u64]) -> String {
        let mut out = Vec::new();
        v.serialize_nested(start, dims, &mut serde_json::Serializer::new(&mut out))
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rows_serialize_nested_and_f32_stays_short() {
        let v = Values::F32(vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6]);
        assert_eq!(json(&v, 3, &[3]), "[0.4,0.5,0.6]");
        assert_eq!(json(&v, 0, &[2, 3]), "[[0.1,0.2,0.3],[0.4,0.5,0.6]]");
        assert_eq!(json(&v, 5, &[]), "0.6");
        let s = Values::Str(vec!["a".into(), "b\"".into()]);
        assert_eq!(json(&s, 0, &[2]), r#"["a","b\""]"#);
    }
}
