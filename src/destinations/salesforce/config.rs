use std::time::Duration;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use crate::destinations::duration_setting;
use crate::destinations::requests::{Defaults, Requests};

/// Records per sObject Collections request (Salesforce's maximum).
pub const MAX_COLLECTION: usize = 200;

/// This destination's defaults for the request settings every destination takes.
pub const REQUESTS: Defaults = Defaults {
    max_batch_rows: None,
    timeout: Some(Duration::from_secs(60)),
    max_attempts: Some(6),
    retry_initial_delay: Some(Duration::from_secs(1)),
    max_in_flight: Some(8),
};

/// Salesforce sObjects, upserted by an External ID field: sObject Collections for small runs,
/// Bulk API 2.0 jobs for large ones. Logs in with the OAuth 2.0 JWT bearer flow.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SalesforceConfig {
    /// `https://login.salesforce.com`, `https://test.salesforce.com` (sandboxes) or My Domain.
    pub login_url: String,
    /// The JWT's audience: `https://login.salesforce.com` (production) or
    /// `https://test.salesforce.com` (sandbox), whatever `login_url` is; an Experience Cloud site
    /// uses its own URL. Left out: from `login_url`'s host (`test.salesforce.com` and
    /// `*.sandbox.my.salesforce.com` are sandboxes).
    pub audience: Option<String>,
    /// The connected app's consumer key.
    pub client_id: String,
    /// The user the integration acts as (pre-authorized for the connected app).
    pub username: String,
    /// The PEM private key whose certificate is uploaded to the connected app
    /// (`private_key_file = "/etc/sluice/sf.pem"`).
    #[schemars(with = "crate::project::schema::Secret")]
    pub private_key: SecretString,
    /// The REST API version.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Runs sending more rows than this use Bulk API 2.0 jobs instead of sObject Collections.
    #[serde(default = "default_bulk_threshold")]
    pub bulk_threshold: u64,
    /// Rows per Bulk API job.
    #[serde(default = "default_bulk_batch_rows")]
    pub bulk_batch_rows: usize,
    /// How often a Bulk job's state is polled.
    #[serde(default = "default_poll", with = "duration_setting")]
    #[schemars(with = "crate::project::schema::DurationText")]
    pub bulk_poll_interval: Duration,
    /// How long a Bulk job may take before the batch is given up (and retried next run).
    #[serde(default = "default_bulk_timeout", with = "duration_setting")]
    #[schemars(with = "crate::project::schema::DurationText")]
    pub bulk_timeout: Duration,
    /// the request settings (`destinations::requests`,
    /// with [`REQUESTS`] as defaults).
    #[serde(skip)]
    pub requests: Requests,
}

/// Which sObject this sync writes, and how its records are matched.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SalesforceTarget {
    /// The sObject API name: `Contact`, `Account`, `My_Object__c`.
    pub object: String,
    /// An External ID field the mapping fills: how records are matched.
    pub external_id: String,
}

fn default_api_version() -> String {
    "62.0".into()
}
fn default_bulk_threshold() -> u64 {
    10_000
}
fn default_bulk_batch_rows() -> usize {
    50_000
}
fn default_poll() -> Duration {
    Duration::from_secs(2)
}
fn default_bulk_timeout() -> Duration {
    Duration::from_secs(30 * 60)
}
