//! How a failed batch is retried. Whether it may be retried is the destination's call
//! ([`DestinationError::kind`]); this module only paces the attempts: exponential backoff with
//! jitter, Retry-After honoured (capped), a bounded number of attempts.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

use crate::destinations::{Capabilities, DestinationError, RowOp, RowOutcome, Writer};

/// The longest a server's Retry-After may hold one batch.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

pub async fn write_with_retry(
    writer: &mut dyn Writer,
    batch: &[RowOp],
    caps: &Capabilities,
    cancel: &CancellationToken,
) -> Result<Vec<RowOutcome>, DestinationError> {
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(caps.retry_initial_delay)
        .with_max_delay(Duration::from_secs(60))
        .with_max_times(caps.retry_attempts.saturating_sub(1))
        .with_jitter()
        .build();
    let mut attempt = 1;
    loop {
        let error = match writer.write(batch).await {
            Ok(outcomes) if outcomes.len() == batch.len() => return Ok(outcomes),
            Ok(outcomes) => {
                return Err(DestinationError::fatal(format!(
                    "the destination returned {} outcomes for {} rows (a destination bug)",
                    outcomes.len(),
                    batch.len()
                )))
            }
            Err(e) => e,
        };
        if !error.is_transient() {
            return Err(error);
        }
        let Some(delay) = delays.next() else {
            return Err(DestinationError { message: format!("{} (gave up after {attempt} attempts)", error.message), ..error });
        };
        let delay = error.retry_after.map(|d| d.min(MAX_RETRY_AFTER)).unwrap_or(delay);
        tracing::warn!(attempt, delay_ms = delay.as_millis() as u64, error = %error.message, "batch failed, retrying");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => return Err(error),
        }
        attempt += 1;
    }
}
