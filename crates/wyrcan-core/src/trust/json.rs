//! A JSON tree that keeps what `serde_json::Value` throws away: the order
//! of an object's keys and their duplicates.
//!
//! containers-policy.json(5) and cosign payloads are parsed strictly, as
//! containers/image does: a duplicated key is an error, not "the last one
//! wins", since a policy reviewer reading the first `"type"` must see the
//! one that applies. Walking this tree by hand also lets each error name
//! its location (`transports.docker["quay.io/acme"][0].keyPath`).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    /// Keys in file order, duplicates kept.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parse bytes; serde_json's own recursion limit bounds the depth.
    pub fn parse(bytes: &[u8]) -> Result<Json, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    /// What kind of value this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }

    /// Compact JSON text.
    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<u8> {
        // Strings, numbers and maps with string keys always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Indented JSON text with a final newline.
    pub fn to_vec_pretty(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Json::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut out = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Json>()? {
            out.push((k, v));
        }
        Ok(Json::Object(out))
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Number(n) => n.serialize(s),
            Json::String(v) => s.serialize_str(v),
            Json::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Json::Object(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// An object's fields, checked: no key twice and, when `allowed` is
/// given, none outside it. Returns the first key that breaks a rule with
/// what is wrong with it.
pub(crate) fn check_fields<'a>(
    fields: &'a [(String, Json)],
    allowed: Option<&[&str]>,
) -> Result<(), (&'a str, FieldProblem)> {
    for (i, (k, _)) in fields.iter().enumerate() {
        if fields[..i].iter().any(|(earlier, _)| earlier == k) {
            return Err((k, FieldProblem::Duplicate));
        }
        if allowed.is_some_and(|a| !a.contains(&k.as_str())) {
            return Err((k, FieldProblem::Unknown));
        }
    }
    Ok(())
}

/// What [`check_fields`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldProblem {
    /// The key appears twice.
    Duplicate,
    /// The key is not one of the allowed ones.
    Unknown,
}

/// The value of `key` in an object's fields.
pub(crate) fn get<'a>(fields: &'a [(String, Json)], key: &str) -> Option<&'a Json> {
    fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_duplicates_survive() {
        let j = Json::parse(br#"{"b":1,"a":[true,null,"x"],"b":2.5}"#).unwrap();
        let Json::Object(fields) = &j else {
            panic!("{j:?}")
        };
        let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a", "b"]);
        assert_eq!(
            check_fields(fields, Some(&["a", "b"])),
            Err(("b", FieldProblem::Duplicate))
        );
        assert_eq!(
            check_fields(&fields[..2], Some(&["a"])),
            Err(("b", FieldProblem::Unknown))
        );
        assert_eq!(check_fields(&fields[..2], Some(&["a", "b"])), Ok(()));
        assert_eq!(check_fields(&fields[..2], None), Ok(()));
        assert_eq!(
            check_fields(fields, None),
            Err(("b", FieldProblem::Duplicate))
        );
        assert_eq!(get(fields, "a").map(Json::kind), Some("an array"));
        assert_eq!(j.to_vec(), br#"{"b":1,"a":[true,null,"x"],"b":2.5}"#);
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "[".repeat(100_000);
        assert!(Json::parse(deep.as_bytes()).is_err());
        assert!(Json::parse(b"{} x").is_err());
    }
}
