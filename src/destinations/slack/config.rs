use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::destinations::duration_setting;

/// `[destinations.NAME]` with `kind = "slack"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Secret: the URL is the credential. Errors show only its host.
    pub webhook_url: SecretString,
    /// Least time between two messages to this webhook. Slack allows about one per second.
    #[serde(default = "default_interval", with = "duration_setting")]
    pub min_interval: Duration,
    /// Rows per batch when each row is a message: the rows whose messages went out are recorded
    /// after each batch, so a stopped run re-sends at most this many.
    #[serde(default = "default_batch_rows")]
    pub max_batch_rows: usize,
    #[serde(default = "default_timeout", with = "duration_setting")]
    pub timeout: Duration,
    /// Attempts per message for transient failures (429, 5xx, network), including the first.
    #[serde(default = "default_attempts")]
    pub max_attempts: usize,
    #[serde(default = "default_initial_delay", with = "duration_setting")]
    pub retry_initial_delay: Duration,
}

/// A sync's `[target]` for a Slack destination.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackTarget {
    /// The message text: a template over the row's fields (`"{{ name }} churn risk {{ score }}"`).
    /// With `blocks`, the notification fallback.
    pub text: Option<String>,
    /// Block Kit blocks: a TOML array of tables or a JSON string; every string in it is a
    /// template.
    pub blocks: Option<toml::Value>,
    /// One message per run with the counts and the first `digest_rows` rows, instead of one per row.
    #[serde(default)]
    pub digest: bool,
    #[serde(default = "default_digest_rows")]
    pub digest_rows: usize,
}

fn default_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_batch_rows() -> usize {
    10
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_attempts() -> usize {
    5
}
fn default_initial_delay() -> Duration {
    Duration::from_secs(1)
}
fn default_digest_rows() -> usize {
    10
}
