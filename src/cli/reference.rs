//! The configuration reference, docs/configuration.md, written from the config types
//! themselves: their doc comments and their defaults, as schemars reads them. Nothing here
//! knows a setting by name; a new field shows up with its documentation, or the test that
//! compares this text with the committed file (and checks every field is documented) fails.
//! `scripts/config-reference` rewrites the file.

use serde_json::{Map, Value as J};

use crate::destinations::{self, KINDS};
use crate::project::{config::ProjectConfig, syncfile};

/// Where the reference is kept, relative to the repository.
pub const PATH: &str = "docs/configuration.md";

/// The order `sluice.toml`'s sections are told in; a section not named here comes last.
const SECTIONS: [&str; 8] = ["state", "sources", "streams", "destinations", "daemon", "delete_guard", "retry", "alerts"];

const PREAMBLE: &str = "# Configuration reference

<!-- Generated from the code by scripts/config-reference: edit the doc comments, not this file. -->

Every setting sluice reads, with its default, as the code states them. The README tells how the
pieces fit together; this page is the list.

- **Secrets** (marked *secret*) belong outside the file: `${VAR}` reads an environment variable,
  and `KEY_file = \"path\"` (e.g. `token_file`) reads the file, relative to the project (systemd
  credentials, docker secrets). Errors and logs never show them.
- `${VAR}` works in every string of `sluice.toml`; `$${` is a literal `${`. Environment variables
  `SLUICE__SECTION__KEY` override the file (`SLUICE__DAEMON__LISTEN=0.0.0.0:9187`).
- **Durations** are strings: `\"500ms\"`, `\"30s\"`, `\"15m\"`, `\"6h\"`, `\"90d\"`.
- An unknown key is an error that names the file, the line and the nearest known key.
";

/// The whole reference, as committed in [`PATH`].
pub fn markdown() -> String {
    let mut out = String::from(PREAMBLE);
    out.push_str("\n## `sluice.toml`\n");
    let root = schemars::schema_for!(ProjectConfig);
    let root = root.as_value();
    let properties = root["properties"].as_object().cloned().unwrap_or_default();
    let mut names: Vec<&String> = properties.keys().collect();
    names.sort_by_key(|n| SECTIONS.iter().position(|s| s == n).unwrap_or(SECTIONS.len()));
    for name in names {
        let field = &properties[name];
        let scalar = strip_null(field).get("type").and_then(J::as_str).is_some_and(|t| t != "object");
        match name.as_str() {
            "destinations" => destinations_section(&mut out, field),
            // A key of its own at the top of the file, not a table.
            _ if scalar => {
                out.push_str(&format!("\n### `{name}` (top level, {})\n\n{}\n", kind_of(field, root), paragraph(description(field))))
            }
            _ => section(&mut out, name, field, root),
        }
    }
    out.push_str("\n## Sync file header\n\n");
    out.push_str("The TOML between `/* sluice` and the first line holding only `*/` in a `syncs/**/*.sql` file.\n");
    let header = syncfile::header_schema();
    let header = header.as_value();
    fields(&mut out, header, header);
    out
}

/// One `[name]` section (or `[name.NAME]` for a table of named entries) of sluice.toml.
fn section(out: &mut String, name: &str, field: &J, root: &J) {
    let field = strip_null(field);
    // A table of named entries (`[sources.NAME]`): its values' schema, one per `kind`.
    if let Some(entry) = field.get("additionalProperties").filter(|a| a.is_object()) {
        out.push_str(&format!("\n### `[{name}.NAME]`\n\n{}\n", paragraph(description(&field))));
        let entry = resolve(entry, root);
        // Entries of one shape (`[streams.NAME]`) have their fields; others one part per kind.
        if entry.get("oneOf").is_none() {
            fields(out, entry, root);
        }
        for variant in entry.get("oneOf").and_then(J::as_array).into_iter().flatten() {
            let kind = variant["properties"]["kind"]["const"].as_str().unwrap_or("?");
            out.push_str(&format!("\n#### `kind = \"{kind}\"`\n\n{}\n", paragraph(description(variant))));
            fields(out, variant, root);
        }
        return;
    }
    let target = resolve(&field, root);
    let about = [description(&field), description(target)].into_iter().find(|d| !d.is_empty()).unwrap_or_default();
    out.push_str(&format!("\n### `[{name}]`\n\n{}\n", paragraph(about)));
    fields(out, target, root);
}

/// `[destinations.NAME]`: one part per built-in kind, its settings, request settings and the
/// `[target]` a sync writing to it takes.
fn destinations_section(out: &mut String, field: &J) {
    out.push_str(&format!("\n### `[destinations.NAME]`\n\n{}\n", paragraph(description(field))));
    for kind in KINDS {
        let Some(reference) = destinations::reference(kind) else { continue };
        let settings = reference.settings.as_value();
        out.push_str(&format!("\n#### `kind = \"{kind}\"`\n\n{}\n", paragraph(description(settings))));
        fields(out, settings, settings);
        let requests = reference.requests.as_value();
        if requests["properties"].as_object().is_some_and(|p| !p.is_empty()) {
            out.push_str("\nRequest settings, with this kind's defaults:\n");
            fields(out, requests, requests);
        }
        let target = reference.target.as_value();
        out.push_str(&format!("\nA sync's `[target]`: {}\n", paragraph(description(target))));
        fields(out, target, target);
    }
}

/// The fields of an object schema, required ones first, then by name.
fn fields(out: &mut String, object: &J, root: &J) {
    let Some(properties) = object.get("properties").and_then(J::as_object) else {
        if object.get("additionalProperties") == Some(&J::Bool(false)) {
            out.push_str("\nNo settings.\n");
        }
        return;
    };
    let required: Vec<&str> = object.get("required").and_then(J::as_array).into_iter().flatten().filter_map(J::as_str).collect();
    let mut names: Vec<&String> = properties.keys().filter(|k| *k != "kind").collect();
    names.sort_by_key(|n| (!required.contains(&n.as_str()), n.to_string()));
    if names.is_empty() {
        return;
    }
    out.push('\n');
    for name in names {
        let field = &properties[name];
        let mut facts = vec![kind_of(field, root)];
        if let Some(default) = field.get("default").filter(|d| !d.is_null()) {
            facts.push(format!("default {}", literal(default)));
        }
        if required.contains(&name.as_str()) {
            facts.push("required".into());
        }
        out.push_str(&format!("- `{name}` ({}): {}\n", facts.join("; "), paragraph(description(field))));
        for (value, about) in choices(field, root) {
            out.push_str(&format!("  - `{value}`{}\n", if about.is_empty() { String::new() } else { format!(": {about}") }));
        }
    }
}

/// What a field holds, in words: "string, secret", "duration", "list of strings", "one of ...".
fn kind_of(field: &J, root: &J) -> String {
    let field = strip_null(field);
    if field.get("x-secret") == Some(&J::Bool(true)) {
        return "string, *secret*".into();
    }
    if field.get("x-duration") == Some(&J::Bool(true)) {
        return "duration".into();
    }
    if let Some(r) = field.get("$ref") {
        let target = resolve(&serde_json::json!({ "$ref": r }), root).clone();
        return match choices(&target, root).is_empty() {
            true => kind_of(&target, root),
            false => "one of the values below".into(),
        };
    }
    if let Some(options) = field.get("anyOf").or(field.get("oneOf")).and_then(J::as_array) {
        if !choices(&field, root).is_empty() {
            return "one of the values below".into();
        }
        let kinds: Vec<String> = options.iter().map(|o| kind_of(o, root)).collect();
        return kinds.join(" or ");
    }
    match field.get("type").and_then(J::as_str) {
        Some("array") => format!("list of {}", plural(&kind_of(field.get("items").unwrap_or(&J::Null), root))),
        Some("object") => match field.get("additionalProperties").filter(|a| a.is_object()) {
            Some(values) => format!("table of {}", plural(&kind_of(values, root))),
            None => "table".into(),
        },
        Some(t) => t.into(),
        None if field.get("enum").is_some() => "one of the values below".into(),
        None => "any value".into(),
    }
}

fn plural(kind: &str) -> String {
    match kind {
        "string" | "integer" | "number" | "boolean" => format!("{kind}s"),
        "string, *secret*" => "strings, *secret*".into(),
        "any value" => "values".into(),
        other => other.into(),
    }
}

/// The values a field (or the list items of a field) may take, each with its doc comment:
/// enums and their variants.
fn choices(field: &J, root: &J) -> Vec<(String, String)> {
    let field = strip_null(field);
    let field = match field.get("items") {
        Some(items) => resolve(items, root).clone(),
        None => resolve(&field, root).clone(),
    };
    if let Some(values) = field.get("enum").and_then(J::as_array) {
        return values.iter().filter_map(J::as_str).map(|v| (v.to_string(), String::new())).collect();
    }
    let options = field.get("oneOf").or(field.get("anyOf")).and_then(J::as_array).cloned().unwrap_or_default();
    let mut out = Vec::new();
    for option in &options {
        let option = resolve(option, root);
        if option.get("type") == Some(&J::String("null".into())) {
            continue;
        }
        match option.get("const").and_then(J::as_str) {
            Some(value) => out.push((value.to_string(), paragraph(description(option)))),
            None => match option.get("enum").and_then(J::as_array) {
                Some(values) => out.extend(values.iter().filter_map(J::as_str).map(|v| (v.to_string(), paragraph(description(option))))),
                None => return Vec::new(),
            },
        }
    }
    out
}

/// An `Option`'s schema without its `null`: `{"type": ["string", "null"]}` is a string that may
/// be left out, `{"anyOf": [X, {"type": "null"}]}` is X (keeping the field's own description).
fn strip_null(field: &J) -> J {
    let mut field = field.clone();
    if let Some(Some(types)) = field.get("type").map(J::as_array) {
        let kept: Vec<J> = types.iter().filter(|t| t.as_str() != Some("null")).cloned().collect();
        field["type"] = if kept.len() == 1 { kept[0].clone() } else { J::Array(kept) };
    }
    if let Some(options) = field.get("anyOf").and_then(J::as_array) {
        let kept: Vec<J> = options.iter().filter(|o| o.get("type").and_then(J::as_str) != Some("null")).cloned().collect();
        if kept.len() == 1 {
            let mut inner: Map<String, J> = kept[0].as_object().cloned().unwrap_or_default();
            for key in ["description", "default", "title"] {
                if let Some(v) = field.get(key) {
                    inner.insert(key.into(), v.clone());
                }
            }
            if let Some(o) = field.as_object_mut() {
                o.remove("anyOf");
                o.extend(inner);
            }
        }
    }
    field
}

/// The schema a `$ref` points at (in the root's `$defs`), or the schema itself.
fn resolve<'a>(schema: &'a J, root: &'a J) -> &'a J {
    match schema.get("$ref").and_then(J::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
        Some(name) => root.get("$defs").and_then(|d| d.get(name)).unwrap_or(schema),
        None => schema,
    }
}

fn description(schema: &J) -> String {
    schema.get("description").and_then(J::as_str).unwrap_or_default().to_string()
}

/// A doc comment as one markdown paragraph: schemars keeps the comment's line breaks.
fn paragraph(text: impl AsRef<str>) -> String {
    text.as_ref().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A default as it is written in TOML.
fn literal(value: &J) -> String {
    let text = toml::Value::try_from(value).map(|v| v.to_string()).unwrap_or_else(|_| value.to_string());
    format!("`{text}`")
}

/// The fields the reference would list without a doc comment (`undocumented`), or that may be
/// left out yet show no default (`undefaulted`: a default whose type cannot be written out, so
/// the reader would not learn it), each as `where.key`. Both must be empty.
pub fn gaps() -> (Vec<String>, Vec<String>) {
    let (mut undocumented, mut undefaulted) = (Vec::new(), Vec::new());
    let mut visit = |what: &str, object: &J, root: &J| {
        let required: Vec<&J> = object.get("required").and_then(J::as_array).into_iter().flatten().collect();
        for (name, field) in object.get("properties").and_then(J::as_object).into_iter().flatten() {
            if name == "kind" {
                continue;
            }
            if description(field).is_empty() && description(resolve(field, root)).is_empty() {
                undocumented.push(format!("{what}.{name}"));
            }
            // A value (not a table, whose default is empty) that may be left out: it has a default
            // or is an `Option` (left out: not set).
            let optional = strip_null(field) != *field;
            let value = matches!(
                resolve(&strip_null(field), root).get("type").and_then(J::as_str),
                Some("string" | "integer" | "number" | "boolean" | "array")
            ) || !choices(field, root).is_empty();
            if value && !optional && !required.contains(&&J::String(name.clone())) && field.get("default").is_none() {
                undefaulted.push(format!("{what}.{name}"));
            }
        }
    };
    let root = schemars::schema_for!(ProjectConfig);
    let root = root.as_value();
    visit("sluice.toml", root, root);
    for (name, def) in root.get("$defs").and_then(J::as_object).into_iter().flatten() {
        visit(name, def, root);
        for variant in def.get("oneOf").and_then(J::as_array).into_iter().flatten() {
            visit(name, variant, root);
        }
    }
    let header = syncfile::header_schema();
    visit("sync header", header.as_value(), header.as_value());
    for kind in KINDS {
        if let Some(r) = destinations::reference(kind) {
            for (part, schema) in [("", &r.settings), (" requests", &r.requests), (" [target]", &r.target)] {
                visit(&format!("{kind}{part}"), schema.as_value(), schema.as_value());
            }
        }
    }
    (undocumented, undefaulted)
}
