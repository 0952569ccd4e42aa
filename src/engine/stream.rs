//! A run of a sync over a stream (`source = "stream:NAME"`): the events it reads are those past
//! its cursor (the `seq` of the last event it read; all of them at first, or when its definition
//! changed), written to a JSON-lines file that the run's source reads as the table `events`. The
//! cursor moves to the last event written only once the run committed every row, as any
//! cursor's (`cursor`, `finish`); the diff by key keeps an event read twice from being sent twice.

use std::ops::Deref;

use super::cursor::RunCursor;
use super::{Engine, RunError};
use crate::project::SyncSpec;
use crate::source::Source;
use crate::value::Value;

/// The cursor column's name for a stream's event order, as runs report it: `stream:NAME`.
pub(super) const STREAM_CURSOR: &str = "stream:";

/// A run's source: the engine's client for the sync's source, or one the run made for itself
/// (a stream's events), with the file it reads.
pub(super) enum Held<'e> {
    Shared(&'e Source),
    /// The events' file stays until the run ends.
    Own {
        source: Box<Source>,
        _events: Option<tempfile::TempDir>,
    },
}

impl Deref for Held<'_> {
    type Target = Source;
    fn deref(&self) -> &Source {
        match self {
            Held::Shared(s) => s,
            Held::Own { source, .. } => source,
        }
    }
}

impl Engine {
    /// Writes the events of `stream` past the run's cursor to a temporary file and returns the
    /// source reading them; the cursor learns the last event written.
    pub(super) async fn read_stream(&self, sync: &SyncSpec, stream: &str, cursor: &mut RunCursor) -> Result<Held<'_>, RunError> {
        let after = match cursor.after.as_ref().map(|a| &a.value) {
            Some(Value::Int(seq)) => *seq,
            _ => 0,
        };
        let upto = self.store.last_event(stream).await?.filter(|last| *last > after);
        let Some(upto) = upto else {
            return Ok(Held::Own { source: Box::new(Source::events(sync.name(), &self.root, None)?), _events: None });
        };
        let spool = |e: std::io::Error| RunError::Spool(format!("cannot write the stream's events to a temporary file: {e}"));
        let dir = tempfile::Builder::new().prefix("sluice-events-").tempdir().map_err(spool)?;
        let path = dir.path().join("events.jsonl");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).map_err(spool)?);
        let written = self.store.write_events(stream, after, upto, &mut out).await?;
        out.into_inner().map_err(|e| spool(e.into_error()))?;
        tracing::debug!(sync = %sync.name(), stream, after, upto, events = written, "events to read");
        cursor.see(&Value::Int(upto));
        let file = (written > 0).then_some(path.as_path());
        Ok(Held::Own { source: Box::new(Source::events(sync.name(), &self.root, file)?), _events: Some(dir) })
    }
}

impl Engine {
    /// The model's columns, without reading its rows (`sluice check`): over a stream, the model
    /// runs over an empty `events` table.
    pub async fn describe(&self, sync: &SyncSpec) -> Result<Vec<crate::source::Column>, RunError> {
        if crate::project::stream_of(&sync.source).is_some() {
            return Ok(Source::events(sync.name(), &self.root, None)?.describe(&sync.file.model).await?);
        }
        Ok(self.source(&sync.source)?.describe(&sync.file.model).await?)
    }
}
