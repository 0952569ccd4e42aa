use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

use crate::destinations::requests::{Defaults, Requests};

/// This destination's defaults for the request settings: rows per batch only.
pub const REQUESTS: Defaults =
    Defaults { max_batch_rows: Some(10_000), timeout: None, max_attempts: None, retry_initial_delay: None, max_in_flight: None };

/// A CSV or JSON Lines file on this machine, rewritten whole (atomically) at the end of each run.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Output file, relative to the project; a sync's `[target] path` overrides it.
    pub path: Option<PathBuf>,
    /// `csv` or `jsonl`; default from the file extension.
    pub format: Option<Format>,
    /// CSV: text cells that a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, tab,
    /// CR, LF first) get a leading `'`, so opening the file never runs the data. On by
    /// default; numbers are never changed. Off for files read only by programs.
    #[serde(default = "yes")]
    pub escape_formulas: bool,
    /// `max_batch_rows` (`destinations::requests`, with [`REQUESTS`] as defaults): a file
    /// takes no timeout or retries (a full disk does not get better by waiting).
    #[serde(skip)]
    pub requests: Requests,
}

fn yes() -> bool {
    true
}

/// Which file this sync writes, when not the destination's.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileTarget {
    /// This sync's output file, relative to the project (overrides the destination's `path`).
    pub path: Option<PathBuf>,
}

/// The file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated, a header row first.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        }
    }
}
