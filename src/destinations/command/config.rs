use std::time::Duration;

use indexmap::IndexMap;
use secrecy::SecretString;
use serde::Deserialize;

use crate::destinations::duration_setting;

/// `[destinations.NAME]` with `kind = "command"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// The program and its arguments, e.g. `["python3", "destinations/notion.py"]`; run in the
    /// project directory.
    pub command: Vec<String>,
    /// How long one batch may take, from its first line written to its last result read.
    #[serde(default = "default_timeout", with = "duration_setting")]
    pub timeout: Duration,
    /// Extra environment for the program. Values are secret: never logged.
    #[serde(default)]
    pub env: IndexMap<String, SecretString>,
    /// Start the program for every batch (stdin closes after the batch) instead of once per run.
    #[serde(default)]
    pub per_batch: bool,
    #[serde(default = "default_batch_rows")]
    pub max_batch_rows: usize,
    /// Attempts per batch (and for rows the program asks to retry), including the first.
    #[serde(default = "default_attempts")]
    pub max_attempts: usize,
    #[serde(default = "default_initial_delay", with = "duration_setting")]
    pub retry_initial_delay: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_batch_rows() -> usize {
    500
}
fn default_attempts() -> usize {
    3
}
fn default_initial_delay() -> Duration {
    Duration::from_millis(500)
}
