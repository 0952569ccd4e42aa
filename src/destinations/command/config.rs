use std::time::Duration;

use indexmap::IndexMap;
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use crate::destinations::requests::{Defaults, Requests};

/// This destination's defaults for the request settings every destination takes.
pub const REQUESTS: Defaults = Defaults {
    max_batch_rows: Some(500),
    timeout: Some(Duration::from_secs(60)),
    max_attempts: Some(3),
    retry_initial_delay: Some(Duration::from_millis(500)),
    max_in_flight: Some(1),
};

/// A program in any language that reads the rows as JSON lines on stdin and answers with one
/// result per row on stdout (docs/custom-destinations.md).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// The program and its arguments, e.g. `["python3", "destinations/notion.py"]`; run in the
    /// project directory.
    pub command: Vec<String>,
    /// Extra environment for the program. Values are secret: never logged.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, crate::project::schema::Secret>")]
    pub env: IndexMap<String, SecretString>,
    /// Start the program for every batch (stdin closes after the batch) instead of once per run.
    #[serde(default)]
    pub per_batch: bool,
    /// The rate limit of the service behind the program, as requests (batches) per window:
    /// `"100/10s"`, `"5/s"`. Batches wait for it before they are handed over. None: no limit.
    pub rate_limit: Option<String>,
    /// the request settings (`destinations::requests`,
    /// with [`REQUESTS`] as defaults).
    #[serde(skip)]
    pub requests: Requests,
}
