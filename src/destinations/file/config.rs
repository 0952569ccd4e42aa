use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::destinations::requests::{Defaults, Requests};

/// This destination's defaults for the request settings: rows per batch only.
pub const REQUESTS: Defaults = Defaults { max_batch_rows: Some(10_000), timeout: None, max_attempts: None, retry_initial_delay: None };

/// `[destinations.NAME]` with `kind = "file"`.
#[derive(Debug, Deserialize)]
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

/// A sync's `[target]` for a file destination.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTarget {
    pub path: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
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
