//! The warehouse diff on MariaDB/MySQL. Canonical text: the session's `time_zone` is `+00:00`
//! (sqlx sets it), then
//!
//! - `sluice_key  = MD5(JSON_ARRAY(k1, k2, ...))` (a hash of the key's text, so the table's key
//!   is a fixed 32 characters, whatever the key's length)
//! - `fingerprint = MD5(JSON_ARRAY('<configuration fingerprint>', c1, c2, ...))`
//!
//! There is no `FULL JOIN`: the model `LEFT JOIN` the table gives added and changed rows, a
//! `NOT EXISTS` over the table the removed ones, then one row with the model's count.

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};

use super::{null_columns, Applied, DiffSpec, Sorted, CLEARED};
use crate::source::SourceError;

fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The diff query over `model` (the sync's model, which `source::mysql` checked can only be a
/// query), whose columns are `columns`; the same rows as Postgres' (`super::postgres::sql`).
pub fn sql(model: &str, columns: &[String], spec: &DiffSpec, schema: &str) -> String {
    let col = |c: &str| format!("sluice_model.{}", quote(c));
    let key = format!("MD5(JSON_ARRAY({}))", spec.key_columns.iter().map(|c| col(c)).collect::<Vec<_>>().join(", "));
    let mut fp_parts = vec![format!("'{}'", spec.salt.replace('\'', "''").replace('\\', "\\\\"))];
    fp_parts.extend(spec.fp_columns.iter().map(|c| col(c)));
    let fp = format!("MD5(JSON_ARRAY({}))", fp_parts.join(", "));
    let table = match spec.table_exists {
        true => format!("{}.{}", quote(schema), quote(&spec.table)),
        false => "(SELECT CAST(NULL AS CHAR(32)) AS sluice_key, CAST(NULL AS CHAR(32)) AS key_hash, \
                  CAST(NULL AS CHAR(32)) AS fingerprint FROM (SELECT 1) AS e WHERE FALSE)"
            .to_string(),
    };
    let wanted = spec.wanted();
    let removed = match spec.removals {
        false => String::new(),
        true => format!(
            "UNION ALL\n\
             SELECT {}NULL, NULL, NULL, s.key_hash, s.fingerprint, 'removed'\n\
             FROM {table} AS s WHERE NOT EXISTS (SELECT 1 FROM sluice_m AS m WHERE m.sluice_key = s.sluice_key)\n",
            "NULL, ".repeat(columns.len())
        ),
    };
    format!(
        "WITH sluice_m AS (\n\
         SELECT sluice_model.*, {key} AS sluice_key, {fp} AS sluice_fp, COUNT(*) OVER (PARTITION BY {key}) AS sluice_n\n\
         FROM (\n{model}\n) AS sluice_model\n\
         )\n\
         SELECT m.*, s.key_hash AS sluice_hash, s.fingerprint AS sluice_was,\n\
         CASE WHEN s.sluice_key IS NULL THEN 'added' ELSE 'changed' END AS sluice_change\n\
         FROM sluice_m AS m LEFT JOIN {table} AS s ON s.sluice_key = m.sluice_key\n\
         WHERE {wanted}\n\
         {removed}\
         UNION ALL\n\
         SELECT {}NULL, NULL, (SELECT COUNT(*) FROM sluice_m), NULL, NULL, 'total'\n\
         FROM (SELECT 1) AS sluice_one LEFT JOIN sluice_m AS z ON FALSE",
        null_columns(columns, "z", quote)
    )
}

/// The tables sluice keeps in a MariaDB/MySQL source (`state_schema` is a database there).
pub struct MysqlState {
    pub(super) pool: MySqlPool,
    pub schema: String,
}

impl MysqlState {
    pub fn new(options: MySqlConnectOptions, schema: &str) -> MysqlState {
        let pool =
            MySqlPoolOptions::new().max_connections(2).acquire_timeout(std::time::Duration::from_secs(15)).connect_lazy_with(options);
        MysqlState { pool, schema: schema.to_string() }
    }

    fn failed(&self, what: &str, e: sqlx::Error) -> SourceError {
        super::failed(&format!("database `{}`", self.schema), what, e)
    }

    /// MariaDB and MySQL resolve privileges through wildcards, roles and hosts: rather than
    /// re-derive them, this creates what a first run would (the database and table, idempotent)
    /// and names the GRANT when the server refuses.
    pub async fn missing_grants(&self, table: &str) -> Result<Vec<String>, SourceError> {
        match self.ensure(table).await {
            Ok(()) => Ok(Vec::new()),
            Err(e) => Ok(vec![format!(
                "GRANT CREATE, SELECT, INSERT, UPDATE, DELETE ON {}.* TO <the source's user>; (the server said: {e})",
                quote(&self.schema)
            )]),
        }
    }

    pub async fn exists(&self, table: &str) -> Result<bool, SourceError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?")
            .bind(&self.schema)
            .bind(table)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.failed("looking for the sync's table", e))?;
        Ok(found.is_some())
    }

    pub async fn ensure(&self, table: &str) -> Result<(), SourceError> {
        let schema = quote(&self.schema);
        for sql in [
            format!("CREATE DATABASE IF NOT EXISTS {schema} CHARACTER SET utf8mb4"),
            format!(
                "CREATE TABLE IF NOT EXISTS {schema}.{} (sluice_key CHAR(32) PRIMARY KEY, key_hash CHAR(32) NOT NULL, \
                 fingerprint CHAR(32) NOT NULL, updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), KEY (key_hash)) \
                 CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
                quote(table)
            ),
        ] {
            sqlx::query(&sql).execute(&self.pool).await.map_err(|e| self.failed("creating the sync's table", e))?;
        }
        Ok(())
    }

    pub async fn commit(&self, table: &str, rows: &[Applied<'_>]) -> Result<(), SourceError> {
        let t = format!("{}.{}", quote(&self.schema), quote(table));
        let mut tx = self.pool.begin().await.map_err(|e| self.failed("recording a batch", e))?;
        let sorted = Sorted::of(rows);
        for chunk in sorted.holds.chunks(1000) {
            let values = vec!["(?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "INSERT INTO {t} (sluice_key, key_hash, fingerprint) VALUES {values} \
                 ON DUPLICATE KEY UPDATE key_hash = VALUES(key_hash), fingerprint = VALUES(fingerprint), updated_at = CURRENT_TIMESTAMP(6)"
            );
            let mut q = sqlx::query(&sql);
            for &(key, key_hash, fingerprint) in chunk {
                q = q.bind(key).bind(key_hash).bind(fingerprint);
            }
            q.execute(&mut *tx).await.map_err(|e| self.failed("recording a batch", e))?;
        }
        for (hashes, statement) in [
            (&sorted.deleted, format!("DELETE FROM {t}")),
            (&sorted.cleared, format!("UPDATE {t} SET fingerprint = '{CLEARED}', updated_at = CURRENT_TIMESTAMP(6)")),
        ] {
            for chunk in hashes.chunks(1000) {
                let sql = format!("{statement} WHERE key_hash IN ({})", vec!["?"; chunk.len()].join(", "));
                let mut q = sqlx::query(&sql);
                for h in chunk {
                    q = q.bind(*h);
                }
                q.execute(&mut *tx).await.map_err(|e| self.failed("recording removals", e))?;
            }
        }
        tx.commit().await.map_err(|e| self.failed("recording a batch", e))
    }

    pub async fn clear(&self, table: &str) -> Result<(), SourceError> {
        if self.exists(table).await? {
            sqlx::query(&format!("DELETE FROM {}.{}", quote(&self.schema), quote(table)))
                .execute(&self.pool)
                .await
                .map_err(|e| self.failed("resetting", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_lists_removed_rows_without_a_full_join() {
        let spec = DiffSpec { fp_columns: vec!["odd`name".into()], ..super::super::sample_spec() };
        let sql = sql("SELECT 1 AS id -- a comment", &["id".into(), "odd`name".into()], &spec, "sluice_state");
        assert!(sql.contains("SELECT 1 AS id -- a comment\n) AS sluice_model"), "{sql}");
        assert!(sql.contains("sluice_model.`odd``name`"), "{sql}");
        assert!(sql.contains("SELECT NULL, NULL, NULL, NULL, NULL, s.key_hash"), "{sql}");
        assert!(!sql.contains("FULL JOIN") && sql.contains("NOT EXISTS"), "{sql}");
    }
}
