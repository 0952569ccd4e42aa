use std::time::Duration;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use crate::destinations::duration_setting;
use crate::destinations::requests::{Defaults, Requests};

/// This destination's defaults for the request settings every destination takes.
pub const REQUESTS: Defaults = Defaults {
    max_batch_rows: Some(10),
    timeout: Some(Duration::from_secs(30)),
    max_attempts: Some(5),
    retry_initial_delay: Some(Duration::from_secs(1)),
    max_in_flight: None,
};

/// A Slack incoming webhook: one message per row (or a digest per run), from templates over
/// the row's fields, paced to the webhook's rate.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming webhook's URL (`https://hooks.slack.com/services/...`): the URL is the
    /// credential. Errors show only its host.
    #[schemars(with = "crate::project::schema::Secret")]
    pub webhook_url: SecretString,
    /// Least time between two messages to this webhook. Slack allows about one per second.
    #[serde(default = "default_interval", with = "duration_setting")]
    #[schemars(with = "crate::project::schema::DurationText")]
    pub min_interval: Duration,
    /// the request settings (`destinations::requests`,
    /// with [`REQUESTS`] as defaults).
    #[serde(skip)]
    pub requests: Requests,
}

/// The message each row (or each run, as a digest) becomes: `text`, `blocks` or both.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackTarget {
    /// The message text: a template over the row's fields (`"{{ name }} churn risk {{ score }}"`).
    /// With `blocks`, the notification fallback.
    pub text: Option<String>,
    /// Block Kit blocks: a TOML array of tables or a JSON string; every string in it is a
    /// template.
    #[schemars(with = "Option<serde_json::Value>")]
    pub blocks: Option<toml::Value>,
    /// One message per run with the counts and the first `digest_rows` rows, instead of one per row.
    #[serde(default)]
    pub digest: bool,
    /// The rows a digest lists (the counts cover all).
    #[serde(default = "default_digest_rows")]
    pub digest_rows: usize,
}

fn default_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_digest_rows() -> usize {
    10
}
