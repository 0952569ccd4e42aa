//! `hubspot`: CRM v3 batch APIs. See docs/destinations.md.
//!
//! Records are matched by the sync's `id_property` (e.g. `email`); HubSpot's record id comes back
//! in the results and is stored, so mirror removals archive by id. `client` decides *whether* a
//! failed request is worth retrying; the engine decides *how*.

mod client;
mod config;
mod encoding;
mod writer;

pub use config::HubSpotConfig;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value as J;

use self::client::HubSpotClient;
use self::config::{HubSpotTarget, MAX_BATCH};
use self::encoding::PropertyType;
use self::writer::HubSpotWriter;
use crate::destinations::{parse_settings, Capabilities, Destination, DestinationError, Target, Writer};
use crate::project::did_you_mean;

pub struct HubSpotDestination {
    config: HubSpotConfig,
    /// One per destination: every sync writing to this account shares its rate limit.
    client: Arc<HubSpotClient>,
}

impl HubSpotDestination {
    pub fn from_settings(name: &str, settings: &toml::Table) -> Result<Self, String> {
        let (mut config, requests) = crate::destinations::requests::parse::<HubSpotConfig>(settings, &config::REQUESTS)?;
        config.requests = requests;
        let client = HubSpotClient::new(name, &config)?;
        Ok(HubSpotDestination { config, client: Arc::new(client) })
    }
}

/// What a run needs to know of its object: where the id property is, and each field's type.
#[derive(Clone)]
pub struct Plan {
    pub object: String,
    pub id_property: String,
    /// Index in `Target::fields` of the id property.
    pub id_field: usize,
    /// Index of the key column that carries the id property, if one does (deletes use it).
    pub key_id: Option<usize>,
    pub types: Vec<PropertyType>,
    /// HubSpot takes no partial upserts with email as the `idProperty` (its contacts guide):
    /// every input of a batch then carries every mapped property, a kept value (a skipped NULL,
    /// an `if_empty` field that holds one) as HubSpot holds it.
    pub whole_sets: bool,
}

impl Plan {
    /// How the id property's values compare.
    pub fn id_kind(&self) -> PropertyType {
        self.types[self.id_field]
    }
}

/// Checks the sync's `[target]` and mapping against the object's properties
/// (`GET /crm/v3/properties/{object}`): every field exists and is writable, and the id property is
/// mapped and unique.
pub async fn plan(client: &HubSpotClient, target: &Target) -> Result<Plan, DestinationError> {
    let sync = &target.sync;
    let settings: HubSpotTarget = parse_settings(&target.settings)
        .map_err(|e| DestinationError::fatal(format!("sync `{sync}`: [target]: {e} (it takes `object` and `id_property`)")))?;
    let object = settings.object.trim().to_string();
    if object.is_empty() || !object.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(DestinationError::fatal(format!(
            "sync `{sync}`: [target] object = \"{object}\" is not an object type (e.g. contacts, companies, deals, 2-123456)"
        )));
    }
    let Some(id_field) = target.fields.iter().position(|f| *f == settings.id_property) else {
        return Err(DestinationError::fatal(format!(
            "sync `{sync}`: [target] id_property = \"{}\" is not one of the mapped fields ({}): map a column to it",
            settings.id_property,
            target.fields.join(", ")
        )));
    };
    let (_, body) = client.call(Method::GET, &format!("properties/{object}"), None).await.map_err(DestinationError::from)?;
    let properties: HashMap<&str, &J> =
        body["results"].as_array().into_iter().flatten().filter_map(|p| Some((p["name"].as_str()?, p))).collect();
    let mut types = Vec::with_capacity(target.fields.len());
    for field in &target.fields {
        let Some(p) = properties.get(field.as_str()) else {
            let hint = did_you_mean(field, properties.keys().copied()).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
            return Err(DestinationError::fatal(format!(
                "sync `{sync}`: field `{field}` is not a property of {object}{hint}: fix the mapping, or create the property in HubSpot"
            )));
        };
        if p["modificationMetadata"]["readOnlyValue"].as_bool() == Some(true) {
            return Err(DestinationError::fatal(format!(
                "sync `{sync}`: field `{field}` is a read-only property of {object}: remove it from the mapping"
            )));
        }
        types.push(PropertyType::from_api(p["type"].as_str().unwrap_or(""), p["fieldType"].as_str().unwrap_or("")));
    }
    // Contacts are matched by email although HubSpot does not flag it as unique.
    let contact_email = object == "contacts" && settings.id_property == "email";
    let unique =
        contact_email || properties.get(settings.id_property.as_str()).is_some_and(|p| p["hasUniqueValue"].as_bool() == Some(true));
    if !unique {
        return Err(DestinationError::fatal(format!(
            "sync `{sync}`: id_property `{}` does not have unique values in {object}: use a unique property (email for contacts, \
             domain for companies, or a custom property with unique values)",
            settings.id_property
        )));
    }
    let key_id = target.key_fields.iter().position(|f| *f == Some(id_field));
    let whole_sets = settings.id_property == "email";
    Ok(Plan { object, id_property: settings.id_property, id_field, key_id, types, whole_sets })
}

#[async_trait]
impl Destination for HubSpotDestination {
    /// The HubSpot account (portal) the token belongs to, asked of HubSpot once: a token of
    /// another portal writes to another CRM, and a rotated token of the same one changes nothing.
    async fn identity(&self) -> Result<String, DestinationError> {
        let portal = self.client.portal().await?;
        Ok(format!("{} {}", self.config.base_url, portal.unwrap_or_default()))
    }

    fn capabilities(&self) -> Capabilities {
        // `if_empty`: current values are read with batch/read before writing.
        Capabilities {
            if_empty: true,
            max_in_flight: self.config.requests.max_in_flight,
            rate_limit: Some(self.client.rate_limit()),
            ..Capabilities::every_mode(
                self.config.requests.max_batch_rows.min(MAX_BATCH),
                self.config.requests.max_attempts,
                self.config.requests.retry_initial_delay,
            )
        }
    }

    /// The token works and the mapping fits the object's properties. Reads only.
    async fn check(&self, target: &Target) -> Result<(), DestinationError> {
        plan(&self.client, target).await.map(drop)
    }

    async fn open(&self, target: &Target) -> Result<Box<dyn Writer>, DestinationError> {
        let plan = plan(&self.client, target).await?;
        Ok(Box::new(HubSpotWriter::new(self.client.clone(), target.clone(), plan)))
    }
}

/// This kind's settings and `[target]`, for the configuration reference.
pub fn reference() -> super::Reference {
    super::Reference::new::<config::HubSpotConfig, config::HubSpotTarget>(&config::REQUESTS)
}
