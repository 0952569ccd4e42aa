//! How failed destination calls are retried. Whether a failure may be retried is the
//! destination's call ([`DestinationError::kind`]); this module only paces the attempts:
//! exponential backoff with jitter, Retry-After honoured (capped), a bounded number of attempts.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

use crate::destinations::{Capabilities, Destination, DestinationError, RowOp, RowOutcome, Target, Writer};

/// The longest a server's Retry-After may hold one call.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// The most time one call may spend waiting between attempts; then its rows stay pending for
/// the next run, so one struggling destination cannot hold a run (or a daemon slot) for hours.
pub const MAX_TOTAL_WAIT: Duration = Duration::from_secs(15 * 60);

/// Paces the attempts of one call.
struct Pacer<'a> {
    delays: ExponentialBackoff,
    attempt: usize,
    waited: Duration,
    cancel: &'a CancellationToken,
}

impl<'a> Pacer<'a> {
    fn new(caps: &Capabilities, cancel: &'a CancellationToken) -> Self {
        let delays = ExponentialBuilder::default()
            .with_min_delay(caps.retry_initial_delay)
            .with_max_delay(Duration::from_secs(60))
            .with_max_times(caps.retry_attempts.saturating_sub(1))
            .with_jitter()
            .build();
        Pacer { delays, attempt: 1, waited: Duration::ZERO, cancel }
    }

    /// After a failed attempt: waits for the next one, or gives the error back to give up with.
    async fn wait(&mut self, error: DestinationError, what: &str) -> Result<(), DestinationError> {
        if !error.is_transient() {
            return Err(error);
        }
        let Some(delay) = self.delays.next() else {
            return Err(DestinationError { message: format!("{} (gave up after {} attempts)", error.message, self.attempt), ..error });
        };
        let delay = error.retry_after.map(|d| d.min(MAX_RETRY_AFTER)).unwrap_or(delay);
        if self.waited + delay > MAX_TOTAL_WAIT {
            return Err(DestinationError {
                message: format!("{} (gave up after {} attempts and {} s of waiting)", error.message, self.attempt, self.waited.as_secs()),
                ..error
            });
        }
        self.waited += delay;
        tracing::warn!(attempt = self.attempt, delay_ms = delay.as_millis() as u64, error = %error.message, "{what} failed, retrying");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = self.cancel.cancelled() => return Err(error),
        }
        self.attempt += 1;
        Ok(())
    }
}

pub async fn write_with_retry(
    writer: &mut dyn Writer,
    batch: &[RowOp],
    caps: &Capabilities,
    cancel: &CancellationToken,
) -> Result<Vec<RowOutcome>, DestinationError> {
    let mut pacer = Pacer::new(caps, cancel);
    loop {
        match writer.write(batch).await {
            Ok(outcomes) if outcomes.len() == batch.len() => return Ok(outcomes),
            Ok(outcomes) => {
                return Err(DestinationError::fatal(format!(
                    "the destination returned {} outcomes for {} rows (a destination bug)",
                    outcomes.len(),
                    batch.len()
                )))
            }
            Err(e) => pacer.wait(e, "batch").await?,
        }
    }
}

/// Opening a writer may read from the destination (Sheets reads its tab): a transient failure
/// there is retried like a batch.
pub async fn open_with_retry(
    destination: &dyn Destination,
    target: &Target,
    caps: &Capabilities,
    cancel: &CancellationToken,
) -> Result<Box<dyn Writer>, DestinationError> {
    let mut pacer = Pacer::new(caps, cancel);
    loop {
        match destination.open(target).await {
            Ok(writer) => return Ok(writer),
            Err(e) => pacer.wait(e, "opening the destination").await?,
        }
    }
}
