//! A JSON reader that refuses a key repeated within one object, with a typed error.
//!
//! Every JSON parser lets the last of two equal keys win, so `{"dry_run": true, "dry_run": false}` would run a real
//! sweep where whoever wrote it may well have meant the first. The reader is general (any JSON value): the invoke
//! body (`server::event`) and `CLEANUP_TARGETS` (`targets`) are read with it.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a text is not strict JSON.
#[derive(Debug, thiserror::Error)]
pub enum StrictJsonError {
    /// A key appears twice in one object (shown up to 64 characters).
    #[error("duplicate key {0:?}: each key may appear once")]
    DuplicateKey(String),
    /// Not JSON at all, or nested too deeply.
    #[error("{0}")]
    Syntax(#[source] serde_json::Error),
}

/// `text` parsed like `serde_json::from_str::<Value>`, except that a key repeated within one object is a
/// [`StrictJsonError::DuplicateKey`].
pub fn parse(text: &str) -> Result<Value, StrictJsonError> {
    let duplicate = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = Strict(&duplicate).deserialize(&mut deserializer).and_then(|value| {
        deserializer.end()?;
        Ok(value)
    });
    match (parsed, duplicate.into_inner()) {
        (_, Some(key)) => Err(StrictJsonError::DuplicateKey(key)),
        (Ok(value), None) => Ok(value),
        (Err(e), None) => Err(StrictJsonError::Syntax(e)),
    }
}

/// A JSON value whose objects have no repeated keys; the first repeated key is recorded in the cell.
#[derive(Clone, Copy)]
struct Strict<'c>(&'c RefCell<Option<String>>);

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let shown: String = key.chars().take(64).collect();
                *self.0.borrow_mut() = Some(shown);
                return Err(de::Error::custom("duplicate key"));
            }
            let value = map.next_value_seed(self)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_named_at_any_depth() {
        assert!(matches!(parse(r#"{"a": 1, "a": 2}"#), Err(StrictJsonError::DuplicateKey(k)) if k == "a"));
        assert!(matches!(parse(r#"[{"x": {"b": 1, "b": 1}}]"#), Err(StrictJsonError::DuplicateKey(k)) if k == "b"));
        assert_eq!(parse(r#"{"a": [1, {"b": null}], "c": 1.5}"#).unwrap()["a"][1]["b"], Value::Null);
        assert!(matches!(parse("{"), Err(StrictJsonError::Syntax(_))));
        assert!(matches!(parse("1 2"), Err(StrictJsonError::Syntax(_))));
        let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
        assert!(matches!(parse(&deep), Err(StrictJsonError::Syntax(_))));
    }
}
