//! The warehouse diff on Postgres. Canonical text: session `TimeZone` UTC and
//! `extra_float_digits` 2 (`POSTGRES_SETTINGS`, set for the diff's transaction: what sqlx sets
//! on every connection, so the model sees the session it sees with the local diff, pinned
//! against a URL's `options`), then
//!
//! - `sluice_key  = json_build_array(k1, k2, ...)::text`
//! - `fingerprint = md5(json_build_array('<configuration fingerprint>', c1, c2, ...)::text)`
//!
//! (`json`, not `jsonb`: the same text for the same values, without building a `jsonb` first; a
//! third less time for the whole query at 2M rows. A `json` column's text is taken as stored.)
//! Duplicates are counted by the key columns themselves when they sort (no text to compare).
//!
//! One statement: the model with its keys, fingerprints and key counts, `FULL JOIN` the sync's
//! table, then one row with the model's count.

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row as _;

use super::{Applied, DiffSpec, Sorted, CLEARED};
use crate::source::SourceError;

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `json_build_array` over `exprs`, nested so no call passes the 100 arguments a Postgres
/// function takes at most.
fn json_array(exprs: &[String]) -> String {
    if exprs.len() <= 90 {
        return format!("json_build_array({})", exprs.join(", "));
    }
    let parts: Vec<String> = exprs.chunks(90).map(json_array).collect();
    json_array(&parts)
}

/// The diff query over `model` (already filtered by a cursor, if any), whose columns are
/// `columns`: the model's columns, then [`EXTRA`], one row per added, changed, duplicate
/// (`sluice_n` > 1) and, with `removals`, removed row (its model columns NULL), and last one
/// row whose `sluice_change` is `total` and `sluice_n` the model's row count.
pub fn sql(model: &str, columns: &[String], spec: &DiffSpec, schema: &str) -> String {
    let col = |c: &str| format!("sluice_model.{}", quote(c));
    let key_columns: Vec<String> = spec.key_columns.iter().map(|c| col(c)).collect();
    let key = json_array(&key_columns);
    // Sorting by the key's own columns is cheaper than by its text, where they sort at all.
    let partition = if spec.sortable_keys { key_columns.join(", ") } else { format!("{key}::text") };
    let mut fp_parts = vec![format!("'{}'::text", spec.salt.replace('\'', "''"))];
    fp_parts.extend(spec.fp_columns.iter().map(|c| col(c)));
    let fp = format!("md5({}::text)", json_array(&fp_parts));
    let table = match spec.table_exists {
        true => format!("{}.{}", quote(schema), quote(&spec.table)),
        false => "(SELECT NULL::text AS sluice_key, NULL::text AS key_hash, NULL::text AS fingerprint WHERE FALSE)".to_string(),
    };
    let join = if spec.removals { "FULL JOIN" } else { "LEFT JOIN" };
    let wanted = spec.wanted();
    let nulls: Vec<String> = columns.iter().map(|c| format!("z.{}", quote(c))).collect();
    format!(
        "WITH sluice_m AS (\n\
         SELECT sluice_model.*, {key}::text AS sluice_key, {fp} AS sluice_fp, COUNT(*) OVER (PARTITION BY {partition}) AS sluice_n\n\
         FROM (\n{model}\n) AS sluice_model\n\
         ), sluice_d AS (\n\
         SELECT m.*, s.key_hash AS sluice_hash, s.fingerprint AS sluice_was,\n\
         CASE WHEN m.sluice_key IS NULL THEN 'removed' WHEN s.sluice_key IS NULL THEN 'added' ELSE 'changed' END AS sluice_change\n\
         FROM sluice_m AS m {join} {table} AS s ON s.sluice_key = m.sluice_key\n\
         WHERE m.sluice_key IS NULL OR {wanted}\n\
         )\n\
         SELECT * FROM sluice_d\n\
         UNION ALL\n\
         SELECT {}NULL::text, NULL::text, (SELECT COUNT(*) FROM sluice_m), NULL::text, NULL::text, 'total'\n\
         FROM (SELECT 1) AS sluice_one LEFT JOIN sluice_m AS z ON FALSE",
        nulls.iter().map(|n| format!("{n}, ")).collect::<String>()
    )
}

/// The session settings the canonical text depends on, for the diff's transaction.
pub const POSTGRES_SETTINGS: [&str; 2] = ["SET LOCAL TimeZone = 'UTC'", "SET LOCAL extra_float_digits = 2"];

/// The tables sluice keeps in a Postgres source: a connection pool of its own, which may write
/// (the models' connections cannot), used for these tables only.
pub struct PgState {
    pub(super) pool: PgPool,
    pub schema: String,
}

impl PgState {
    pub fn new(options: sqlx::postgres::PgConnectOptions, schema: &str) -> PgState {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(std::time::Duration::from_secs(15))
            .connect_lazy_with(options.application_name("sluice-state"));
        PgState { pool, schema: schema.to_string() }
    }

    fn failed(&self, what: &str, e: sqlx::Error) -> SourceError {
        super::failed(&format!("schema `{}`", self.schema), what, e)
    }

    /// What the role lacks to keep the sync's table, as the GRANTs that would give it; empty
    /// when it has it all. The schema need not exist yet (then: CREATE on the database).
    pub async fn missing_grants(&self, table: &str) -> Result<Vec<String>, SourceError> {
        let row = sqlx::query(
            "SELECT current_user::text, current_database()::text, \
             EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1), \
             has_database_privilege(current_database(), 'CREATE'), \
             CASE WHEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) THEN has_schema_privilege($1, 'CREATE') AND has_schema_privilege($1, 'USAGE') END, \
             CASE WHEN to_regclass(quote_ident($1) || '.' || quote_ident($2)) IS NOT NULL \
                  THEN has_table_privilege(quote_ident($1) || '.' || quote_ident($2), 'SELECT, INSERT, UPDATE, DELETE') END",
        )
        .bind(&self.schema)
        .bind(table)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.failed("checking privileges", e))?;
        let user: String = row.try_get(0).map_err(|e| self.failed("checking privileges", e))?;
        let database: String = row.try_get(1).map_err(|e| self.failed("checking privileges", e))?;
        let exists: bool = row.try_get(2).map_err(|e| self.failed("checking privileges", e))?;
        let on_database: bool = row.try_get(3).map_err(|e| self.failed("checking privileges", e))?;
        let on_schema: Option<bool> = row.try_get(4).map_err(|e| self.failed("checking privileges", e))?;
        let on_table: Option<bool> = row.try_get(5).map_err(|e| self.failed("checking privileges", e))?;
        let (schema, user_q) = (quote(&self.schema), quote(&user));
        let mut grants = Vec::new();
        if !exists && !on_database {
            grants.push(format!("GRANT CREATE ON DATABASE {} TO {user_q};", quote(&database)));
        }
        if on_schema == Some(false) {
            grants.push(format!("GRANT USAGE, CREATE ON SCHEMA {schema} TO {user_q};"));
        }
        if on_table == Some(false) {
            grants.push(format!("GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.{} TO {user_q};", quote(table)));
        }
        Ok(grants)
    }

    pub async fn exists(&self, table: &str) -> Result<bool, SourceError> {
        sqlx::query_scalar::<_, bool>("SELECT to_regclass(quote_ident($1) || '.' || quote_ident($2)) IS NOT NULL")
            .bind(&self.schema)
            .bind(table)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.failed("looking for the sync's table", e))
    }

    /// Creates the schema and the sync's table when missing.
    pub async fn ensure(&self, table: &str) -> Result<(), SourceError> {
        let schema = quote(&self.schema);
        let exists = sqlx::query("SELECT 1 FROM pg_namespace WHERE nspname = $1")
            .bind(&self.schema)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.failed("looking for the schema", e))?
            .is_some();
        if !exists {
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .execute(&self.pool)
                .await
                .map_err(|e| self.failed("creating the schema", e))?;
        }
        let t = format!("{schema}.{}", quote(table));
        for sql in [
            format!(
                "CREATE TABLE IF NOT EXISTS {t} (sluice_key text PRIMARY KEY, key_hash text NOT NULL, fingerprint text NOT NULL, \
                 updated_at timestamptz NOT NULL DEFAULT now())"
            ),
            format!("CREATE INDEX IF NOT EXISTS {} ON {t} (key_hash)", quote(&format!("{table}_by_hash"))),
        ] {
            sqlx::query(&sql).execute(&self.pool).await.map_err(|e| self.failed("creating the sync's table", e))?;
        }
        Ok(())
    }

    /// Records one committed batch's written rows, in one transaction.
    pub async fn commit(&self, table: &str, rows: &[Applied<'_>]) -> Result<(), SourceError> {
        let t = format!("{}.{}", quote(&self.schema), quote(table));
        let sorted = Sorted::of(rows);
        let mut tx = self.pool.begin().await.map_err(|e| self.failed("recording a batch", e))?;
        if !sorted.holds.is_empty() {
            let (keys, (hashes, fps)): (Vec<&str>, (Vec<&str>, Vec<&str>)) = sorted.holds.iter().map(|&(k, h, f)| (k, (h, f))).unzip();
            let sql = format!(
                "INSERT INTO {t} (sluice_key, key_hash, fingerprint) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[]) \
                 ON CONFLICT (sluice_key) DO UPDATE SET key_hash = excluded.key_hash, fingerprint = excluded.fingerprint, updated_at = now()"
            );
            sqlx::query(&sql)
                .bind(&keys)
                .bind(&hashes)
                .bind(&fps)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.failed("recording a batch", e))?;
        }
        for (hashes, sql) in [
            (&sorted.deleted, format!("DELETE FROM {t} WHERE key_hash = ANY($1)")),
            (&sorted.cleared, format!("UPDATE {t} SET fingerprint = '{CLEARED}', updated_at = now() WHERE key_hash = ANY($1)")),
        ] {
            if !hashes.is_empty() {
                sqlx::query(&sql).bind(hashes).execute(&mut *tx).await.map_err(|e| self.failed("recording removals", e))?;
            }
        }
        tx.commit().await.map_err(|e| self.failed("recording a batch", e))
    }

    /// Forgets every row of the sync's table (`sluice reset`); a missing table is nothing to do.
    pub async fn clear(&self, table: &str) -> Result<(), SourceError> {
        let t = format!("{}.{}", quote(&self.schema), quote(table));
        let sql = format!("DO $$ BEGIN IF to_regclass('{}') IS NOT NULL THEN DELETE FROM {t}; END IF; END $$", t.replace('\'', "''"));
        sqlx::raw_sql(&sql).execute(&self.pool).await.map(|_| ()).map_err(|e| self.failed("resetting", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_models_nest_their_arrays_under_the_argument_limit() {
        let cols: Vec<String> = (0..250).map(|i| format!("c{i}")).collect();
        let sql = json_array(&cols);
        let calls = sql.matches("json_build_array(").count();
        assert_eq!(calls, 4, "{sql}");
        for call in sql.split("json_build_array(").skip(1) {
            let args = call.split(')').next().unwrap_or("").split(", ").count();
            assert!(args <= 100, "{args}");
        }
    }

    #[test]
    fn the_query_keeps_the_model_whole_and_quotes_names() {
        let spec = DiffSpec { fp_columns: vec!["odd\"name".into()], ..super::super::sample_spec() };
        let sql_of = |spec: DiffSpec| sql("SELECT 1 AS id -- a comment", &["id".into(), "odd\"name".into()], &spec, "sluice_state");
        let sql = sql_of(spec.clone());
        assert!(sql.contains("SELECT 1 AS id -- a comment\n) AS sluice_model"), "{sql}");
        assert!(sql.contains("sluice_model.\"odd\"\"name\""), "{sql}");
        assert!(sql.contains("FULL JOIN \"sluice_state\".\"t\""), "{sql}");
        assert!(!sql.contains("OR TRUE") && sql.contains("s.fingerprint <> m.sluice_fp"), "{sql}");
        let insert = sql_of(DiffSpec { changes: false, table_exists: false, ..spec });
        assert!(!insert.contains("s.fingerprint <> m.sluice_fp") && !insert.contains("\"sluice_state\".\"t\""), "{insert}");
    }
}
