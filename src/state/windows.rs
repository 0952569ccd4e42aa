//! Rate-limit windows shared by every process on one Postgres store (`rate_grants`): daemon
//! replicas and a `sluice run` beside them together stay under a destination's published limit.
//! A SQLite store serves one process, which shares its windows in memory (`destinations::flow`).
//!
//! Each request claims a grant before it goes: under the key's advisory lock, the grants still
//! in the window are counted, and a new one is added only if they are fewer than the limit. A
//! grant may be used up to [`LEASE`] after its claim, so it counts from the claim until a window
//! after that. The server's clock is the one clock every replica shares.

use std::time::Duration;

use sqlx::AnyPool;

use crate::destinations::flow::SharedWindows;

/// How long after its claim a grant may be used: the request goes out right after.
const LEASE: Duration = Duration::from_millis(100);

pub struct PgWindows {
    pool: AnyPool,
}

impl PgWindows {
    pub(super) fn new(pool: AnyPool) -> PgWindows {
        PgWindows { pool }
    }

    async fn try_claim(&self, key: &str, requests: u32, per: Duration) -> Result<Option<Duration>, sqlx::Error> {
        let window = per.as_secs_f64();
        let mut tx = self.pool.begin().await?;
        // One claimer of a key at a time; the lock ends with the transaction.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('sluice_rate:' || $1)::int8)").bind(key).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM rate_grants WHERE key = $1 AND used_by < now() - make_interval(secs => $2)")
            .bind(key)
            .bind(window)
            .execute(&mut *tx)
            .await?;
        let (held, frees_in): (i64, Option<f64>) = sqlx::query_as(
            "SELECT COUNT(*), EXTRACT(EPOCH FROM (MIN(used_by) + make_interval(secs => $2) - now()))::float8 \
             FROM rate_grants WHERE key = $1",
        )
        .bind(key)
        .bind(window)
        .fetch_one(&mut *tx)
        .await?;
        if held >= i64::from(requests) {
            tx.rollback().await?;
            // The oldest grant leaves the window first.
            return Ok(Some(Duration::from_secs_f64(frees_in.unwrap_or(window).clamp(0.001, window))));
        }
        sqlx::query("INSERT INTO rate_grants (key, used_by) VALUES ($1, now() + make_interval(secs => $2))")
            .bind(key)
            .bind(LEASE.as_secs_f64())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(None)
    }
}

#[async_trait::async_trait]
impl SharedWindows for PgWindows {
    async fn claim(&self, key: &str, requests: u32, per: Duration) -> Result<Option<Duration>, String> {
        self.try_claim(key, requests, per).await.map_err(|e| format!("state store: {e}"))
    }
}
