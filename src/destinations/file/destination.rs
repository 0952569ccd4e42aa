use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde_json::Value as J;

use super::config::{FileConfig, FileTarget, Format};
use super::encoding::{self, cell, key_of};
use crate::destinations::{parse_settings, Capabilities, Destination, DestinationError, Op, RowOp, RowOutcome, Target, Writer};
use crate::project::Mode;

pub struct FileDestination {
    config: FileConfig,
    root: PathBuf,
}

impl FileDestination {
    pub fn from_settings(settings: &toml::Table, root: &Path) -> Result<Self, String> {
        Ok(FileDestination { config: parse_settings(settings)?, root: root.to_path_buf() })
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

struct Layout {
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
        Capabilities { if_empty: true, ..Capabilities::every_mode(self.config.max_batch_rows, 1, std::time::Duration::ZERO) }
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

struct FileWriter {
    layout: Layout,
    mode: Mode,
    target: Target,
}

impl FileWriter {
    fn row_cells(&self, op: &RowOp) -> Vec<J> {
        let l = &self.layout;
        let mut row = vec![J::Null; l.header.len()];
        for (k, v) in op.key.iter().enumerate() {
            row[l.key_idx[k]] = cell(l.format, v);
        }
        for (i, v) in op.fields.iter().enumerate() {
            row[l.field_base + i] = cell(l.format, v);
        }
        row
    }

    /// The row's new cells over its current ones: a cell the row does not write (a skipped
    /// NULL, an `if_empty` field that holds a value) keeps what the file has.
    fn merged_cells(&self, op: &RowOp, current: Option<&Vec<J>>) -> Vec<J> {
        let mut row = self.row_cells(op);
        if let Some(current) = current {
            for j in 0..op.fields.len() {
                let c = self.layout.field_base + j;
                let empty = current.get(c).is_none_or(|v| v.is_null() || v.as_str() == Some(""));
                if self.target.keeps_current(op, j, empty) {
                    row[c] = current.get(c).cloned().unwrap_or(J::Null);
                }
            }
        }
        row
    }

    fn key_text(&self, op: &RowOp) -> String {
        key_of(op.key.iter().map(|v| cell(self.layout.format, v)))
    }

    /// Insert mode: append, never rewrite (the file may be a log someone else reads).
    fn append(&self, batch: &[RowOp]) -> Result<(), String> {
        let l = &self.layout;
        let fresh = std::fs::metadata(&l.path).map(|m| m.len() == 0).unwrap_or(true);
        let rows: Vec<Vec<J>> = batch.iter().map(|op| self.row_cells(op)).collect();
        let created = !l.path.exists();
        let mut file = OpenOptions::new().create(true).append(true).open(&l.path).map_err(|e| io_err(&l.path, e))?;
        let before = file.metadata().map_err(|e| io_err(&l.path, e))?.len();
        let written = encoding::write_rows(&mut file, l.format, &l.header, rows.iter(), fresh, l.escaped).and_then(|_| file.sync_all());
        if let Err(e) = written {
            // A half-written batch (a full disk) is cut off, so the retry does not leave a torn
            // line or a second copy of the rows that did fit.
            return Err(match file.set_len(before) {
                Ok(()) => io_err(&l.path, e),
                Err(cut) => {
                    format!("{}: {e}; cutting the half-written batch off failed too ({cut}): check the file's end", l.path.display())
                }
            });
        }
        // A file just created exists after a crash only once its directory entry is on disk.
        if created {
            sync_dir(&l.path)?;
        }
        Ok(())
    }

    fn rewrite(&self, batch: &[RowOp]) -> Result<Vec<RowOutcome>, String> {
        let l = &self.layout;
        let mut table = encoding::read(&l.path, l.format, &l.header, &l.key_idx, l.escaped)?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for op in batch {
            let key = self.key_text(op);
            let outcome = match op.op {
                Op::Upsert | Op::Insert => {
                    let cells = self.merged_cells(op, table.rows.get(&key));
                    table.rows.insert(key, cells);
                    RowOutcome::written()
                }
                Op::Update => match table.rows.get_mut(&key) {
                    Some(row) => {
                        *row = self.merged_cells(op, Some(row));
                        RowOutcome::written()
                    }
                    None => RowOutcome::Rejected(format!(
                        "no row with this key in {}: update mode changes only existing rows",
                        l.path.display()
                    )),
                },
                Op::Delete => {
                    table.rows.shift_remove(&key);
                    RowOutcome::written()
                }
                // The key stays, the mapped cells are emptied; a row no longer there needs nothing.
                Op::Clear => {
                    if let Some(row) = table.rows.get_mut(&key) {
                        *row = self.merged_cells(op, Some(row));
                    }
                    RowOutcome::written()
                }
            };
            outcomes.push(outcome);
        }
        replace(&l.path, |out| encoding::write_rows(out, l.format, &l.header, table.rows.values(), true, l.escaped))?;
        Ok(outcomes)
    }
}

/// Replaces `path` with what `write` writes, atomically and durably: a temporary file beside it,
/// synced, renamed over it, then the directory synced (until then a crash may bring back the
/// old file, or none). The new file keeps the old one's mode; a new one gets the umask's.
fn replace(path: &Path, write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mode = std::fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o7777);
    // Created 0666 less the umask, as any new file; an existing file's mode is put back below
    // (the umask must not narrow it).
    let mut tmp =
        tempfile::Builder::new().permissions(std::fs::Permissions::from_mode(0o666)).tempfile_in(dir).map_err(|e| io_err(dir, e))?;
    write(tmp.as_file_mut()).and_then(|_| tmp.as_file_mut().flush()).map_err(|e| io_err(path, e))?;
    if let Some(mode) = mode {
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode)).map_err(|e| io_err(path, e))?;
    }
    tmp.as_file().sync_all().map_err(|e| io_err(path, e))?;
    tmp.persist(path).map_err(|e| io_err(path, e.error))?;
    sync_dir(path)
}

/// Syncs the directory holding `path`, so a file created or renamed there survives a crash.
fn sync_dir(path: &Path) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_err(dir, e))
}

fn io_err(path: &Path, e: std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => format!(
            "{}: {e}: the disk is full; the file was left as it was before this batch and nothing was recorded as sent. \
             Free some space (or point `path` elsewhere), then run again",
            path.display()
        ),
        _ => format!("{}: {e}", path.display()),
    }
}

#[async_trait]
impl Writer for FileWriter {
    async fn write(&mut self, batch: &[RowOp]) -> Result<Vec<RowOutcome>, DestinationError> {
        if let Some(dir) = self.layout.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| DestinationError::fatal(io_err(dir, e)))?;
        }
        // Local file I/O is quick and this writer is used by one run at a time; blocking here
        // keeps the code simple. A failure is fatal: retrying a full disk does not help.
        if self.mode == Mode::Insert {
            self.append(batch).map_err(DestinationError::fatal)?;
            Ok(vec![RowOutcome::written(); batch.len()])
        } else {
            self.rewrite(batch).map_err(DestinationError::fatal)
        }
    }
}
