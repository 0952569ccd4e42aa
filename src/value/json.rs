//! Canonical JSON text straight from JSON text: compact, object keys sorted at every level, the
//! last of duplicate keys kept. Exactly what parsing into a `serde_json::Value` and printing it
//! gives (stored fingerprints depend on it), without that tree's owned strings and map nodes:
//! every JSON cell of every row is canonicalised before it is hashed, changed or not.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Number;

/// One JSON document, borrowing the input's strings where they hold no escapes.
enum Node<'a> {
    Null,
    Bool(bool),
    Number(Number),
    Str(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    /// Sorted by key, one entry per key, once parsed.
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
}

/// The canonical text of `text`, or why it is not JSON.
pub fn canonical(text: &str) -> Result<String, serde_json::Error> {
    let node: Node<'_> = serde_json::from_str(text)?;
    serde_json::to_string(&node)
}

/// [`canonical`], appended to `out`.
pub fn canonical_into(text: &str, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let node: Node<'_> = serde_json::from_str(text)?;
    serde_json::to_writer(out, &node)
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

/// A map key, borrowed when the input spells it without escapes (serde's own `Cow` impl
/// always copies).
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object key")
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(s)))
    }
}

/// Mirrors `serde_json::Value`'s own visitor, number for number.
struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number(i.into()))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number(u.into()))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Node<'de>, E> {
        Ok(Number::from_f64(f).map_or(Node::Null, Node::Number))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(s)))
    }
    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut entries: Vec<(Cow<'de, str>, Node<'de>)> = Vec::new();
        while let Some(Key(key)) = map.next_key()? {
            entries.push((key, map.next_value()?));
        }
        // A stable sort keeps duplicates in input order; the last one wins, as it does in a map.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut unique: Vec<(Cow<'de, str>, Node<'de>)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match unique.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => unique.push(entry),
            }
        }
        Ok(Node::Object(unique))
    }
}

impl Serialize for Node<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Null => s.serialize_unit(),
            Node::Bool(b) => s.serialize_bool(*b),
            Node::Number(n) => n.serialize(s),
            Node::Str(text) => s.serialize_str(text),
            Node::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Object(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k.as_ref(), v)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slow path every earlier version used: a `serde_json::Value` tree, printed.
    fn through_value(text: &str) -> Option<String> {
        serde_json::from_str::<serde_json::Value>(text).ok().map(|v| v.to_string())
    }

    #[test]
    fn same_text_as_a_round_trip_through_serde_json_value() {
        let docs = [
            r#"{"visits": 12, "tags": ["a", 3]}"#,
            r#"{"b":1,"a":{"z":[1,2,{"y":null,"x":true}],"c":"\u00e9\n\"q\""},"":0}"#,
            r#"{"k": 1, "k": 2, "j": 0, "k": 3}"#,
            r#"{"\u0041": 1, "A": 2, "a\\b": 3}"#,
            r#"[1.0, -0, -0.0, 1e5, 1E-7, 12345678901234567890, -9223372036854775808, 18446744073709551616, 0.1]"#,
            r#"[1e400, -1e400, 3.141592653589793238462643383279]"#,
            r#"  "just a string"  "#,
            "null",
            "[]",
            "{}",
            r#"{"emoji": "😀", "ctrl": "\u0001\t", "slash": "\/"}"#,
        ];
        for doc in docs {
            assert_eq!(canonical(doc).ok(), through_value(doc), "{doc}");
        }
    }

    #[test]
    fn invalid_json_is_an_error_as_before() {
        for doc in [r#"{"a": }"#, "[1, 2", "nul", r#"{"a": 1} x"#, ""] {
            assert!(canonical(doc).is_err(), "{doc}");
            assert!(through_value(doc).is_none(), "{doc}");
        }
    }
}
