//! The packed form of a sync's state: `sync_row_pages` holds every (key hash, fingerprint) pair
//! of `sync_rows`, in up to 256 pages by the key hash's first byte, each page one blob of
//! 32-byte records in key order. A run loads a million pairs as 256 rows instead of a million.
//!
//! Invariant: a sync's pages hold exactly the pairs of its `sync_rows`. Only `fold` (which
//! calls [`Store::update_pages`] in its transaction) and `reset` change either.

use futures_util::TryStreamExt;
use sqlx::{Any, Row, Transaction};

use super::{hash_from, Dialect, StateError, Store};
use crate::diff::Stored;
use crate::value::Hash128;

/// Staged entries a fold merges into the pages in memory. A fold of more (a first sync) packs
/// the pages again from `sync_rows`, in SQL, which holds none of them in sluice's memory.
pub const FOLD_MERGE_MAX: i64 = 100_000;

/// Bytes per packed pair: the key hash, then the fingerprint, both big-endian.
const PAIR: usize = 32;

fn page_of(key: Hash128) -> u8 {
    (key >> 120) as u8
}

fn corrupt(sync: &str, why: String) -> StateError {
    StateError::Corrupt(format!("the packed state of `{sync}`: {why}; `sluice reset {sync}` makes the next run send every row again"))
}

/// The pairs of one page's blob.
fn pairs<'a>(sync: &str, blob: &'a [u8]) -> Result<impl Iterator<Item = (Hash128, Hash128)> + 'a, StateError> {
    if !blob.len().is_multiple_of(PAIR) {
        return Err(corrupt(sync, format!("a page of {} bytes is not whole 32-byte pairs", blob.len())));
    }
    Ok(blob.chunks_exact(PAIR).map(|p| (hash_from(&p[..16]), hash_from(&p[16..]))))
}

fn push(out: &mut Vec<u8>, key: Hash128, fingerprint: Hash128) {
    out.extend_from_slice(&key.to_be_bytes());
    out.extend_from_slice(&fingerprint.to_be_bytes());
}

/// One change per key, in key order, from staged entries in (key, staging) order: the newest
/// upsert of a key wins, and an upsert wins over a delete, as `fold` applies them to `sync_rows`.
pub(super) fn resolve(entries: &[(Hash128, Option<Hash128>)]) -> Vec<(Hash128, Option<Hash128>)> {
    let mut out: Vec<(Hash128, Option<Hash128>)> = Vec::with_capacity(entries.len());
    for &(key, fingerprint) in entries {
        match out.last_mut() {
            Some(last) if last.0 == key => last.1 = fingerprint.or(last.1),
            _ => out.push((key, fingerprint)),
        }
    }
    out
}

/// Pairs in key order with `changes` (in key order, one per key; `None` deletes) applied, handed
/// to `emit` in key order.
pub(super) fn merge(
    old: impl Iterator<Item = (Hash128, Hash128)>,
    changes: &[(Hash128, Option<Hash128>)],
    mut emit: impl FnMut(Hash128, Hash128),
) {
    let mut old = old.peekable();
    for &(key, fingerprint) in changes {
        while let Some((k, f)) = old.next_if(|(k, _)| *k < key) {
            emit(k, f);
        }
        old.next_if(|(k, _)| *k == key);
        if let Some(f) = fingerprint {
            emit(key, f);
        }
    }
    old.for_each(|(k, f)| emit(k, f));
}

/// A page's blob with `changes` applied.
fn merge_page(old: impl Iterator<Item = (Hash128, Hash128)>, changes: &[(Hash128, Option<Hash128>)]) -> Vec<u8> {
    let mut out = Vec::new();
    merge(old, changes, |k, f| push(&mut out, k, f));
    out
}

impl Store {
    /// Every (key hash, fingerprint) pair `sync_rows` holds for `sync`, from its pages.
    pub(super) async fn read_pages(&self, sync: &str) -> Result<Stored, StateError> {
        let m = self.dialect;
        // Sized up front (a blob's length is known without reading it): growing a list of
        // millions of pairs would copy it and take half as much again while it does.
        let bytes: Option<i64> = sqlx::query_scalar(&format!("SELECT SUM(length(pairs)) FROM sync_row_pages WHERE sync = {}", m.nth(1)))
            .bind(sync)
            .fetch_one(&self.pool)
            .await?;
        let rows = usize::try_from(bytes.unwrap_or(0)).unwrap_or(0) / PAIR;
        let mut all = Vec::with_capacity(rows);
        // In page order, each page in key order: the pairs arrive sorted.
        let sql = format!("SELECT pairs FROM sync_row_pages WHERE sync = {} ORDER BY page", m.nth(1));
        let mut pages = sqlx::query(&sql).bind(sync).fetch(&self.pool);
        while let Some(page) = pages.try_next().await? {
            all.extend(pairs(sync, page.try_get::<&[u8], _>(0)?)?);
        }
        Ok(Stored::from_pairs(all))
    }

    /// Brings the pages of `sync` up to date with its staged entries up to `last`, in `fold`'s
    /// transaction, after `sync_rows` took them.
    pub(super) async fn update_pages(&self, tx: &mut Transaction<'_, Any>, sync: &str, last: i64) -> Result<(), StateError> {
        let m = self.dialect;
        let staged = format!("FROM sync_rows_staged WHERE sync = {} AND id <= {}", m.nth(1), m.nth(2));
        let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) {staged}")).bind(sync).bind(last).fetch_one(&mut **tx).await?;
        if count > FOLD_MERGE_MAX {
            return self.repack(tx, sync).await;
        }
        let mut entries: Vec<(Hash128, Option<Hash128>)> = Vec::with_capacity(count as usize);
        {
            let sql = format!("SELECT key_hash, fingerprint {staged} ORDER BY key_hash, id");
            let mut rows = sqlx::query(&sql).bind(sync).bind(last).fetch(&mut **tx);
            while let Some(row) = rows.try_next().await? {
                let fingerprint = row.try_get::<Option<Vec<u8>>, _>(1)?.map(|f| hash_from(&f));
                entries.push((hash_from(&row.try_get::<Vec<u8>, _>(0)?), fingerprint));
            }
        }
        let changes = resolve(&entries);
        let read = format!("SELECT pairs FROM sync_row_pages WHERE sync = {} AND page = {}", m.nth(1), m.nth(2));
        let write = format!(
            "INSERT INTO sync_row_pages (sync, page, pairs) VALUES ({}, {}, {}) \
             ON CONFLICT (sync, page) DO UPDATE SET pairs = excluded.pairs",
            m.nth(1),
            m.nth(2),
            m.nth(3)
        );
        let delete = format!("DELETE FROM sync_row_pages WHERE sync = {} AND page = {}", m.nth(1), m.nth(2));
        for page in changes.chunk_by(|a, b| page_of(a.0) == page_of(b.0)) {
            let number = vec![page_of(page[0].0)];
            let old: Option<Vec<u8>> = sqlx::query_scalar(&read).bind(sync).bind(number.clone()).fetch_optional(&mut **tx).await?;
            let old = old.unwrap_or_default();
            // Pages are written in key order; a merge must not depend on it to stay correct.
            let mut old: Vec<_> = pairs(sync, &old)?.collect();
            if !old.is_sorted_by_key(|p| p.0) {
                old.sort_unstable_by_key(|p| p.0);
            }
            let new = merge_page(old.into_iter(), page);
            if new.is_empty() {
                sqlx::query(&delete).bind(sync).bind(number).execute(&mut **tx).await?;
            } else {
                sqlx::query(&write).bind(sync).bind(number).bind(new).execute(&mut **tx).await?;
            }
        }
        Ok(())
    }

    /// Packs every page of `sync` again from `sync_rows`, in the database, one page (one key
    /// range of the clustered primary key) per statement: no sort of the whole sync, and work
    /// and memory per statement bounded by a page.
    async fn repack(&self, tx: &mut Transaction<'_, Any>, sync: &str) -> Result<(), StateError> {
        let m = self.dialect;
        sqlx::query(&format!("DELETE FROM sync_row_pages WHERE sync = {}", m.nth(1))).bind(sync).execute(&mut **tx).await?;
        // SQLite aggregates in the order the subquery reads the key range; Postgres is told.
        let agg = match m {
            Dialect::Sqlite => "CAST(group_concat(pair, '') AS BLOB)",
            Dialect::Postgres => "string_agg(pair, ''::bytea ORDER BY key_hash)",
        };
        // (sync, page) for the inserted row, then (sync, page, next page) for the key range:
        // SQLite's `?` binds in order of appearance, Postgres' `$n` reuse the first two.
        let (row, key, from, below) = match m {
            Dialect::Sqlite => ("?, ?", "?", "?", "?"),
            Dialect::Postgres => ("$1, $2", "$1", "$2", "$3"),
        };
        let statement = |upper: bool| {
            let below = if upper { format!(" AND key_hash < {below}") } else { String::new() };
            format!(
                "INSERT INTO sync_row_pages (sync, page, pairs) SELECT {row}, {agg} FROM \
                 (SELECT key_hash, key_hash || fingerprint AS pair FROM sync_rows \
                 WHERE sync = {key} AND key_hash >= {from}{below} ORDER BY key_hash) AS page HAVING COUNT(*) > 0"
            )
        };
        let (inner, last) = (statement(true), statement(false));
        for page in 0..=255u8 {
            let mut q = sqlx::query(if page < 255 { &inner } else { &last }).bind(sync).bind(vec![page]);
            if m == Dialect::Sqlite {
                q = q.bind(sync).bind(vec![page]);
            }
            if page < 255 {
                q = q.bind(vec![page + 1]);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::hash_bytes;
    use super::*;

    fn blob(pairs: &[(Hash128, Hash128)]) -> Vec<u8> {
        let mut out = Vec::new();
        pairs.iter().for_each(|&(k, f)| push(&mut out, k, f));
        out
    }

    #[test]
    fn a_merge_inserts_replaces_and_deletes_in_key_order() {
        let old = blob(&[(10, 1), (20, 2), (30, 3)]);
        let changes = [(5, Some(50)), (20, None), (25, Some(250)), (30, Some(31)), (40, None), (99, Some(9))];
        let new = merge_page(pairs("s", &old).unwrap(), &changes);
        assert_eq!(new, blob(&[(5, 50), (10, 1), (25, 250), (30, 31), (99, 9)]));
        assert_eq!(merge_page(pairs("s", &blob(&[(1, 1)])).unwrap(), &[(1, None)]), Vec::<u8>::new());
    }

    #[test]
    fn the_newest_upsert_of_a_key_wins_and_beats_a_delete() {
        let staged = [(1, Some(10)), (1, Some(11)), (2, Some(20)), (2, None), (3, None), (3, None), (4, None), (4, Some(40))];
        assert_eq!(resolve(&staged), [(1, Some(11)), (2, Some(20)), (3, None), (4, Some(40))]);
    }

    #[test]
    fn pages_split_by_the_first_byte_of_the_stored_hash() {
        assert_eq!(page_of(u128::MAX), 0xff);
        assert_eq!(page_of((0x07 << 120) | 1), 0x07);
        let key = (0x07 << 120) | 0xff;
        assert_eq!(hash_bytes(key)[0], page_of(key), "the page is the first byte as stored (big-endian), as SQL's substr sees it");
        assert!(pairs("s", &[0u8; 31]).is_err(), "a torn page is damage, not data");
    }
}
