//! One direct database connection before a pool is used: a refused port or unknown host fails
//! at once with the driver's reason, where a lazy pool would only say "timed out" much later.
//! Shared by the Postgres source and the state store.

use std::future::Future;
use std::time::Duration;

/// How long the first connection may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why `connect` fails, or `None` when it succeeds (the connection is closed again). Errors
/// from sqlx name no password.
pub async fn why_unreachable<C: sqlx::Connection>(connect: impl Future<Output = Result<C, sqlx::Error>>) -> Option<String> {
    match tokio::time::timeout(PROBE_TIMEOUT, connect).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            None
        }
        Ok(Err(sqlx::Error::Database(db))) => Some(db.message().to_string()),
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
    }
}
