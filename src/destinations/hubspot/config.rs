use std::time::Duration;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use crate::destinations::requests::{Defaults, Requests};

pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com/";
/// HubSpot's limit on inputs per batch request.
pub const MAX_BATCH: usize = 100;

/// This destination's defaults for the request settings every destination takes.
pub const REQUESTS: Defaults = Defaults {
    max_batch_rows: Some(MAX_BATCH),
    timeout: Some(Duration::from_secs(30)),
    max_attempts: Some(8),
    retry_initial_delay: Some(Duration::from_secs(1)),
    max_in_flight: Some(10),
};

/// HubSpot CRM objects (contacts, companies, deals, custom objects) through the CRM v3 batch
/// API, matched by a property with unique values.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HubSpotConfig {
    /// A private app's access token (`pat-...`).
    #[schemars(with = "crate::project::schema::Secret")]
    pub token: SecretString,
    /// HubSpot's API address (an emulator's in tests).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The account's requests per rolling 10 seconds (100 on free/starter, 190 on pro/enterprise).
    #[serde(default = "default_rate_limit")]
    pub rate_limit_per_10s: u32,
    /// the request settings (`destinations::requests`,
    /// with [`REQUESTS`] as defaults).
    #[serde(skip)]
    pub requests: Requests,
}

/// Which object this sync writes, and how its records are matched.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HubSpotTarget {
    /// `contacts`, `companies`, `deals`, ... or a custom object's type id.
    pub object: String,
    /// A property with unique values (`email` for contacts) that the mapping fills: how records
    /// are matched.
    pub id_property: String,
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.into()
}
fn default_rate_limit() -> u32 {
    100
}
