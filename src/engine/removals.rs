//! After the scan: the rows that left the model (deleted, cleared or left alone, by
//! `on_remove`), the delete guard, and the errors no retry can fix any more. A run the guard
//! stops sends nothing at all; a plan ends here.

use super::guard;
use super::prepare::Prepared;
use super::scan::Diffed;
use super::{keys, Engine, RunError, RunOptions, SyncReport};
use crate::project::{OnRemove, SyncSpec};
use crate::value::Hash128;

/// Stored rows the run removes from the destination, by key hash.
pub(super) struct Removals {
    pub deletes: Vec<Hash128>,
    pub clears: Vec<Hash128>,
}

impl Engine {
    /// The removals, once the delete guard let them through. `None` for a plan, which has
    /// reported what a run would do.
    pub(super) async fn removals(
        &self,
        sync: &SyncSpec,
        opts: &RunOptions,
        prepared: &Prepared<'_>,
        diffed: Diffed,
        settled: Vec<Hash128>,
        report: &mut SyncReport,
    ) -> Result<Option<Removals>, RunError> {
        let name = sync.name();
        // An incremental read sees only the rows past the cursor: the others have not left.
        let incremental = prepared.cursor.as_ref().is_some_and(|c| c.after.is_some());
        // Errors of rows that left the model can never be fixed by a retry: forgotten below, once
        // the delete guard has let the run go on (a broken, empty model must not erase them).
        let mut stale_errors: Vec<_> = match &diffed {
            Diffed::Local(differ) if !opts.dry_run && !incremental => {
                self.store.error_hashes(name).await?.into_iter().filter(|h| !differ.seen(*h)).collect()
            }
            // (A warehouse diff sees only the rows that changed: the errors of rows that left
            // the model stay until the model returns them changed, or `sluice reset`.)
            _ => Vec::new(),
        };
        if !opts.dry_run {
            stale_errors.extend(settled);
        }
        let (mut counts, mut removed, cleared) = match diffed {
            Diffed::Local(differ) => differ.finish(),
            Diffed::Warehouse { aside, added, changed } => {
                let (cleared, removed): (Vec<_>, Vec<_>) = aside.removed.iter().partition(|(_, cleared)| *cleared);
                let counts = super::warehouse::counts(&aside, added, changed, removed.len() as u64);
                (counts, removed.into_iter().map(|(h, _)| h).collect(), cleared.into_iter().map(|(h, _)| h).collect())
            }
        };
        if incremental {
            counts.removed = 0;
            removed.clear();
        }
        report.counts = counts;
        let (deletes, clears) = match sync.file.on_remove {
            // Records cleared under an earlier on_remove = "clear" go too.
            OnRemove::Delete => (removed.into_iter().chain(cleared).collect(), Vec::new()),
            OnRemove::Clear => (Vec::new(), removed),
            OnRemove::Ignore => (Vec::new(), Vec::new()),
        };
        report.to_send.delete = deletes.len() as u64;
        report.to_send.clear = clears.len() as u64;
        if prepared.moved && report.config_changed {
            report.warn(format!(
                "destination `{}` now points at another place than at the last run (its spreadsheet, endpoint, file, command or \
                 account changed), which holds none of this sync's rows: every row is sent there once",
                sync.destination
            ));
        } else if report.config_changed {
            report.warn("the sync's mode, key, mapping, target, destination or `diff` changed: every row is re-sent".into());
        }
        // The delete guard, before anything is sent: a run it stops sends nothing at all.
        let stored_rows = counts.changed + counts.unchanged + counts.removed;
        let limits = guard::limits(&self.delete_guard, &sync.file);
        let removing = (deletes.len() + clears.len()) as u64;
        if let Some(why) = guard::violation(&limits, removing, stored_rows, report.rows_read).filter(|_| !opts.allow_deletes) {
            let message = format!(
                "delete guard: {why}; nothing was sent. If that is intended, run `sluice run {name} --allow-deletes` \
                 (or raise max_deletes / max_delete_pct); otherwise check the model"
            );
            if !opts.dry_run {
                return Err(RunError::DeleteGuard(message));
            }
            report.warn(format!("a real run would stop here: {message}"));
        }
        if !stale_errors.is_empty() {
            self.store.forget_errors(name, &stale_errors).await?;
        }
        if opts.dry_run {
            let removals = if deletes.is_empty() { &clears } else { &deletes };
            let stored = self.store.lookup(name, &removals[..removals.len().min(opts.samples)]).await?;
            report.sample_removed(stored.values().map(|r| keys::display_key_json(&r.key_json)));
            return Ok(None);
        }
        if report.held > 0 {
            report.warn(format!(
                "{} row(s) the destination rejected before are unchanged and held back (see `sluice failures {name}`; `sluice retry {name}` sends them now)",
                report.held
            ));
        }
        if report.restored > 0 {
            report.warn(format!(
                "{} unchanged row(s) are missing from the destination (removed by hand?) and are written again",
                report.restored
            ));
        }
        Ok(Some(Removals { deletes, clears }))
    }
}
