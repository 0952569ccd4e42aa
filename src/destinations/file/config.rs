use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[destinations.NAME]` with `kind = "file"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Output file, relative to the project; a sync's `[target] path` overrides it.
    pub path: Option<PathBuf>,
    /// `csv` or `jsonl`; default from the file extension.
    pub format: Option<Format>,
    #[serde(default = "default_batch_rows")]
    pub max_batch_rows: usize,
    /// CSV: text cells that a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, tab,
    /// CR, LF first) get a leading `'`, so opening the file never runs the data. On by
    /// default; numbers are never changed. Off for files read only by programs.
    #[serde(default = "yes")]
    pub escape_formulas: bool,
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

fn default_batch_rows() -> usize {
    10_000
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
