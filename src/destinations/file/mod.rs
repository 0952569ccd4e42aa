//! `file`: keeps a CSV or JSON-lines file equal to the synced rows. Upsert, update and mirror
//! rewrite the file atomically (temp file + rename) after every batch, so a kill never leaves a
//! torn file; insert appends.

mod client;
mod config;
mod encoding;
mod writer;

pub use config::{FileConfig, Format};

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::destinations::{parse_settings, Capabilities, Destination, DestinationError, Target, Writer};
use config::FileTarget;
use writer::FileWriter;

pub struct FileDestination {
    config: FileConfig,
    root: PathBuf,
}

impl FileDestination {
    pub fn from_settings(settings: &toml::Table, root: &Path) -> Result<Self, String> {
        let (mut config, requests) = crate::destinations::requests::parse::<FileConfig>(settings, &config::REQUESTS)?;
        config.requests = requests;
        Ok(FileDestination { config, root: root.to_path_buf() })
    }

    /// Resolves the output path and format for one sync.
    fn layout(&self, target: &Target) -> Result<Layout, DestinationError> {
        let t: FileTarget = parse_settings(&target.settings).map_err(|m| DestinationError::fatal(format!("[target]: {m}")))?;
        let rel = t
            .path
            .or_else(|| self.config.path.clone())
            .ok_or_else(|| DestinationError::fatal("no output path: set `path` in the destination or `[target] path` in the sync"))?;
        let path = self.root.join(&rel);
        let format = self.config.format.or_else(|| Format::from_path(&path)).ok_or_else(|| {
            DestinationError::fatal(format!("cannot tell the format of {}: use a .csv or .jsonl extension, or set `format`", rel.display()))
        })?;
        // Key columns that no mapped field carries are written first, under their column name,
        // so every line of the file can be matched to its row.
        let mut header: Vec<String> = Vec::new();
        let mut key_idx = Vec::new();
        for (k, col) in target.key_columns.iter().enumerate() {
            if target.key_fields[k].is_none() {
                key_idx.push(header.len());
                header.push(col.clone());
            }
        }
        let field_base = header.len();
        header.extend(target.fields.iter().cloned());
        let mut extra = key_idx.into_iter();
        let key_idx = target.key_fields.iter().map(|f| f.map(|i| field_base + i).or_else(|| extra.next()).unwrap_or(0)).collect();
        let escaped = format == Format::Csv && self.config.escape_formulas;
        Ok(Layout { path, format, header, key_idx, field_base, escaped })
    }
}

pub(super) struct Layout {
    path: PathBuf,
    format: Format,
    header: Vec<String>,
    /// Header position of each key column.
    key_idx: Vec<usize>,
    /// Header position of the first mapped field.
    field_base: usize,
    /// CSV cells are formula-escaped (`escape_formulas`): written so, and read back unescaped.
    escaped: bool,
}

#[async_trait]
impl Destination for FileDestination {
    /// The output path as configured (a sync's `[target] path` is fingerprinted with the target).
    async fn identity(&self) -> Result<String, DestinationError> {
        Ok(self.config.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default())
    }

    fn capabilities(&self) -> Capabilities {
        // It reads the file it rewrites, so it knows which cells hold a value.
        Capabilities { if_empty: true, ..Capabilities::every_mode(self.config.requests.max_batch_rows, 1, std::time::Duration::ZERO) }
    }

    async fn check(&self, target: &Target) -> Result<(), DestinationError> {
        let layout = self.layout(target)?;
        let dir = layout.path.parent().unwrap_or(Path::new("."));
        if dir.exists() && !dir.is_dir() {
            return Err(DestinationError::fatal(format!("{} is not a directory", dir.display())));
        }
        Ok(())
    }

    async fn open(&self, target: &Target) -> Result<Box<dyn Writer>, DestinationError> {
        Ok(Box::new(FileWriter { layout: self.layout(target)?, mode: target.mode, target: target.clone() }))
    }
}

/// This kind's settings and `[target]`, for the configuration reference.
pub fn reference() -> super::Reference {
    super::Reference::new::<config::FileConfig, config::FileTarget>(&config::REQUESTS)
}
