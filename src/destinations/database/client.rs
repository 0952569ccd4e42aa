//! The connection to the database, and what its errors mean: whether to retry the batch, to
//! single out a row, or to stop the run (and what to do about it).

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use super::config::DatabaseConfig;
use super::dialect::{Dialect, Failure};
use super::encoding::Cell;
use crate::destinations::DestinationError;

/// A pool of connections to the destination database (sqlx's `Any` driver: the statements are
/// the dialect's, the plumbing is one).
pub struct Db {
    pub dialect: Dialect,
    pub pool: AnyPool,
    options: AnyConnectOptions,
    /// `host:port/database`: where rows land, never the credentials.
    pub shown: String,
    /// How long one batch's transaction may take.
    pub timeout: Duration,
}

impl Db {
    pub fn new(dialect: Dialect, config: &DatabaseConfig) -> Result<Db, String> {
        sqlx::any::install_default_drivers();
        let text = config.url.expose_secret();
        let url = reqwest::Url::parse(text).map_err(|_| "`url` is not a valid URL (postgres://... or mysql://...)".to_string())?;
        let schemes: &[&str] = match dialect {
            Dialect::Postgres => &["postgres", "postgresql"],
            Dialect::Mysql => &["mysql", "mariadb"],
        };
        if !schemes.contains(&url.scheme()) {
            return Err(format!("`url` must start with {}:// for this kind (it starts with {}://)", schemes[0], url.scheme()));
        }
        let options: AnyConnectOptions = text.parse().map_err(|_| "`url` is not a valid database URL".to_string())?;
        let shown = format!(
            "{}:{}{}",
            url.host_str().unwrap_or("localhost"),
            url.port().unwrap_or(if dialect == Dialect::Postgres { 5432 } else { 3306 }),
            url.path()
        );
        let pool = AnyPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(15))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Mysql {
                        // Strict mode on every table: a value that does not fit is an error (the
                        // row is rejected), never a silent truncation with a warning.
                        conn.execute("SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_ALL_TABLES')").await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(options.clone());
        Ok(Db { dialect, pool, options, shown, timeout: config.requests.timeout })
    }

    /// Before the pool's first connection, one direct attempt: a refused port fails at once
    /// with the reason (and is retried), a wrong password or an unknown database fails the run
    /// with the server's own words (retrying cannot fix it).
    pub async fn reachable(&self) -> Result<(), DestinationError> {
        use sqlx::Connection;
        if self.pool.size() > 0 {
            return Ok(());
        }
        let connect = tokio::time::timeout(Duration::from_secs(10), sqlx::AnyConnection::connect_with(&self.options));
        let at = format!("cannot connect to {} at {}", self.dialect.name(), self.shown);
        match connect.await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                Ok(())
            }
            Ok(Err(e @ sqlx::Error::Database(_))) => Err(self.error(e, &at)),
            Ok(Err(e)) => Err(DestinationError::transient(format!("{at}: {e} (is the server up? check `url`)"))),
            Err(_) => Err(DestinationError::transient(format!("{at}: no answer within 10 s"))),
        }
    }

    /// What `e` means, and its message with the server's detail.
    pub fn failure(&self, e: &sqlx::Error) -> (Failure, String) {
        let name = self.dialect.name();
        match e {
            sqlx::Error::Database(db) => {
                let number = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().map(|m| m.number());
                let detail = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().and_then(|p| {
                    let mut parts = Vec::new();
                    if let Some(column) = p.column() {
                        parts.push(format!("column {column}"));
                    }
                    if let Some(detail) = p.detail() {
                        parts.push(detail.to_string());
                    }
                    (!parts.is_empty()).then(|| parts.join("; "))
                });
                let code = db.code();
                let failure = self.dialect.failure(code.as_deref(), number);
                let message = match detail {
                    Some(d) => format!("{name}: {} ({d})", db.message()),
                    None => format!("{name}: {}", db.message()),
                };
                (failure, message)
            }
            // Lost connections, pool timeouts, TLS trouble, a half-read answer: try again.
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => (Failure::Transient, format!("{name} at {}: {e}", self.shown)),
            // A value sluice cannot read back, a bad setting: retrying gives the same answer.
            _ => (Failure::Fatal, format!("{name}: {e}")),
        }
    }

    /// `e` as a destination error, for work outside a batch (reading the table's shape,
    /// creating it): a row error there is the run's.
    pub fn error(&self, e: sqlx::Error, doing: &str) -> DestinationError {
        let (failure, message) = self.failure(&e);
        let message = format!("{doing}: {message}{}", hint(&message));
        match failure {
            Failure::Transient => DestinationError::transient(message),
            Failure::Row | Failure::Fatal => DestinationError::fatal(message),
        }
    }
}

/// What to do about the errors people meet first.
fn hint(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if m.contains("password authentication failed") || m.contains("using password") || m.contains("does not exist") && m.contains("role") {
        " (check the user and password in `url`)"
    } else if m.contains("permission denied") || m.contains("command denied") || m.contains("access denied") {
        " (grant the privileges `sluice check` lists to the user in `url`)"
    } else {
        ""
    }
}

/// A statement's parameters: Postgres takes the batch as one JSON document, MySQL a
/// placeholder per cell.
pub enum Params<'a> {
    Json(String),
    Cells(&'a [Cell]),
}

fn bind<'q>(sql: &'q str, params: &'q Params<'q>) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut query = sqlx::query(sql);
    match params {
        Params::Json(doc) => query = query.bind(doc.as_str()),
        Params::Cells(cells) => {
            for cell in cells.iter() {
                query = match cell {
                    Cell::Null => query.bind(None::<String>),
                    Cell::Bool(b) => query.bind(*b),
                    Cell::Int(i) => query.bind(*i),
                    Cell::Float(f) => query.bind(*f),
                    Cell::Text(s) => query.bind(s.as_str()),
                    Cell::Bytes(b) => query.bind(b.as_slice()),
                    // Arrays go to Postgres only, in its JSON document.
                    Cell::List(_) => query.bind(cell.to_json().to_string()),
                };
            }
        }
    }
    query
}

/// Runs one statement.
pub async fn execute(conn: &mut sqlx::AnyConnection, sql: &str, params: Params<'_>) -> Result<u64, sqlx::Error> {
    Ok(bind(sql, &params).execute(conn).await?.rows_affected())
}

/// Runs a statement whose rows are one integer each (a row's index in the batch).
pub async fn indexes(conn: &mut sqlx::AnyConnection, sql: &str, params: Params<'_>) -> Result<Vec<i64>, sqlx::Error> {
    use sqlx::Row;
    let rows = bind(sql, &params).fetch_all(conn).await?;
    rows.iter().map(|r| r.try_get::<i64, _>(0)).collect()
}
