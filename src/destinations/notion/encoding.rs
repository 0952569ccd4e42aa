//! Values as Notion property values, by the property's type, and the keys Notion's pages hold.
//! No I/O. The shapes are the page property value objects of
//! developers.notion.com/reference/page-property-values; the limits are
//! developers.notion.com/reference/request-limits ("Size limits").

use serde_json::{json, Value as J};

use crate::value::Value;

/// Characters (UTF-16 code units, as Notion counts them) in one rich text object's `content`.
pub const MAX_TEXT: usize = 2000;
/// Elements of any array in a request (rich text objects, multi-select options, people).
pub const MAX_ARRAY: usize = 100;
/// A URL's length at most.
pub const MAX_URL: usize = 2000;
/// An email address's or phone number's length at most.
pub const MAX_EMAIL: usize = 200;
/// A request's payload at most.
pub const MAX_PAYLOAD: usize = 500 * 1000;

/// A database property's type, as `GET /v1/databases/{id}` gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PropType {
    Title,
    RichText,
    Number,
    Checkbox,
    Select,
    MultiSelect,
    Date,
    Email,
    Url,
    PhoneNumber,
    People,
    /// Computed by Notion (formula, rollup, created_time, ...): never written.
    ReadOnly(String),
    /// A type sluice does not write (files, relation, status, ...).
    Unsupported(String),
}

impl PropType {
    pub fn from_api(kind: &str) -> PropType {
        match kind {
            "title" => PropType::Title,
            "rich_text" => PropType::RichText,
            "number" => PropType::Number,
            "checkbox" => PropType::Checkbox,
            "select" => PropType::Select,
            "multi_select" => PropType::MultiSelect,
            "date" => PropType::Date,
            "email" => PropType::Email,
            "url" => PropType::Url,
            "phone_number" => PropType::PhoneNumber,
            "people" => PropType::People,
            "formula" | "rollup" | "created_time" | "created_by" | "last_edited_time" | "last_edited_by" | "unique_id" | "verification"
            | "button" => PropType::ReadOnly(kind.to_string()),
            other => PropType::Unsupported(other.to_string()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            PropType::Title => "title",
            PropType::RichText => "rich_text",
            PropType::Number => "number",
            PropType::Checkbox => "checkbox",
            PropType::Select => "select",
            PropType::MultiSelect => "multi_select",
            PropType::Date => "date",
            PropType::Email => "email",
            PropType::Url => "url",
            PropType::PhoneNumber => "phone_number",
            PropType::People => "people",
            PropType::ReadOnly(k) | PropType::Unsupported(k) => k,
        }
    }

    /// Whether a key can live in a property of this type (and be searched by `equals`).
    pub fn holds_keys(&self) -> bool {
        matches!(self, PropType::Title | PropType::RichText | PropType::Number)
    }
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Text as rich text objects of at most [`MAX_TEXT`] UTF-16 units each (a character is never
/// split); empty text is an empty array (Notion takes no empty content).
pub fn rich_text(text: &str) -> Vec<J> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut units = 0;
    for c in text.chars() {
        let n = c.len_utf16();
        if units + n > MAX_TEXT {
            parts.push(std::mem::take(&mut current));
            units = 0;
        }
        current.push(c);
        units += n;
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts.into_iter().map(|content| json!({ "type": "text", "text": { "content": content } })).collect()
}

/// A number as Notion stores it: finite, a JSON number.
fn number(value: &Value) -> Option<J> {
    let n = match value {
        Value::Int(i) => return Some(json!(i)),
        Value::Float(f) => *f,
        Value::Decimal(d) => d.parse::<f64>().ok()?,
        Value::Text(t) => t.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    n.is_finite().then(|| serde_json::Number::from_f64(n).map(J::Number)).flatten()
}

/// The items of a list value: a list column, a JSON array, or text separated by commas.
fn items(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Array(items) => Some(items.iter().filter(|v| !v.is_null()).map(Value::to_text).collect()),
        Value::Json(text) => match serde_json::from_str::<J>(text).ok()? {
            J::Array(items) => {
                Some(items.iter().filter(|v| !v.is_null()).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect())
            }
            _ => None,
        },
        Value::Text(t) => Some(t.split(',').map(|s| s.trim().to_string()).collect()),
        // One user id (a `uuid` column) is a list of one person.
        Value::Uuid(u) => Some(vec![u.hyphenated().to_string()]),
        _ => None,
    }
    .map(|v: Vec<String>| v.into_iter().filter(|s| !s.is_empty()).collect())
}

/// A select option's name: Notion refuses commas in them, and names over 100 characters.
fn option(name: &str, property: &str) -> Result<J, String> {
    if name.contains(',') {
        return Err(format!("property `{property}`: select option \"{name}\" holds a comma, which Notion does not allow in option names"));
    }
    if utf16_len(name) > 100 {
        return Err(format!("property `{property}`: select option names are at most 100 characters; this one is {}", utf16_len(name)));
    }
    Ok(json!({ "name": name }))
}

/// One value as the property value object of a property of type `kind`, or why it cannot be
/// one (a per-row rejection naming the property and type). NULL empties the property.
pub fn encode(value: &Value, kind: &PropType, property: &str) -> Result<J, String> {
    let mismatch = || {
        format!(
            "property `{property}` is a {} property; {} cannot be written to it",
            kind.name(),
            match value {
                Value::Text(t) => format!("the text \"{}\"", t.chars().take(60).collect::<String>()),
                other => format!("the value {}", other.to_text().chars().take(60).collect::<String>()),
            }
        )
    };
    let text = || match value {
        Value::Null => String::new(),
        other => other.to_text(),
    };
    let inner = match kind {
        PropType::Title | PropType::RichText => {
            let parts = rich_text(&text());
            if parts.len() > MAX_ARRAY {
                return Err(format!(
                    "property `{property}` holds {} characters: Notion takes at most {MAX_ARRAY} text objects of {MAX_TEXT} characters",
                    utf16_len(&text())
                ));
            }
            J::Array(parts)
        }
        _ if value.is_null() => match kind {
            PropType::Checkbox => J::Bool(false),
            PropType::MultiSelect | PropType::People => J::Array(Vec::new()),
            _ => J::Null,
        },
        PropType::Number => number(value).ok_or_else(mismatch)?,
        PropType::Checkbox => match value {
            Value::Bool(b) => J::Bool(*b),
            Value::Int(0) => J::Bool(false),
            Value::Int(1) => J::Bool(true),
            Value::Text(t) if t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false") => J::Bool(t.eq_ignore_ascii_case("true")),
            _ => return Err(mismatch()),
        },
        PropType::Select => match value {
            Value::Text(t) if t.trim().is_empty() => J::Null,
            Value::Text(_) | Value::Int(_) | Value::Decimal(_) | Value::Bool(_) | Value::Uuid(_) => option(text().trim(), property)?,
            _ => return Err(mismatch()),
        },
        PropType::MultiSelect => {
            let names = items(value).ok_or_else(mismatch)?;
            if names.len() > MAX_ARRAY {
                return Err(format!("property `{property}` holds {} options: Notion takes at most {MAX_ARRAY}", names.len()));
            }
            J::Array(names.iter().map(|n| option(n, property)).collect::<Result<_, _>>()?)
        }
        PropType::Date => match value {
            Value::Date(d) => json!({ "start": d.format("%Y-%m-%d").to_string() }),
            Value::Timestamp(t) => json!({ "start": t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true) }),
            Value::Text(t) if t.trim().is_empty() => J::Null,
            Value::Text(t) => {
                let t = t.trim();
                let ok = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").is_ok() || chrono::DateTime::parse_from_rfc3339(t).is_ok();
                if !ok {
                    return Err(format!("property `{property}` is a date property; \"{t}\" is not a date (YYYY-MM-DD or RFC 3339)"));
                }
                json!({ "start": t })
            }
            _ => return Err(mismatch()),
        },
        PropType::Email | PropType::Url | PropType::PhoneNumber => {
            if matches!(value, Value::Array(_) | Value::Json(_) | Value::Bytes(_)) {
                return Err(mismatch());
            }
            let t = text().trim().to_string();
            let max = if *kind == PropType::Url { MAX_URL } else { MAX_EMAIL };
            if utf16_len(&t) > max {
                return Err(format!(
                    "property `{property}`: a {} is at most {max} characters in Notion; this one is {}",
                    kind.name(),
                    utf16_len(&t)
                ));
            }
            if t.is_empty() {
                J::Null
            } else {
                J::String(t)
            }
        }
        PropType::People => {
            let ids = items(value).ok_or_else(mismatch)?;
            if ids.len() > MAX_ARRAY {
                return Err(format!("property `{property}` holds {} people: Notion takes at most {MAX_ARRAY}", ids.len()));
            }
            J::Array(ids.iter().map(|id| json!({ "object": "user", "id": id })).collect())
        }
        PropType::ReadOnly(_) | PropType::Unsupported(_) => return Err(mismatch()),
    };
    Ok(json!({ kind.name(): inner }))
}

/// The empty value of a property (`on_remove = "clear"`).
pub fn empty(kind: &PropType, property: &str) -> J {
    encode(&Value::Null, kind, property).unwrap_or(J::Null)
}

/// How a key compares, as the key property holds it: text as it is, numbers by their value
/// (`42`, `42.0` and `042` are the same number).
pub fn key_text(value: &Value, kind: &PropType) -> Option<String> {
    let text = match value {
        Value::Null => return None,
        other => other.to_text(),
    };
    let text = match kind {
        PropType::Number => number(value).map(|n| canonical_number(&n))?,
        _ => text,
    };
    (!text.trim().is_empty()).then_some(text)
}

fn canonical_number(n: &J) -> String {
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        Some(f) => format!("{f}"),
        None => n.to_string(),
    }
}

/// The key a page holds in its key property (a page object's `properties[name]`), compared as
/// [`key_text`] compares a row's.
pub fn page_key(property: &J, kind: &PropType) -> Option<String> {
    let text = match kind {
        PropType::Title | PropType::RichText => {
            let parts = property[kind.name()].as_array()?;
            parts.iter().map(|p| p["plain_text"].as_str().or(p["text"]["content"].as_str()).unwrap_or("")).collect::<String>()
        }
        PropType::Number => canonical_number(property["number"].as_number().map(|n| J::Number(n.clone())).as_ref()?),
        _ => return None,
    };
    (!text.trim().is_empty()).then_some(text)
}

/// The query filter that finds pages whose key property equals one of `keys`
/// (developers.notion.com/reference/post-database-query-filter: `or` holds filters of one level).
pub fn key_filter(property: &str, kind: &PropType, keys: &[String]) -> J {
    let one = |key: &String| match kind {
        PropType::Number => json!({ "property": property, "number": { "equals": key.parse::<f64>().map(J::from).unwrap_or(J::Null) } }),
        _ => json!({ "property": property, kind.name(): { "equals": key } }),
    };
    match keys {
        [only] => one(only),
        _ => json!({ "or": keys.iter().map(one).collect::<Vec<_>>() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rich_text_splits_at_2000_units_without_splitting_a_character() {
        assert_eq!(rich_text(""), Vec::<J>::new());
        let long = "a".repeat(4500);
        let parts = rich_text(&long);
        let lens: Vec<usize> = parts.iter().map(|p| p["text"]["content"].as_str().unwrap().len()).collect();
        assert_eq!(lens, vec![2000, 2000, 500]);
        // An emoji is two UTF-16 units: the first part stops before it would pass 2000.
        let text = format!("{}😀x", "a".repeat(1999));
        let parts = rich_text(&text);
        assert_eq!(parts[0]["text"]["content"].as_str().unwrap().len(), 1999);
        assert_eq!(parts[1]["text"]["content"], "😀x");
    }

    #[test]
    fn values_take_the_shape_of_their_property() {
        let e = |v: &Value, k: &PropType| encode(v, k, "P");
        assert_eq!(e(&Value::Int(5), &PropType::Number).unwrap(), json!({"number": 5}));
        assert_eq!(e(&Value::Decimal("12.5".into()), &PropType::Number).unwrap(), json!({"number": 12.5}));
        assert!(e(&Value::Text("abc".into()), &PropType::Number).unwrap_err().contains("property `P` is a number property"));
        assert_eq!(e(&Value::Null, &PropType::Checkbox).unwrap(), json!({"checkbox": false}));
        assert_eq!(e(&Value::Text("Pro".into()), &PropType::Select).unwrap(), json!({"select": {"name": "Pro"}}));
        assert!(e(&Value::Text("a,b".into()), &PropType::Select).unwrap_err().contains("comma"));
        assert_eq!(
            e(&Value::Array(vec![Value::Text("a".into()), Value::Text("b".into())]), &PropType::MultiSelect).unwrap(),
            json!({"multi_select": [{"name": "a"}, {"name": "b"}]})
        );
        let d = chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        assert_eq!(e(&Value::Date(d), &PropType::Date).unwrap(), json!({"date": {"start": "2024-03-01"}}));
        assert_eq!(e(&Value::Text("".into()), &PropType::Email).unwrap(), json!({"email": null}), "no empty strings");
        assert_eq!(e(&Value::Null, &PropType::Title).unwrap(), json!({"title": []}));
        assert!(e(&Value::Text("x".repeat(201)), &PropType::Email).is_err());
        assert!(e(&Value::Text("a".repeat(2000 * 100 + 1)), &PropType::RichText).unwrap_err().contains("at most 100 text objects"));
        let user = uuid::Uuid::parse_str("6794760a-1f15-45cd-9c65-0dfe42f5135a").unwrap();
        assert_eq!(
            e(&Value::Uuid(user), &PropType::People).unwrap(),
            json!({"people": [{"object": "user", "id": "6794760a-1f15-45cd-9c65-0dfe42f5135a"}]})
        );
    }

    #[test]
    fn keys_compare_as_the_property_holds_them() {
        assert_eq!(key_text(&Value::Decimal("42.0".into()), &PropType::Number), Some("42".into()));
        assert_eq!(page_key(&json!({"number": 42.0}), &PropType::Number), Some("42".into()));
        let title = json!({"title": [{"plain_text": "c1", "text": {"content": "c1"}}]});
        assert_eq!(page_key(&title, &PropType::Title), Some("c1".into()));
        assert_eq!(key_text(&Value::Text(" ".into()), &PropType::Title), None);
        let f = key_filter("K", &PropType::RichText, &["a".into(), "b".into()]);
        assert_eq!(f["or"][1], json!({"property": "K", "rich_text": {"equals": "b"}}));
    }
}
