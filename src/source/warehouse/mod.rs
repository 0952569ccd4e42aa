//! The diff in the source database (`diff = "warehouse"`), for models too big to diff in
//! sluice's memory. sluice keeps, in a schema of its own in the source database, one table per
//! sync: the rows the destination holds, as (`sluice_key`, `key_hash`, `fingerprint`). A run
//! asks the database for the model joined with that table, and only the added, changed and
//! removed rows leave the database; the engine sends them as ever, and after each batch the
//! destination accepted (and the state store recorded), `WarehouseState::commit` records it
//! here, in a transaction of the source's.
//!
//! The key and fingerprint are computed in SQL, over a canonical text of the values (stable
//! across runs for the same data; it need not match sluice's own fingerprints, which are
//! never compared with these), over the key columns and the columns the mapping reads (every
//! column when a template reads them). The configuration fingerprint is in it, so a changed
//! definition changes every row. Each database's form is in its file: `postgres`, `mysql`,
//! `duckdb` (whose tables are in files of sluice's own: a DuckDB source is opened read-only).
//! Written rows get their fingerprint; written deletes lose their row; cleared records keep it
//! with the fingerprint `cleared`.

#[cfg(feature = "duckdb")]
mod duckdb;
mod mysql;
mod postgres;
pub mod writeback;

use std::fmt::Write as _;

#[cfg(feature = "duckdb")]
pub use self::duckdb::{
    attach as duckdb_attach, busy as duckdb_busy, held as duckdb_held, literal as duckdb_literal, sql as duckdb_sql, DuckState, LOCK_WAIT,
};
use super::SourceError;
pub use mysql::{sql as mysql_sql, MysqlState};
pub use postgres::{sql as postgres_sql, PgState, POSTGRES_SETTINGS};

/// The columns a warehouse diff adds after the model's, in this order.
pub const EXTRA: [&str; 6] = ["sluice_key", "sluice_fp", "sluice_n", "sluice_hash", "sluice_was", "sluice_change"];
pub const KEY: usize = 0;
pub const FP: usize = 1;
pub const N: usize = 2;
pub const HASH: usize = 3;
pub const WAS: usize = 4;
pub const CHANGE: usize = 5;

/// The stored fingerprint of a record cleared after its row left the model.
pub const CLEARED: &str = "cleared";

/// The default schema sluice keeps its tables in.
pub const DEFAULT_SCHEMA: &str = "sluice_state";

/// What a run asks of the warehouse.
#[derive(Clone, Debug)]
pub struct DiffSpec {
    /// The sync's table, unquoted (see [`table_name`]).
    pub table: String,
    pub key_columns: Vec<String>,
    /// The columns the fingerprint covers.
    pub fp_columns: Vec<String>,
    /// The configuration fingerprint (hex), mixed into every row's.
    pub salt: String,
    /// Every row comes back, changed or not (`--full-resync`).
    pub everything: bool,
    /// Rows the table holds that left the model come back too.
    pub removals: bool,
    /// Changed rows come back too (not in insert mode, which never sends them: they would
    /// come back every run).
    pub changes: bool,
    /// The sync's table exists. A plan does not create it (a plan writes nothing): without it,
    /// every row is added.
    pub table_exists: bool,
    /// Every key column has a type the database can sort (duplicates are counted by them;
    /// else by the key's text).
    pub sortable_keys: bool,
}

impl DiffSpec {
    /// The condition on a model row `m` joined with the table's row `s` for it to come back.
    fn wanted(&self) -> String {
        let mut when = vec!["s.sluice_key IS NULL", "m.sluice_n > 1"];
        if self.changes {
            when.push("s.fingerprint <> m.sluice_fp");
        }
        if self.everything {
            when.push("TRUE");
        }
        when.join(" OR ")
    }
}

/// The table of a sync: its name in lower case letters, digits and `_`, with a short hash of
/// the name when that changed anything (so `a/b` and `a_b` do not share one).
pub fn table_name(sync: &str) -> String {
    let plain: String = sync.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    let mut name: String = plain.chars().take(40).collect();
    if name != sync {
        let _ = write!(name, "_{:08x}", xxhash_rust::xxh3::xxh3_64(sync.as_bytes()) as u32);
    }
    name
}

/// One written row, as the warehouse table records it.
pub enum Applied<'a> {
    /// Written: the destination holds the row as fingerprinted.
    Holds { key: &'a str, key_hash: String, fingerprint: &'a str },
    /// Deleted from the destination.
    Deleted { key_hash: String },
    /// Cleared in the destination (kept, fields emptied).
    Cleared { key_hash: String },
}

/// A committed batch by what the sync's table does with each row: (key, key hash, fingerprint)
/// to hold, key hashes to delete, key hashes to mark cleared.
pub(super) struct Sorted<'a> {
    pub holds: Vec<(&'a str, &'a str, &'a str)>,
    pub deleted: Vec<&'a str>,
    pub cleared: Vec<&'a str>,
}

impl<'a> Sorted<'a> {
    pub fn of(rows: &'a [Applied<'a>]) -> Sorted<'a> {
        let mut sorted = Sorted { holds: Vec::new(), deleted: Vec::new(), cleared: Vec::new() };
        for row in rows {
            match row {
                Applied::Holds { key, key_hash, fingerprint } => sorted.holds.push((key, key_hash, fingerprint)),
                Applied::Deleted { key_hash } => sorted.deleted.push(key_hash),
                Applied::Cleared { key_hash } => sorted.cleared.push(key_hash),
            }
        }
        sorted
    }
}

/// What a failed statement on sluice's tables says: where, what it was doing, and what to do.
pub(super) fn failed(place: &str, what: &str, e: sqlx::Error) -> SourceError {
    SourceError::Tables(format!("sluice's table in {place} ({what}): {e} (`sluice check` names the privileges diff = \"warehouse\" needs)"))
}

/// sluice's tables in a source database: the sync tables in `state_schema`, on connections of
/// their own that may write (the models' connections cannot), used for these tables only.
pub enum WarehouseState {
    Postgres(PgState),
    Mysql(MysqlState),
    #[cfg(feature = "duckdb")]
    Duckdb(DuckState),
}

impl WarehouseState {
    pub fn schema(&self) -> &str {
        match self {
            WarehouseState::Postgres(s) => &s.schema,
            WarehouseState::Mysql(s) => &s.schema,
            #[cfg(feature = "duckdb")]
            WarehouseState::Duckdb(s) => &s.schema,
        }
    }

    /// What the role lacks to keep the sync's table, as the GRANTs that would give it; empty
    /// when it has it all.
    pub async fn missing_grants(&self, table: &str) -> Result<Vec<String>, SourceError> {
        match self {
            WarehouseState::Postgres(s) => s.missing_grants(table).await,
            WarehouseState::Mysql(s) => s.missing_grants(table).await,
            #[cfg(feature = "duckdb")]
            WarehouseState::Duckdb(s) => s.missing_grants(table).await,
        }
    }

    /// Whether the sync's table exists.
    pub async fn exists(&self, table: &str) -> Result<bool, SourceError> {
        match self {
            WarehouseState::Postgres(s) => s.exists(table).await,
            WarehouseState::Mysql(s) => s.exists(table).await,
            #[cfg(feature = "duckdb")]
            WarehouseState::Duckdb(s) => s.exists(table).await,
        }
    }

    /// Creates the schema and the sync's table when missing.
    pub async fn ensure(&self, table: &str) -> Result<(), SourceError> {
        match self {
            WarehouseState::Postgres(s) => s.ensure(table).await,
            WarehouseState::Mysql(s) => s.ensure(table).await,
            #[cfg(feature = "duckdb")]
            WarehouseState::Duckdb(s) => s.ensure(table).await,
        }
    }

    /// Records one committed batch's written rows, in one transaction.
    pub async fn commit(&self, table: &str, rows: &[Applied<'_>]) -> Result<(), SourceError> {
        match self {
            WarehouseState::Postgres(s) => s.commit(table, rows).await,
            WarehouseState::Mysql(s) => s.commit(table, rows).await,
            #[cfg(feature = "duckdb")]
            WarehouseState::Duckdb(s) => s.commit(table, rows).await,
        }
    }

    /// The run is done committing: lets go of what it held open (a DuckDB file's write lock).
    pub async fn release(&self, table: &str) {
        #[cfg(feature = "duckdb")]
        if let WarehouseState::Duckdb(s) = self {
            s.release(table).await;
        }
        let _ = table;
    }

    /// Forgets every row of the sync's table (`sluice reset`); a missing table is nothing to do.
    pub async fn clear(&self, table: &str) -> Result<(), SourceError> {
        match self {
            WarehouseState::Postgres(s) => s.clear(table).await,
            WarehouseState::Mysql(s) => s.clear(table).await,
            #[cfg(feature = "duckdb")]
            WarehouseState::Duckdb(s) => s.clear(table).await,
        }
    }
}

/// The columns of a diff's rows that are the model's, NULL: `prefix.col` for each, quoted by
/// `quote`, each followed by a comma.
pub(super) fn null_columns(columns: &[String], prefix: &str, quote: impl Fn(&str) -> String) -> String {
    columns.iter().map(|c| format!("{prefix}.{}, ", quote(c))).collect()
}

/// The spec the dialects' unit tests build their queries from.
#[cfg(test)]
pub(super) fn sample_spec() -> DiffSpec {
    DiffSpec {
        table: "t".into(),
        key_columns: vec!["id".into()],
        fp_columns: Vec::new(),
        salt: "abc".into(),
        everything: false,
        removals: true,
        changes: true,
        table_exists: true,
        sortable_keys: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_and_distinct() {
        assert_eq!(table_name("contacts"), "contacts");
        let (a, b) = (table_name("crm/contacts"), table_name("crm_contacts"));
        assert!(a.starts_with("crm_contacts_") && b == "crm_contacts", "{a} {b}");
        assert_ne!(table_name("Contacts"), table_name("contacts"));
        assert!(table_name(&"x".repeat(200)).len() <= 49);
    }
}
