//! `salesforce`: sObject Collections for ordinary runs, Bulk API 2.0 for large ones. See
//! docs/destinations.md.
//!
//! Records are matched by the sync's External ID field; the Salesforce id that comes back is
//! stored, so mirror removals delete by id. `client` decides *whether* a failure is worth
//! retrying; the engine decides *how*.

mod auth;
mod bulk;
mod client;
mod config;
mod encoding;
mod writer;

pub use config::SalesforceConfig;

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value as J;

use self::auth::Auth;
use self::client::SfClient;
use self::config::{SalesforceTarget, MAX_COLLECTION};
use self::writer::{BulkSettings, SalesforceWriter};
use crate::destinations::{parse_settings, Capabilities, Destination, DestinationError, Target, Writer};
use crate::project::did_you_mean;

pub struct SalesforceDestination {
    config: SalesforceConfig,
    /// One session per destination, shared by every sync writing to the org.
    client: Arc<SfClient>,
}

impl SalesforceDestination {
    pub fn from_settings(name: &str, settings: &toml::Table) -> Result<Self, String> {
        let (mut config, requests) = crate::destinations::requests::parse::<SalesforceConfig>(settings, &config::REQUESTS)?;
        config.requests = requests;
        let auth =
            Auth::new(name, &config.login_url, config.audience.as_deref(), &config.client_id, &config.username, &config.private_key)?;
        let client = SfClient::new(name, auth, &config.api_version, config.requests.timeout)?;
        Ok(SalesforceDestination { config, client: Arc::new(client) })
    }
}

/// What a run needs to know of its object.
#[derive(Clone)]
pub struct Plan {
    pub object: String,
    pub external_id: String,
    /// Index in `Target::fields` of the external id field.
    pub ext_field: usize,
    /// The key column that carries the external id, if one does (deletes use it).
    pub key_ext: Option<usize>,
    /// Per mapped field: whether it can be null (a clear leaves required fields and checkboxes).
    pub nillable: Vec<bool>,
    /// Per mapped field: its type from describe (`string`, `double`, `multipicklist`, ...).
    pub kinds: Vec<String>,
    /// Whether the external id compares case-sensitively (describe's `caseSensitive`).
    pub ext_case_sensitive: bool,
}

impl Plan {
    pub fn kinds(&self) -> Vec<&str> {
        self.kinds.iter().map(String::as_str).collect()
    }

    /// An external id value as Salesforce compares it (`encoding::compare_key`).
    pub fn ext_key(&self, text: &str) -> String {
        encoding::compare_key(text, &self.kinds[self.ext_field], self.ext_case_sensitive)
    }
}

/// Checks the `[target]` and mapping against `GET sobjects/{object}/describe`: the object and
/// every field exist, fields are writable, and `external_id` is an External ID field.
pub async fn plan(client: &SfClient, target: &Target) -> Result<Plan, DestinationError> {
    let sync = &target.sync;
    let settings: SalesforceTarget = parse_settings(&target.settings)
        .map_err(|e| DestinationError::fatal(format!("sync `{sync}`: [target]: {e} (it takes `object` and `external_id`)")))?;
    let object = settings.object.trim().to_string();
    if object.is_empty() || !object.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(DestinationError::fatal(format!(
            "sync `{sync}`: [target] object = \"{object}\" is not an sObject API name (e.g. Contact)"
        )));
    }
    let Some(ext_field) = target.fields.iter().position(|f| *f == settings.external_id) else {
        return Err(DestinationError::fatal(format!(
            "sync `{sync}`: [target] external_id = \"{}\" is not one of the mapped fields ({}): map a column to it",
            settings.external_id,
            target.fields.join(", ")
        )));
    };
    let (_, body) = client.call(Method::GET, &format!("sobjects/{object}/describe"), &[], None).await.map_err(DestinationError::from)?;
    let describe: J = serde_json::from_str(&body).map_err(|e| DestinationError::transient(format!("describe {object}: {e}")))?;
    let fields: Vec<&J> = describe["fields"].as_array().into_iter().flatten().collect();
    let names: Vec<&str> = fields.iter().filter_map(|f| f["name"].as_str()).collect();
    let mut nillable = Vec::with_capacity(target.fields.len());
    let mut kinds = Vec::with_capacity(target.fields.len());
    for name in &target.fields {
        let Some(f) = fields.iter().find(|f| f["name"].as_str() == Some(name)) else {
            let hint = did_you_mean(name, names.iter().copied()).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
            return Err(DestinationError::fatal(format!(
                "sync `{sync}`: field `{name}` is not a field of {object}{hint}: fix the mapping"
            )));
        };
        nillable.push(f["nillable"].as_bool().unwrap_or(true));
        kinds.push(f["type"].as_str().unwrap_or("string").to_string());
        if f["createable"].as_bool() != Some(true) && f["updateable"].as_bool() != Some(true) {
            return Err(DestinationError::fatal(format!(
                "sync `{sync}`: field `{name}` of {object} cannot be written: remove it from the mapping"
            )));
        }
    }
    let is_external_id =
        fields.iter().any(|f| f["name"].as_str() == Some(settings.external_id.as_str()) && f["externalId"].as_bool() == Some(true));
    if !is_external_id {
        return Err(DestinationError::fatal(format!(
            "sync `{sync}`: external_id `{}` is not an External ID field of {object}: mark it External ID (and Unique) in Setup, or use one that is",
            settings.external_id
        )));
    }
    let key_ext = target.key_fields.iter().position(|f| *f == Some(ext_field));
    let ext_case_sensitive = fields
        .iter()
        .find(|f| f["name"].as_str() == Some(settings.external_id.as_str()))
        .and_then(|f| f["caseSensitive"].as_bool())
        .unwrap_or(false);
    Ok(Plan { object, external_id: settings.external_id, ext_field, key_ext, nillable, kinds, ext_case_sensitive })
}

#[async_trait]
impl Destination for SalesforceDestination {
    /// The user the integration logs in as: Salesforce usernames are unique across every org,
    /// so another username is another org (or another user's view of one).
    async fn identity(&self) -> Result<String, DestinationError> {
        Ok(format!("{} {}", self.config.login_url, self.config.username))
    }

    fn capabilities(&self) -> Capabilities {
        // `if_empty`: current values are read with a SOQL query before writing.
        Capabilities {
            if_empty: true,
            max_in_flight: self.config.requests.max_in_flight,
            ..Capabilities::every_mode(MAX_COLLECTION, self.config.requests.max_attempts, self.config.requests.retry_initial_delay)
        }
    }

    /// A session can be obtained, the object and fields exist. Reads only.
    async fn check(&self, target: &Target) -> Result<(), DestinationError> {
        self.client.ensure_session().await?;
        plan(&self.client, target).await.map(drop)
    }

    async fn open(&self, target: &Target) -> Result<Box<dyn Writer>, DestinationError> {
        let plan = plan(&self.client, target).await?;
        let bulk = BulkSettings {
            threshold: self.config.bulk_threshold,
            batch_rows: self.config.bulk_batch_rows.max(1),
            poll: self.config.bulk_poll_interval,
            timeout: self.config.bulk_timeout,
        };
        Ok(Box::new(SalesforceWriter::new(self.client.clone(), target.clone(), plan, bulk)))
    }
}

/// This kind's settings and `[target]`, for the configuration reference.
pub fn reference() -> super::Reference {
    super::Reference::new::<config::SalesforceConfig, config::SalesforceTarget>(&config::REQUESTS)
}
