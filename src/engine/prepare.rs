//! A run's first phase: what it runs against (the destination, its capabilities, the source),
//! what it compares the model with (the configuration fingerprint, with where the destination
//! writes), which rejected rows stay held back, and what a cursor sync reads.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;

use super::cursor::RunCursor;
use super::stream::{Held, STREAM_CURSOR};
use super::{config_fingerprint, retry, shape, Engine, RunError, RunOptions, SyncReport};
use crate::destinations::{Capabilities, Destination};
use crate::project::SyncSpec;
use crate::source::warehouse::WarehouseState;
use crate::source::Source;
use crate::state::SyncMeta;
use crate::value::Hash128;

/// What the later phases need of the first.
pub(super) struct Prepared<'e> {
    pub destination: &'e Arc<dyn Destination>,
    pub caps: Capabilities,
    pub source: Held<'e>,
    /// The cursor filters the model's rows (a `cursor` column), not a stream's events.
    pub cursor_in_model: bool,
    /// The hash of where the destination writes (`Destination::identity`).
    pub identity: String,
    /// The sync's definition as its last run that got through recorded it.
    pub meta: Option<SyncMeta>,
    pub config_fp: String,
    /// The destination points at another place than at the last run.
    pub moved: bool,
    /// Rejected rows: the fingerprint rejected, and when.
    pub holds: FxHashMap<Hash128, (Hash128, String)>,
    /// Rows rejected since then stay held back while unchanged.
    pub held_since: DateTime<Utc>,
    /// A cursor sync's read.
    pub cursor: Option<RunCursor>,
    /// `diff = "warehouse"`: sluice's tables in the source, the sync's there ready.
    pub warehouse: Option<&'e WarehouseState>,
}

impl Engine {
    pub(super) async fn prepare<'e>(
        &'e self,
        sync: &SyncSpec,
        opts: &RunOptions,
        report: &mut SyncReport,
    ) -> Result<Prepared<'e>, RunError> {
        let name = sync.name();
        let destination = self.destination(&sync.destination)?;
        let caps = destination.capabilities();
        shape::check_capabilities(sync, &caps)?;
        let stream = crate::project::stream_of(&sync.source);
        let source = match stream {
            Some(_) => None,
            None => Some(self.source(&sync.source)?),
        };

        // Where the rows land is part of the definition: a sync pointed at another spreadsheet,
        // endpoint or account sends every row there once. The identity counts once it differs
        // from the first one recorded, so stores from before identities keep their fingerprints.
        // Its requests count against the service's limit like the writes': in the same windows.
        let asking = retry::identity_with_retry(destination.as_ref(), &caps, &opts.cancel);
        let asked = crate::destinations::flow::within(self.store.shared_windows(), asking).await;
        let identity = shape::identity_hash(&asked.map_err(|error| RunError::Destination { name: sync.destination.clone(), error })?);
        let meta = self.store.sync_meta(name).await?;
        let moved_on = meta.as_ref().and_then(|m| m.first_identity.as_ref()).is_some_and(|first| *first != identity);
        let config_fp = config_fingerprint(sync, self.destination_kind(sync), caps.presentation, moved_on.then_some(&*identity));
        report.config_changed = meta.as_ref().is_some_and(|m| m.config_fingerprint != config_fp);
        let moved = meta.as_ref().and_then(|m| m.identity.as_ref()).is_some_and(|last| *last != identity);

        // Rejected rows stay held back while unchanged, until `sluice retry` or their hold ends.
        let hold_for = sync.file.retry_rejected_after.unwrap_or(self.retry.rejected_after);
        // A hold longer than the calendar (e.g. "1000y": never) reaches back to the start of time.
        let held_since =
            chrono::Duration::from_std(hold_for).ok().and_then(|d| Utc::now().checked_sub_signed(d)).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let holds = if opts.retry_rejected { Default::default() } else { self.store.rejected_holds(name).await? };
        // A cursor sync reads only the rows from its stored mark on (or everything, and says
        // why); a rejected row whose hold ran out is only seen by a whole read.
        let hold_ended = holds.values().any(|(_, seen)| DateTime::parse_from_rfc3339(seen).map_or(true, |t| t <= held_since));
        // A sync over a stream reads the events past the last one it read: its cursor is the
        // stream's event order.
        let column = match stream {
            Some(stream) => Some(format!("{STREAM_CURSOR}{stream}")),
            None => sync.file.cursor.as_ref().map(|c| c.value.clone()),
        };
        let stored_cursor = if column.is_some() { self.store.cursor(name).await? } else { None };
        let mut cursor = RunCursor::plan(sync, column, &config_fp, stored_cursor, opts, hold_ended);
        let source = match (source, stream, cursor.as_mut()) {
            (Some(source), _, _) => Held::Shared(source),
            (None, Some(stream), Some(cursor)) => self.read_stream(sync, stream, cursor).await?,
            (None, _, _) => return Err(RunError::Invalid(format!("sync `{name}` reads a stream without a cursor (a bug)"))),
        };
        report.cursor = cursor.as_ref().map(|c| c.report.clone());
        let cursor_in_model = stream.is_none();
        let warehouse = self.warehouse_of(sync, &source, opts.dry_run).await?;
        Ok(Prepared { destination, caps, source, cursor_in_model, identity, meta, config_fp, moved, holds, held_since, cursor, warehouse })
    }

    /// For `diff = "warehouse"` (`sluice check`): whether the sync can diff in its source,
    /// and the source's role may keep the sync's table there; what to GRANT when it may not.
    pub async fn check_warehouse(&self, sync: &SyncSpec) -> Result<(), RunError> {
        let source = match crate::project::stream_of(&sync.source) {
            Some(_) => None,
            None => Some(self.source(&sync.source)?),
        };
        let Some(state) = warehouse_state(sync, source)? else { return Ok(()) };
        let missing = state.missing_grants(&crate::source::warehouse::table_name(sync.name())).await?;
        if missing.is_empty() {
            return Ok(());
        }
        Err(RunError::Invalid(format!(
            "{}:{}: diff = \"warehouse\" keeps a table in schema `{}` of source `{}`, and the source's role may not: \
             as the database's or the schema's owner, run: {}",
            sync.file.path.display(),
            sync.file.diff.line,
            state.schema(),
            sync.source,
            missing.join(" ")
        )))
    }

    /// For `diff = "warehouse"`: the source's tables, the sync's created when missing (not by
    /// a plan, which writes nothing).
    async fn warehouse_of<'e>(&self, sync: &SyncSpec, source: &Held<'e>, plan: bool) -> Result<Option<&'e WarehouseState>, RunError> {
        let shared = match source {
            Held::Shared(shared) => Some(*shared),
            Held::Own { .. } => None,
        };
        let Some(state) = warehouse_state(sync, shared)? else { return Ok(None) };
        if !plan {
            state.ensure(&crate::source::warehouse::table_name(sync.name())).await?;
        }
        Ok(Some(state))
    }
}

/// The source's tables for a sync with `diff = "warehouse"` (`None` without it); refused where
/// it cannot work, at the header's `diff` line. `source`: `None` for a sync over a stream.
fn warehouse_state<'e>(sync: &SyncSpec, source: Option<&'e Source>) -> Result<Option<&'e WarehouseState>, RunError> {
    if sync.file.diff.value != crate::project::DiffMode::Warehouse {
        return Ok(None);
    }
    let at = |m: String| RunError::Invalid(format!("{}:{}: {m}", sync.file.path.display(), sync.file.diff.line));
    let Some(source) = source else {
        return Err(at("diff = \"warehouse\" diffs in a database: a sync over a stream diffs its events in sluice (remove `diff`)".into()));
    };
    if sync.file.cursor.is_some() {
        return Err(at("diff = \"warehouse\" does not go with `cursor`: a cursor sync reads only the rows past its mark already; \
                       use one or the other"
            .into()));
    }
    source.warehouse().map(Some).ok_or_else(|| {
        at(format!(
            "diff = \"warehouse\" needs a Postgres, MariaDB/MySQL or DuckDB source, and `{}` is a command source: \
             remove `diff` to diff in sluice",
            sync.source
        ))
    })
}
