//! The file system, as the file destination uses it: a file replaced atomically and durably, its
//! directory synced, and what an I/O error means to the person who reads it.

use std::io::Write;
use std::path::Path;

/// Replaces `path` with what `write` writes, atomically and durably: a temporary file beside it,
/// synced, renamed over it, then the directory synced (until then a crash may bring back the
/// old file, or none). The new file keeps the old one's mode; a new one gets the umask's.
pub(super) fn replace(path: &Path, write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>) -> Result<(), String> {
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
pub(super) fn sync_dir(path: &Path) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_err(dir, e))
}

pub(super) fn io_err(path: &Path, e: std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => format!(
            "{}: {e}: the disk is full; the file was left as it was before this batch and nothing was recorded as sent. \
             Free some space (or point `path` elsewhere), then run again",
            path.display()
        ),
        _ => format!("{}: {e}", path.display()),
    }
}
