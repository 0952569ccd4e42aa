use std::time::Duration;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use crate::destinations::requests::{Defaults, Requests};

pub const DEFAULT_BASE_URL: &str = "https://api.notion.com/";
/// The API version sluice speaks: the last before databases were split into data sources
/// (2025-09-03), whose query endpoint is another one.
pub const DEFAULT_VERSION: &str = "2022-06-28";
/// Notion's published limit: an average of three requests per second per integration.
pub const DEFAULT_RATE_LIMIT: &str = "3/1s";
/// Pages per query answer, at most (Notion's `page_size` limit).
pub const PAGE_SIZE: usize = 100;

/// This destination's defaults for the request settings every destination takes. Notion has no
/// batch write (one request per row), so a batch is a group of rows sent one after another, and
/// a few batches go side by side within the pace.
pub const REQUESTS: Defaults = Defaults {
    max_batch_rows: Some(50),
    timeout: Some(Duration::from_secs(30)),
    max_attempts: Some(8),
    retry_initial_delay: Some(Duration::from_secs(1)),
    max_in_flight: Some(3),
};

/// A Notion database through the public API (an internal integration), one page per row,
/// matched by a key property.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotionConfig {
    /// An internal integration's secret (`ntn_...` or `secret_...`), from notion.so/profile/integrations;
    /// the database must be shared with the integration (its ••• menu > Connections).
    #[schemars(with = "crate::project::schema::Secret")]
    pub token: SecretString,
    /// Notion's API address (an emulator's in tests).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The `Notion-Version` header every request carries. sluice speaks 2022-06-28 (databases
    /// queried directly); versions from 2025-09-03 on query data sources instead.
    #[serde(default = "default_version")]
    pub notion_version: String,
    /// Requests per window the integration is paced to, shared by every sync using this token:
    /// Notion allows an average of three per second.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: String,
    /// The most query requests (100 pages each) a run spends reading the database's keys when it
    /// opens. A database that fits is read whole, so later writes need no lookups and pages
    /// archived by hand are written again; a larger one is searched by key, per batch.
    #[serde(default = "default_scan_limit")]
    pub scan_limit: u32,
    /// the request settings (`destinations::requests`,
    /// with [`REQUESTS`] as defaults).
    #[serde(skip)]
    pub requests: Requests,
}

/// Which database this sync writes, and the property its pages are matched by.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotionTarget {
    /// The database's id: the 32 hexadecimal digits in its URL (dashes optional).
    pub database_id: String,
    /// A property of the database (title, rich_text or number) that holds the sync's primary
    /// key: pages are found by it, and it is written on every page from the key column.
    pub key_property: String,
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.into()
}
fn default_version() -> String {
    DEFAULT_VERSION.into()
}
fn default_rate_limit() -> String {
    DEFAULT_RATE_LIMIT.into()
}
fn default_scan_limit() -> u32 {
    50
}
