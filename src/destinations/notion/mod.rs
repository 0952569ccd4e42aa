//! `notion`: one page per row in a Notion database. See docs/destinations.md.
//!
//! Pages are matched by the sync's `key_property`, which sluice fills from the primary key;
//! Notion's page id is stored as the row's record id, so later updates and archives go to the
//! page directly. Notion has no batch write: every row is one request, paced to the
//! integration's rate limit (`client`), with a few batches side by side (`Writer::fork`).
//!
//! How pages are found (the documented rule, see `writer`): when a run opens, the database's
//! keys are read in queries of 100 pages, up to `scan_limit` requests. A database that fits is
//! known whole: writes need no lookups, and a page archived by hand is written again
//! (`Writer::holds`). A larger database is searched per batch, one query with an `or` filter of
//! the batch's keys (rows with a stored page id need none). A scan costs one request per 100
//! pages, once; lookups cost one request per batch: the scan pays when the database is small
//! next to the run, which `scan_limit` bounds.

mod client;
mod config;
mod encoding;
mod writer;

pub use config::NotionConfig;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value as J;

use self::client::{About, NotionClient};
use self::config::NotionTarget;
use self::encoding::PropType;
use self::writer::NotionWriter;
use crate::destinations::{parse_settings, Capabilities, Destination, DestinationError, Target, Writer};
use crate::project::did_you_mean;
use crate::value::ValueType;

pub struct NotionDestination {
    config: NotionConfig,
    /// One per destination: every sync writing with this token shares its pace.
    client: Arc<NotionClient>,
}

impl NotionDestination {
    pub fn from_settings(name: &str, settings: &toml::Table) -> Result<Self, String> {
        let (mut config, requests) = crate::destinations::requests::parse::<NotionConfig>(settings, &config::REQUESTS)?;
        config.requests = requests;
        let client = NotionClient::new(name, &config)?;
        Ok(NotionDestination { config, client: Arc::new(client) })
    }
}

/// What a run knows of its database: each field's property type and where the key goes.
#[derive(Clone, Debug)]
pub struct Plan {
    pub database_id: String,
    pub key_property: String,
    pub key_type: PropType,
    /// The property id of the key property (to read only it when scanning).
    pub key_id: String,
    /// Per field of `Target::fields`: its property type.
    pub types: Vec<PropType>,
}

/// A database id as Notion's URLs give it (32 hexadecimal digits, dashes optional), in the
/// dashed form Notion's API answers with.
fn database_id(raw: &str) -> Option<String> {
    let hex: String = raw.trim().chars().filter(|c| *c != '-').collect::<String>().to_lowercase();
    (hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]))
}

/// Checks the sync's `[target]` and mapping against the database's properties
/// (`GET /v1/databases/{id}`): every field exists and can be written, the key property holds
/// keys, and the sync has one key column to fill it.
pub async fn plan(client: &NotionClient, target: &Target) -> Result<Plan, DestinationError> {
    let sync = &target.sync;
    let settings: NotionTarget = parse_settings(&target.settings)
        .map_err(|e| DestinationError::fatal(format!("sync `{sync}`: [target]: {e} (it takes `database_id` and `key_property`)")))?;
    let Some(id) = database_id(&settings.database_id) else {
        return Err(DestinationError::fatal(format!(
            "sync `{sync}`: [target] database_id = \"{}\" is not a database id: the 32 hexadecimal digits in the database's URL",
            settings.database_id
        )));
    };
    if target.key_columns.len() != 1 {
        return Err(DestinationError::fatal(format!(
            "sync `{sync}`: Notion pages are matched by one property, and the primary key has {} columns ({}): key the sync on one \
             column (concatenate them in the model)",
            target.key_columns.len(),
            target.key_columns.join(", ")
        )));
    }
    let (_, body) = client.call(Method::GET, &format!("databases/{id}"), None, About::Database).await.map_err(DestinationError::from)?;
    if !body["properties"].is_object() && body["data_sources"].is_array() {
        return Err(DestinationError::fatal(format!(
            "sync `{sync}`: from Notion-Version 2025-09-03 on, a database's properties belong to its data sources, which sluice \
             does not query: set `notion_version` = \"2022-06-28\" in the destination"
        )));
    }
    let properties: HashMap<&str, &J> = body["properties"].as_object().into_iter().flatten().map(|(name, p)| (name.as_str(), p)).collect();
    let kind_of = |p: &J| PropType::from_api(p["type"].as_str().unwrap_or(""));
    let missing = |name: &str, what: &str| {
        let hint = did_you_mean(name, properties.keys().copied()).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
        DestinationError::fatal(format!(
            "sync `{sync}`: {what} `{name}` is not a property of the database{hint}: fix the name (Notion's are case-sensitive), or \
             add the property in Notion"
        ))
    };
    let key = *properties.get(settings.key_property.as_str()).ok_or_else(|| missing(&settings.key_property, "key_property"))?;
    let key_type = kind_of(key);
    if !key_type.holds_keys() {
        return Err(DestinationError::fatal(format!(
            "sync `{sync}`: key_property `{}` is a {} property: the key lives in a title, rich_text or number property",
            settings.key_property,
            key_type.name()
        )));
    }
    // A number property holds numbers only: a text key would be refused on every row.
    if key_type == PropType::Number
        && !matches!(
            target.key_types.first(),
            Some(ValueType::Int | ValueType::Float | ValueType::Decimal { .. } | ValueType::Unknown) | None
        )
    {
        return Err(DestinationError::fatal(format!(
            "sync `{sync}`: key_property `{}` is a number property, but the key `{}` is {}: key the pages by a title or rich_text \
             property, or make the key a number in the model",
            settings.key_property,
            target.key_columns[0],
            target.key_types.first().map(ValueType::name).unwrap_or_default()
        )));
    }
    let mut types = Vec::with_capacity(target.fields.len());
    for (j, field) in target.fields.iter().enumerate() {
        let p = *properties.get(field.as_str()).ok_or_else(|| missing(field, "field"))?;
        let kind = kind_of(p);
        match &kind {
            PropType::ReadOnly(k) => {
                return Err(DestinationError::fatal(format!(
                    "sync `{sync}`: field `{field}` is a {k} property, which Notion computes: remove it from the mapping"
                )))
            }
            PropType::Unsupported(k) => {
                return Err(DestinationError::fatal(format!(
                    "sync `{sync}`: field `{field}` is a {k} property, which sluice does not write: remove it from the mapping"
                )))
            }
            _ => {}
        }
        if *field == settings.key_property && target.key_fields[0] != Some(j) {
            return Err(DestinationError::fatal(format!(
                "sync `{sync}`: field `{field}` is the key_property, which sluice fills from the primary key `{}`: map no other \
                 column to it",
                target.key_columns[0]
            )));
        }
        types.push(kind);
    }
    Ok(Plan {
        database_id: id,
        key_property: settings.key_property,
        key_type,
        key_id: key["id"].as_str().unwrap_or_default().to_string(),
        types,
    })
}

#[async_trait]
impl Destination for NotionDestination {
    /// The API the pages are written through (the database is the sync's `[target]`, which
    /// the engine fingerprints already).
    async fn identity(&self) -> Result<String, DestinationError> {
        // `https://api.notion.com` and `https://api.notion.com/` are one place.
        Ok(self.config.base_url.trim_end_matches('/').to_string())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_in_flight: self.config.requests.max_in_flight,
            rate_limit: Some(self.client.rate_limit()),
            ..self.config.requests.capabilities()
        }
    }

    /// The token works, the database is shared with the integration and the mapping fits its
    /// properties. Reads only.
    async fn check(&self, target: &Target) -> Result<(), DestinationError> {
        plan(&self.client, target).await.map(drop)
    }

    async fn open(&self, target: &Target) -> Result<Box<dyn Writer>, DestinationError> {
        let plan = plan(&self.client, target).await?;
        Ok(Box::new(NotionWriter::open(self.client.clone(), target.clone(), plan, self.config.scan_limit).await?))
    }
}

/// This kind's settings and `[target]`, for the configuration reference.
pub fn reference() -> super::Reference {
    super::Reference::new::<config::NotionConfig, config::NotionTarget>(&config::REQUESTS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_ids_with_or_without_dashes() {
        let dashed = Some("897e5a76-ae52-4b48-9fdf-e71f5945d1af");
        assert_eq!(super::database_id("897e5a76-ae52-4b48-9fdf-e71f5945d1af").as_deref(), dashed);
        assert_eq!(super::database_id(" 897E5A76AE524B489FDFE71F5945D1AF ").as_deref(), dashed);
        assert_eq!(super::database_id("not-an-id"), None);
    }
}
