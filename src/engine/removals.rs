//! After the scan: the rows that left the model (deleted, cleared or left alone, by
//! `on_remove`), the delete guard, and the errors no retry can fix any more. A run the guard
//! stops sends nothing at all; a plan ends here.

use super::guard;
use super::prepare::Prepared;
use super::saved::{self, Planned};
use super::scan::Diffed;
use super::{keys, Engine, RunError, RunOptions, SyncReport};
use crate::destinations::Op;
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
        (diffed, settled, mut check): (Diffed, Vec<Hash128>, saved::Check),
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
        let (mut deletes, mut clears) = (deletes, clears);
        if let Some(limit) = opts.limit {
            // What room `--limit` leaves after the rows to write; the removals past it wait.
            let room = limit.saturating_sub(report.to_send.total()) as usize;
            let before = deletes.len() + clears.len();
            deletes.truncate(room);
            clears.truncate(room - deletes.len());
            report.limited += (before - deletes.len() - clears.len()) as u64;
        }
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
        // `sluice apply`: exactly the saved plan's changes, or nothing at all.
        if let Some(plan) = super::scan::expected(opts, name)? {
            deletes.iter().for_each(|h| check.see(plan, *h, Op::Delete, None, false));
            clears.iter().for_each(|h| check.see(plan, *h, Op::Clear, None, false));
            if let Some(why) = check.drift(plan, name) {
                return Err(RunError::Drift(why));
            }
        }
        if let Some(recorder) = opts.record.as_ref().filter(|_| opts.dry_run) {
            self.record_removals(name, recorder, &deletes, &clears).await?;
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
            if sync.file.log_values {
                // Changed rows as last written, where the change log still has their values.
                let changed: Vec<String> = report.samples.iter().filter(|s| s.change == "changed").map(|s| s.key_text.clone()).collect();
                let mut before = self.store.last_values(name, &changed).await?;
                for sample in report.samples.iter_mut().filter(|s| s.change == "changed") {
                    sample.before = before.remove(&sample.key_text);
                }
            }
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

impl Engine {
    /// A saved plan's removals, with their keys from the state store (in chunks: a mirror may
    /// remove many).
    async fn record_removals(
        &self,
        name: &str,
        recorder: &saved::Recorder,
        deletes: &[Hash128],
        clears: &[Hash128],
    ) -> Result<(), RunError> {
        for (op, hashes) in [(Op::Delete, deletes), (Op::Clear, clears)] {
            for chunk in hashes.chunks(1_000) {
                let stored = self.store.lookup(name, chunk).await?;
                for h in chunk {
                    let key = stored.get(h).map(|r| keys::plain_from_stored(&r.key_json)).unwrap_or_default();
                    let planned = Planned { key, key_hash: *h, op, change: "removed".into(), fingerprint: None, after: None };
                    recorder.push(name, &planned).map_err(RunError::Invalid)?;
                }
            }
        }
        Ok(())
    }
}
