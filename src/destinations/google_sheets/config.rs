use std::time::Duration;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use crate::destinations::requests::{Defaults, Requests};

pub const DEFAULT_BASE_URL: &str = "https://sheets.googleapis.com/";
pub const SCOPE: &str = "https://www.googleapis.com/auth/spreadsheets";

/// This destination's defaults for the request settings every destination takes.
pub const REQUESTS: Defaults = Defaults {
    max_batch_rows: Some(2000),
    timeout: Some(Duration::from_secs(60)),
    max_attempts: Some(6),
    retry_initial_delay: Some(Duration::from_secs(1)),
    max_in_flight: None,
};

/// A Google Sheets spreadsheet, one tab per sync, rows kept by key; written as a service account.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SheetsConfig {
    /// The long id in the spreadsheet's URL, between `/d/` and `/edit`.
    pub spreadsheet_id: String,
    /// The service-account key JSON: `credentials_file = "path"` (read by the config loader)
    /// or `credentials_json = "${GOOGLE_SA_JSON}"`.
    #[serde(alias = "credentials_json")]
    #[schemars(with = "Option<crate::project::schema::Secret>")]
    pub credentials: Option<SecretString>,
    /// Overrides the key's `token_uri` (tests, proxies).
    pub token_url: Option<String>,
    /// The Sheets API's address (an emulator's in tests).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// How Sheets reads the values sent.
    #[serde(default)]
    pub value_input: ValueInput,
    /// Writes per minute at most, matching Google's per-user write quota.
    #[serde(default = "default_per_minute")]
    pub write_requests_per_minute: u32,
    /// Reads per minute at most (Google's per-user read quota).
    #[serde(default = "default_per_minute")]
    pub read_requests_per_minute: u32,
    /// Requests larger than this are split (Google recommends at most 2 MB).
    #[serde(default = "default_request_bytes")]
    pub max_request_bytes: usize,
    /// the request settings (`destinations::requests`,
    /// with [`REQUESTS`] as defaults).
    #[serde(skip)]
    pub requests: Requests,
}

/// How Sheets reads the values sluice sends.
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ValueInput {
    /// Stored as sent: numbers as numbers, text (dates too) as text.
    #[default]
    Raw,
    /// Parsed as if typed by a person: dates become dates, `=` starts a formula.
    UserEntered,
}

impl ValueInput {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueInput::Raw => "RAW",
            ValueInput::UserEntered => "USER_ENTERED",
        }
    }
}

/// Which tab this sync writes, and whether text may become formulas.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SheetsTarget {
    /// The tab's title; the sync's name when left out. Created when missing.
    pub sheet: Option<String>,
    /// With `value_input = "USER_ENTERED"`: text that starts with `=` becomes a formula. Off by
    /// default: the model's text is written as the text it is (a leading `'` tells Sheets so).
    #[serde(default)]
    pub formulas: bool,
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.into()
}
fn default_per_minute() -> u32 {
    60
}
fn default_request_bytes() -> usize {
    2_000_000
}
