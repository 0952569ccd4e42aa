//! What config types say about themselves for the generated configuration reference
//! (`cli::reference`, docs/configuration.md): stand-in types for `#[schemars(with = ...)]`
//! where a field's Rust type is not what the file holds.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

/// A credential: a string, marked so the reference says how to keep it out of the file.
pub struct Secret;

impl JsonSchema for Secret {
    fn schema_name() -> Cow<'static, str> {
        "Secret".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "x-secret": true })
    }
}

/// A duration written as a string ("30s", "15m", "6h", "90d"; `duration_setting`).
pub struct DurationText;

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "x-duration": true })
    }
}

/// A table whose keys the field's own documentation describes.
pub type AnyTable = std::collections::BTreeMap<String, serde_json::Value>;
