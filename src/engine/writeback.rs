//! `[writeback]`: after each run of a sync (and each skipped one), the runs and change log
//! entries it has past its mark (`state::writeback`) are written to the writeback database in
//! batches, and the mark moved after each. A failure warns on the run and leaves the rest to
//! the sync's next run: nothing is lost while the change log keeps it (`[state] keep_changes`).

use super::{Engine, SyncReport};
use crate::project::config::WritebackConfig;
use crate::source::warehouse::writeback::{ChangeRow, RunRow};
use crate::source::warehouse::WarehouseState;
use crate::state::{LoggedChange, RunRecord, WritebackMark};

/// Entries per batch (one transaction in the writeback database each).
const BATCH: i64 = 1_000;

impl Engine {
    /// Writes what the sync has not written yet; a failure becomes a warning on the report.
    pub(super) async fn write_back(&self, sync: &str, report: &mut SyncReport) {
        if self.writeback.is_none() {
            return;
        }
        if let Err(e) = self.write_back_all(sync).await {
            report.warn(format!("[writeback]: {e}; what was not written is written after the sync's next run"));
        }
    }

    /// Every run and change of the sync past its mark, then the mark: (runs, changes) written.
    pub async fn write_back_all(&self, sync: &str) -> Result<(u64, u64), String> {
        let Some((config, target)) = self.writeback_target()? else { return Ok((0, 0)) };
        use std::sync::atomic::Ordering;
        // The tables are made once per process, and again after a write failed (someone may
        // have dropped one).
        if !self.writeback_ready.load(Ordering::Relaxed) {
            target.ensure_log(&config.schema).await.map_err(|e| e.to_string())?;
            self.writeback_ready.store(true, Ordering::Relaxed);
        }
        let result = self.write_back_from(sync, config, target).await;
        if result.is_err() {
            self.writeback_ready.store(false, Ordering::Relaxed);
        }
        result
    }

    async fn write_back_from(&self, sync: &str, config: &WritebackConfig, target: &WarehouseState) -> Result<(u64, u64), String> {
        let mut mark = self.store.writeback_mark(sync).await.map_err(|e| e.to_string())?;
        let mut written = (0, 0);
        loop {
            let runs = self.store.runs_ended_after(sync, &mark.runs_through, BATCH).await.map_err(|e| e.to_string())?;
            let Some(last) = runs.last().and_then(|r| r.finished_at.clone()) else { break };
            let rows: Vec<RunRow> = runs.iter().map(run_row).collect();
            target.write_log(&config.schema, &rows, &[]).await.map_err(|e| e.to_string())?;
            written.0 += rows.len() as u64;
            mark = WritebackMark { runs_through: last, ..mark };
            self.store.set_writeback_mark(sync, &mark).await.map_err(|e| e.to_string())?;
        }
        loop {
            let changes = self.store.changes_after(sync, mark.changes_through, BATCH).await.map_err(|e| e.to_string())?;
            let Some(last) = changes.last().map(|c| c.id) else { break };
            let rows: Vec<ChangeRow> = changes.into_iter().map(change_row).collect();
            target.write_log(&config.schema, &[], &rows).await.map_err(|e| e.to_string())?;
            written.1 += rows.len() as u64;
            mark = WritebackMark { changes_through: last, ..mark };
            self.store.set_writeback_mark(sync, &mark).await.map_err(|e| e.to_string())?;
        }
        Ok(written)
    }

    /// `check`: the writeback's tables exist or can be made. `None` without `[writeback]`.
    pub async fn check_writeback(&self) -> Option<Result<String, String>> {
        let result = async {
            let Some((config, target)) = self.writeback_target()? else { return Ok(None) };
            target.ensure_log(&config.schema).await.map_err(|e| e.to_string())?;
            Ok(Some(format!("run history and change log -> source `{}`, {}.sluice_runs and .sluice_changes", config.source, config.schema)))
        };
        result.await.transpose()
    }

    /// `[writeback]` and the source's tables it writes to; `None` without it.
    fn writeback_target(&self) -> Result<Option<(&WritebackConfig, &WarehouseState)>, String> {
        let Some(config) = &self.writeback else { return Ok(None) };
        let source = self.source(&config.source).map_err(|e| e.to_string())?;
        // Config loading refuses a command source, the only kind without tables.
        let target = source.warehouse().ok_or_else(|| format!("source `{}` cannot hold the writeback's tables (a bug)", config.source))?;
        Ok(Some((config, target)))
    }
}

fn run_row(r: &RunRecord) -> RunRow {
    RunRow {
        run_id: r.id.clone(),
        sync: r.sync.clone(),
        started_at: r.started_at.clone(),
        finished_at: r.finished_at.clone(),
        status: r.status.map(|s| s.as_str()).unwrap_or("unknown").to_string(),
        full_resync: r.full_resync,
        counts: [r.rows_read, r.added, r.changed, r.unchanged, r.removed, r.written, r.rejected, r.retryable, r.batches],
        error: r.error.clone(),
    }
}

fn change_row(c: LoggedChange) -> ChangeRow {
    ChangeRow {
        id: c.id,
        run_id: c.run_id,
        sync: c.sync,
        row_key: c.row_key,
        op: c.op,
        outcome: c.outcome,
        destination_id: c.destination_id,
        error: c.error,
        fields: c.fields,
        changed_at: c.changed_at,
    }
}
