//! Destination databases for the `postgres` and `mysql` destination tests: a schema (Postgres)
//! or a database (MariaDB/MySQL) of their own per test, dropped when the test ends, and the
//! tables read back as text.
//!
//! MariaDB comes from `SLUICE_TEST_MYSQL_URL` (scripts/test sets it: the local server on
//! 127.0.0.1:3306 as root without a password, or a throwaway one it starts); tests that need
//! it fail loudly when it cannot be reached.

use std::collections::BTreeMap;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};

use super::pg_url;

pub fn mysql_url() -> String {
    std::env::var("SLUICE_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Mysql,
}

/// A schema (a database, on MySQL) for one test's destination tables.
pub struct DestDb {
    pub dialect: Dialect,
    /// The schema's name.
    pub schema: String,
    pub pool: AnyPool,
    /// The server's URL (no database for MySQL: tables are written `schema.table`).
    pub url: String,
}

impl DestDb {
    pub async fn create(dialect: Dialect) -> DestDb {
        sqlx::any::install_default_drivers();
        let schema = format!("sluice_d_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let url = match dialect {
            Dialect::Postgres => pg_url(),
            Dialect::Mysql => mysql_url(),
        };
        let pool = AnyPoolOptions::new().max_connections(2).connect(&url).await.unwrap_or_else(|e| {
            panic!(
                "{dialect:?} is needed for this test and {url} cannot be reached: {e}. Run scripts/test, which finds or starts a server."
            )
        });
        let create = match dialect {
            Dialect::Postgres => format!("CREATE SCHEMA {schema}"),
            Dialect::Mysql => format!("CREATE DATABASE {schema} CHARACTER SET utf8mb4"),
        };
        sqlx::query(&create).execute(&pool).await.expect("create the test schema");
        DestDb { dialect, schema, pool, url }
    }

    /// The destination's sluice.toml table.
    pub fn destination(&self) -> String {
        let kind = match self.dialect {
            Dialect::Postgres => "postgres",
            Dialect::Mysql => "mysql",
        };
        format!("kind = \"{kind}\"\nurl = \"{}\"\nretry_initial_delay = \"10ms\"", self.url)
    }

    /// `schema.table` for a sync's `[target] table`.
    pub fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.schema)
    }

    pub fn quote(&self, name: &str) -> String {
        match self.dialect {
            Dialect::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
            Dialect::Mysql => format!("`{}`", name.replace('`', "``")),
        }
    }

    /// `schema.table`, quoted, for SQL.
    pub fn qualified(&self, table: &str) -> String {
        format!("{}.{}", self.quote(&self.schema), self.quote(table))
    }

    pub async fn exec(&self, sql: &str) {
        sqlx::raw_sql(sql).execute(&self.pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The rows of `table` as text (NULL as `None`), `columns` in order, keyed by the first.
    pub async fn rows(&self, table: &str, columns: &[&str]) -> BTreeMap<String, Vec<Option<String>>> {
        let cast = |c: &str| match self.dialect {
            Dialect::Postgres => format!("{}::text", self.quote(c)),
            Dialect::Mysql => format!("CAST({} AS CHAR)", self.quote(c)),
        };
        let sql = format!("SELECT {} FROM {}", columns.iter().map(|c| cast(c)).collect::<Vec<_>>().join(", "), self.qualified(table));
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter()
            .map(|r| {
                // sqlx's `Any` driver sees MySQL's long text as a BLOB: its bytes are UTF-8.
                let text = |i: usize| {
                    r.try_get::<Option<String>, _>(i).unwrap_or_else(|_| {
                        r.try_get::<Option<Vec<u8>>, _>(i).expect("a text cell").map(|b| String::from_utf8(b).expect("UTF-8"))
                    })
                };
                let cells: Vec<Option<String>> = (0..columns.len()).map(text).collect();
                (cells[0].clone().unwrap_or_default(), cells)
            })
            .collect()
    }

    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {}", self.qualified(table));
        sqlx::query_scalar(&sql).fetch_one(&self.pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The column names of `table`, in order.
    pub async fn columns(&self, table: &str) -> Vec<String> {
        let sql = match self.dialect {
            Dialect::Postgres => "SELECT column_name::text FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            Dialect::Mysql => "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        };
        let sql = sql.replace("SELECT COLUMN_NAME", "SELECT CAST(COLUMN_NAME AS CHAR(64))");
        sqlx::query_scalar(&sql).bind(&self.schema).bind(table).fetch_all(&self.pool).await.expect("columns")
    }
}

impl Drop for DestDb {
    fn drop(&mut self) {
        let (dialect, schema, url) = (self.dialect, self.schema.clone(), self.url.clone());
        // Drop cannot be async: a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let pool = AnyPoolOptions::new().max_connections(1).connect(&url).await.ok()?;
                // With it, the database a `diff = "warehouse"` test keeps sluice's tables in.
                if dialect == Dialect::Mysql {
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {schema}_state")).execute(&pool).await.ok()?;
                }
                let drop = match dialect {
                    Dialect::Postgres => format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
                    Dialect::Mysql => format!("DROP DATABASE IF EXISTS {schema}"),
                };
                sqlx::query(&drop).execute(&pool).await.ok()
            })
        })
        .join();
    }
}
