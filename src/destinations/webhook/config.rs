use indexmap::IndexMap;
use secrecy::SecretString;
use serde::Deserialize;

use crate::destinations::duration_setting;

/// `[destinations.NAME]` with `kind = "webhook"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Secret: URLs often carry tokens. Errors show only its host.
    pub url: SecretString,
    /// Extra request headers, e.g. `Authorization = "Bearer ${TOKEN}"`. Values are secret.
    #[serde(default)]
    pub headers: IndexMap<String, SecretString>,
    /// When set, each request carries `X-Sluice-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    pub signing_secret: Option<SecretString>,
    #[serde(default = "default_batch_rows")]
    pub max_batch_rows: usize,
    /// Per-request timeout, e.g. "30s".
    #[serde(default = "default_timeout", with = "duration_setting")]
    pub timeout: std::time::Duration,
    /// Attempts per batch for transient failures (429, 5xx, network), including the first.
    #[serde(default = "default_attempts")]
    pub max_attempts: usize,
    /// First backoff delay; doubles per attempt, with jitter; Retry-After wins when given.
    #[serde(default = "default_initial_delay", with = "duration_setting")]
    pub retry_initial_delay: std::time::Duration,
}

fn default_batch_rows() -> usize {
    500
}
fn default_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(30)
}
fn default_attempts() -> usize {
    5
}
fn default_initial_delay() -> std::time::Duration {
    std::time::Duration::from_millis(500)
}
