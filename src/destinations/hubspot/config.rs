use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::destinations::duration_setting;

pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com/";
/// HubSpot's limit on inputs per batch request.
pub const MAX_BATCH: usize = 100;

/// `[destinations.NAME]` with `kind = "hubspot"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSpotConfig {
    /// A private app's access token (`pat-...`).
    pub token: SecretString,
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The account's requests per rolling 10 seconds (100 on free/starter, 190 on pro/enterprise).
    #[serde(default = "default_rate_limit")]
    pub rate_limit_per_10s: u32,
    #[serde(default = "default_batch_rows")]
    pub max_batch_rows: usize,
    #[serde(default = "default_timeout", with = "duration_setting")]
    pub timeout: Duration,
    #[serde(default = "default_attempts")]
    pub max_attempts: usize,
    #[serde(default = "default_initial_delay", with = "duration_setting")]
    pub retry_initial_delay: Duration,
}

/// A sync's `[target]`.
#[derive(Debug, Deserialize)]
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
fn default_batch_rows() -> usize {
    MAX_BATCH
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_attempts() -> usize {
    8
}
fn default_initial_delay() -> Duration {
    Duration::from_secs(1)
}
