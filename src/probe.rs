//! One direct database connection before a pool is used: a refused port or unknown host fails
//! at once with the driver's reason, where a lazy pool would only say "timed out" much later.
//! Shared by the Postgres source and the state store.

use std::future::Future;
use std::time::Duration;

/// How long the first connection may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a first connection failed.
#[derive(Debug)]
pub enum Unreachable {
    /// The server answered and refused (a wrong password, an unknown database): its own words,
    /// with its hint when it gave one. Asking "is the server up?" would mislead.
    Refused(String),
    /// The server answered and could not take the connection now (too many clients, starting
    /// up, shutting down): its own words. The address and credentials may well be right.
    Busy(String),
    /// No server answered (refused port, unknown host, TLS, timeout).
    Down(String),
}

impl Unreachable {
    /// The reason, and what to check: `setting` names where the address is (`the source's
    /// `url``).
    pub fn explain(&self, setting: &str) -> String {
        match self {
            Unreachable::Refused(why) => format!("{why} (the server refused: check the user, password and database in {setting})"),
            Unreachable::Busy(why) => {
                format!("{why} (the server answered but did not take the connection: it may be full or starting; try again later)")
            }
            Unreachable::Down(why) => format!("{why} (is the server up? check {setting})"),
        }
    }
}

/// Why `connect` fails, or `None` when it succeeds (the connection is closed again). Errors
/// from sqlx name no password.
pub async fn why_unreachable<C: sqlx::Connection>(connect: impl Future<Output = Result<C, sqlx::Error>>) -> Option<Unreachable> {
    match tokio::time::timeout(PROBE_TIMEOUT, connect).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            None
        }
        Ok(Err(sqlx::Error::Database(db))) => {
            let hint = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().and_then(|pg| pg.hint()).map(|h| format!(" (hint: {h})"));
            let words = format!("{}{}", db.message(), hint.unwrap_or_default());
            Some(if refused(db.as_ref()) { Unreachable::Refused(words) } else { Unreachable::Busy(words) })
        }
        Ok(Err(e)) => Some(Unreachable::Down(e.to_string())),
        Err(_) => Some(Unreachable::Down(format!("no answer within {} s", PROBE_TIMEOUT.as_secs()))),
    }
}

/// Whether the server's answer is about who connects or to what: Postgres' SQLSTATE class 28
/// (authorization: a wrong password, no such role) and 3D000 (no such database); MariaDB/MySQL's
/// access-denied and unknown-database errors (their SQLSTATEs are shared with syntax errors, so
/// by number: 1044, 1045, 1049, 1251, 1698).
fn refused(db: &dyn sqlx::error::DatabaseError) -> bool {
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return matches!(my.number(), 1044 | 1045 | 1049 | 1251 | 1698);
    }
    db.code().is_some_and(|c| c.starts_with("28") || c == "3D000")
}
