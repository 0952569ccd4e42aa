//! The commit path of row state: `commit_batch` records one batch's outcomes in one transaction,
//! appending written rows to `sync_rows_staged`; `fold` moves a sync's staged rows into
//! `sync_rows` in key order when a run ends (or before the next run reads the state).

use sqlx::{Any, Transaction};

use super::{hash_bytes, hash_hex, now, packed, Committed, Dialect, StateError, Store, CHUNK, HASH_HEX};
use crate::destinations::{Op, RowOutcome};

/// The fingerprint of a staged delete in a row's string form (see `Store::stage`): not hex,
/// so it cannot be a fingerprint's, and as wide as one, so the stored key starts at the same
/// place in every row.
const DELETED: &str = "--------------------------------";
const _: () = assert!(DELETED.len() == HASH_HEX);

const STAGE: &str = "INSERT INTO sync_rows_staged (sync, key_hash, key_json, fingerprint, destination_id, updated_at)";

/// Postgres: a sync's commits share this transaction-scoped advisory lock and its fold takes it
/// alone, so a fold never overlaps a commit of the sync (see `fold`). Wrapped in a count: the
/// `Any` driver cannot decode the function's `void` result. The schema is in the key, so
/// stores in different schemas of one database do not wait on each other.
fn fold_lock(shared: bool) -> String {
    let f = if shared { "pg_advisory_xact_lock_shared" } else { "pg_advisory_xact_lock" };
    format!("SELECT COUNT(*) FROM (SELECT {f}(hashtextextended('sluice/fold/' || COALESCE(current_schema(), '') || '/' || $1, 0))) AS l")
}

impl Store {
    /// Records one batch's outcomes in one transaction: written rows advance `sync_rows` (a
    /// written delete removes the row) and clear their errors; other rows record an error.
    pub async fn commit_batch(&self, sync: &str, run_id: &str, items: &[Committed<'_>]) -> Result<(), StateError> {
        let now = now();
        let mut tx = self.pool.begin().await?;
        if self.dialect == Dialect::Postgres {
            sqlx::query(&fold_lock(true)).bind(sync).execute(&mut *tx).await?;
        }
        let (written, failed): (Vec<&Committed>, Vec<&Committed>) =
            items.iter().partition(|c| matches!(c.outcome, RowOutcome::Written { .. }));

        // Written rows are staged (appended), not written into the clustered `sync_rows`: see
        // `fold`.
        if !written.is_empty() {
            self.stage(&mut tx, sync, &now, &written).await?;
        }
        // Most syncs have no row errors: one probe instead of a 500-key delete per batch.
        let has_errors =
            sqlx::query("SELECT 1 FROM row_errors WHERE sync = $1 LIMIT 1").bind(sync).fetch_optional(&mut *tx).await?.is_some();
        if has_errors {
            let keys: Vec<_> = written.iter().map(|c| c.key_hash).collect();
            self.delete_errors(&mut tx, sync, &keys).await?;
        }
        for chunk in failed.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO row_errors (sync, key_hash, key_json, kind, message, attempts, first_seen, last_seen, last_run, fingerprint) \
                 VALUES {} ON CONFLICT (sync, key_hash) DO UPDATE SET key_json = excluded.key_json, kind = excluded.kind, \
                 message = excluded.message, attempts = row_errors.attempts + 1, last_seen = excluded.last_seen, \
                 last_run = excluded.last_run, fingerprint = excluded.fingerprint",
                self.dialect.value_lists(chunk.len(), 10, 1)
            );
            let mut q = sqlx::query(&sql);
            for c in chunk {
                let (kind, message) = match c.outcome {
                    RowOutcome::Rejected(m) | RowOutcome::RefusedInGroup(m) => ("rejected", m.as_str()),
                    RowOutcome::Retryable(m) => ("retryable", m.as_str()),
                    RowOutcome::Written { .. } => unreachable!("partitioned above"),
                };
                q = q
                    .bind(sync)
                    .bind(hash_bytes(c.key_hash))
                    .bind(c.key_json)
                    .bind(kind)
                    .bind(message)
                    .bind(1i64)
                    .bind(now.clone())
                    .bind(now.clone())
                    .bind(run_id)
                    .bind(hash_bytes(c.fingerprint));
            }
            q.execute(&mut *tx).await?;
        }
        self.log_changes(&mut tx, sync, run_id, items, &now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves the rows staged by `commit_batch` into `sync_rows`, in key order, in one
    /// transaction: a sequential pass over the clustered table instead of one random page per
    /// row per batch. Runs when a run ends and before any run or plan reads the state, so a run
    /// killed before its fold loses nothing. Folding is invisible: staged rows are committed
    /// state either way. Returns the number of staged entries folded.
    ///
    /// Staged entries of one key are applied in staging order (the newest upsert wins, an
    /// upsert wins over a delete), so a fold is right however many entries a key has.
    ///
    /// Every statement of a fold sees the same staged entries, so it deletes exactly what it
    /// folded. SQLite: `BEGIN IMMEDIATE` keeps every other writer out. Postgres: the fold takes
    /// the sync's fold lock alone before it reads anything, and each commit of the sync shares
    /// it (`commit_batch`); so no commit of the sync is half done while a fold runs. (Without
    /// it, a batch whose transaction got its row ids before the fold started and committed
    /// between the fold's INSERT and DELETE was deleted unfolded: lost.)
    pub async fn fold(&self, sync: &str) -> Result<u64, StateError> {
        let m = self.dialect;
        // SQLite: take the write lock at once. A read first (MAX below) and a write later fails
        // at once, busy timeout or not, if another process committed in between.
        let mut tx = match m {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.pool.begin().await?,
        };
        if m == Dialect::Postgres {
            sqlx::query(&fold_lock(false)).bind(sync).execute(&mut *tx).await?;
        }
        let last: Option<i64> = sqlx::query_scalar(&format!("SELECT MAX(id) FROM sync_rows_staged WHERE sync = {}", m.nth(1)))
            .bind(sync)
            .fetch_one(&mut *tx)
            .await?;
        let Some(last) = last else {
            // Ended here, not dropped: a dropped transaction's rollback reaches SQLite's worker
            // later, and a `begin` before it finds the connection still in a transaction.
            tx.commit().await?;
            return Ok(0);
        };
        // `id <= last`: batches committed after the fold began (other syncs' on SQLite, none of
        // this sync's) stay staged.
        let sql = format!(
            "DELETE FROM sync_rows WHERE sync = {} AND key_hash IN \
             (SELECT key_hash FROM sync_rows_staged WHERE sync = {} AND id <= {} AND fingerprint IS NULL)",
            m.nth(1),
            m.nth(2),
            m.nth(3)
        );
        sqlx::query(&sql).bind(sync).bind(sync).bind(last).execute(&mut *tx).await?;
        let columns = "sync, key_hash, key_json, fingerprint, destination_id, updated_at";
        let staged = format!("FROM sync_rows_staged WHERE sync = {} AND id <= {} AND fingerprint IS NOT NULL", m.nth(1), m.nth(2));
        // SQLite upserts row by row in this order, so a later entry of a key overwrites an
        // earlier one; Postgres refuses to touch a row twice in one statement, so it keeps the
        // newest entry per key first.
        let select = match m {
            Dialect::Sqlite => format!("SELECT {columns} {staged} ORDER BY key_hash, id"),
            Dialect::Postgres => format!("SELECT DISTINCT ON (key_hash) {columns} {staged} ORDER BY key_hash, id DESC"),
        };
        let sql = format!(
            "INSERT INTO sync_rows ({columns}) {select} \
             ON CONFLICT (sync, key_hash) DO UPDATE SET key_json = excluded.key_json, fingerprint = excluded.fingerprint, \
             destination_id = COALESCE(excluded.destination_id, sync_rows.destination_id), updated_at = excluded.updated_at"
        );
        sqlx::query(&sql).bind(sync).bind(last).execute(&mut *tx).await?;
        self.update_pages(&mut tx, sync, last).await?;
        // When the stage holds nothing else (the usual case), SQLite empties the whole table at
        // once instead of deleting a million rows one by one. Only SQLite: its write lock, taken
        // at BEGIN, keeps other writers out until the commit; a Postgres store's other runs may
        // stage rows between this check and the delete.
        let others = m == Dialect::Postgres
            || sqlx::query(&format!("SELECT 1 FROM sync_rows_staged WHERE sync <> {} OR id > {} LIMIT 1", m.nth(1), m.nth(2)))
                .bind(sync)
                .bind(last)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
        let sql = match others {
            true => format!("DELETE FROM sync_rows_staged WHERE sync = {} AND id <= {}", m.nth(1), m.nth(2)),
            false => "DELETE FROM sync_rows_staged".to_string(),
        };
        let clear = sqlx::query(&sql);
        let clear = if others { clear.bind(sync).bind(last) } else { clear };
        let folded = clear.execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(folded)
    }

    /// Appends a batch's written rows to `sync_rows_staged`; a delete is staged with no
    /// fingerprint. The batch travels as one JSON array that the database unpacks
    /// (`Dialect::json_rows`): four binds per row through sqlx's `Any` driver cost more than
    /// SQLite's insert of the row itself.
    ///
    /// Rows without a record id (every row of most destinations) travel as one string each:
    /// key hash and fingerprint in hex, 32 characters apiece (the fingerprint [`DELETED`] for a
    /// delete), then the stored key. SQL cuts them apart with `substr`. As arrays of fields,
    /// SQLite renders each row's array back to text and parses it again to read a field: about
    /// a quarter of its thread's time in a full sync (docs/benchmarks.md). Rows with record ids
    /// go as arrays.
    async fn stage(&self, tx: &mut Transaction<'_, Any>, sync: &str, now: &str, written: &[&Committed<'_>]) -> Result<(), StateError> {
        let m = self.dialect;
        let (sql, rows) = if written.iter().all(|c| record_id(c).is_none()) {
            // One allocation a row: this runs for every row a full sync sends.
            let rows: Vec<String> = written
                .iter()
                .map(|c| match c.op {
                    Op::Delete => format!("{:0HASH_HEX$x}{DELETED}{}", c.key_hash, c.key_json),
                    _ => format!("{:0HASH_HEX$x}{:0HASH_HEX$x}{}", c.key_hash, c.fingerprint, c.key_json),
                })
                .collect();
            let (row, w) = (m.text_row(), HASH_HEX);
            let sql = format!(
                "{STAGE} SELECT {}, {}, substr({row}, {}), {}, NULL, {} {}",
                m.nth(1),
                m.unhex(&format!("substr({row}, 1, {w})")),
                2 * w + 1,
                m.unhex(&format!("NULLIF(substr({row}, {}, {w}), '{DELETED}')", w + 1)),
                m.nth(2),
                m.json_rows(3)
            );
            (sql, packed(&rows)?)
        } else {
            let rows: Vec<_> = written
                .iter()
                .map(|c| {
                    let fingerprint = (c.op != Op::Delete).then(|| hash_hex(c.fingerprint));
                    (hash_hex(c.key_hash), c.key_json, fingerprint, record_id(c))
                })
                .collect();
            let sql = format!(
                "{STAGE} SELECT {}, {}, {}, {}, {}, {} {}",
                m.nth(1),
                m.unhex(&m.field(0)),
                m.field(1),
                m.unhex(&m.field(2)),
                m.field(3),
                m.nth(2),
                m.json_rows(3)
            );
            (sql, packed(&rows)?)
        };
        sqlx::query(&sql).bind(sync).bind(now).bind(rows).execute(&mut **tx).await?;
        Ok(())
    }
}

/// The record id the destination gave a written row, if any.
fn record_id<'a>(c: &Committed<'a>) -> Option<&'a str> {
    match c.outcome {
        RowOutcome::Written { destination_id } => destination_id.as_deref(),
        _ => None,
    }
}
