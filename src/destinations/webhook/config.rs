use std::time::Duration;

use indexmap::IndexMap;
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use crate::destinations::requests::{Defaults, Requests};

/// This destination's defaults for the request settings every destination takes.
pub const REQUESTS: Defaults = Defaults {
    max_batch_rows: Some(500),
    timeout: Some(Duration::from_secs(30)),
    max_attempts: Some(5),
    retry_initial_delay: Some(Duration::from_millis(500)),
    max_in_flight: Some(8),
};

/// An HTTP endpoint of your own: each batch is one JSON POST; the answer may give per-row
/// results (docs/destinations.md).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where batches are POSTed. Secret, as URLs often carry tokens: errors show only its host.
    #[schemars(with = "crate::project::schema::Secret")]
    pub url: SecretString,
    /// Extra request headers, e.g. `Authorization = "Bearer ${TOKEN}"`. Values are secret.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, crate::project::schema::Secret>")]
    pub headers: IndexMap<String, SecretString>,
    /// When set, each request carries `X-Sluice-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    #[schemars(with = "Option<crate::project::schema::Secret>")]
    pub signing_secret: Option<SecretString>,
    /// The receiver's published rate limit, as requests per window: `"100/10s"`, `"5/s"`,
    /// `"600/min"`. Requests wait for it before they are sent, shared by every sync writing to
    /// this URL. None: as fast as the adaptive concurrency finds the receiver answers.
    pub rate_limit: Option<String>,
    /// the request settings (`destinations::requests`,
    /// with [`REQUESTS`] as defaults).
    #[serde(skip)]
    pub requests: Requests,
}
