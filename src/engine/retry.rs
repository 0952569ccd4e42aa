//! How failed destination calls are retried. Whether a failure may be retried is the
//! destination's call ([`DestinationError::kind`]); this module only paces the attempts:
//! exponential backoff with jitter, Retry-After honoured (capped), a bounded number of attempts.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

use super::concurrency::Adaptive;
use crate::destinations::{self, Capabilities, Destination, DestinationError, RowOp, RowOutcome, Target, Writer};

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

/// The answer to one batch after its retries: one outcome per row, and the error that ended
/// the batch, if one did. The rows it left undone are `Retryable` in `outcomes`, with the
/// error's message, and marked in `undone` (the run's error says why, once).
pub struct Sent {
    pub outcomes: Vec<RowOutcome>,
    pub error: Option<DestinationError>,
    pub undone: Vec<bool>,
}

impl Sent {
    fn ended(outcomes: Vec<Option<RowOutcome>>, error: DestinationError) -> Sent {
        let (outcomes, undone) = finish_after(outcomes, &error);
        Sent { outcomes, error: Some(error), undone }
    }
}

/// Sends a batch, retrying it after an error; after a partial failure (the error carries the
/// rows already done, `destinations::partial`) only the rest is sent again, so nothing that
/// landed is sent twice in a run. Per-row `Retryable` answers are left for the next run.
///
/// Rows a destination refused together ([`RowOutcome::RefusedInGroup`]: a webhook's 400, a
/// HubSpot batch failed whole by one bad input) are sent again in halves, and halves of those,
/// until each bad row stands alone and is rejected with its own reason while the rest is
/// written. At most 2 x the batch's rows in extra calls; past that the rows still unresolved
/// are rejected with the group's reason.
///
/// Each attempt's latency and push-back go to `flow`, which sets how many batches are in flight.
pub async fn write_with_retry(
    writer: &mut dyn Writer,
    batch: &[RowOp],
    caps: &Capabilities,
    cancel: &CancellationToken,
    flow: &Adaptive,
) -> Sent {
    let mut pacer = Pacer::new(caps, cancel);
    let mut outcomes: Vec<Option<RowOutcome>> = vec![None; batch.len()];
    // Refused groups are split level by level: halves, then quarters, ...
    let mut level: Vec<Vec<usize>> = vec![(0..batch.len()).collect()];
    let mut split_budget = 2 * batch.len();
    let mut depth = 0;
    let mut probed = false;
    while !level.is_empty() {
        let mut next: Vec<Vec<usize>> = Vec::new();
        for group in &level {
            if let Some(error) = write_group(writer, batch, group, &mut outcomes, &mut pacer, flow).await {
                return Sent::ended(outcomes, error);
            }
            let refused: Vec<usize> =
                group.iter().copied().filter(|&i| matches!(outcomes[i], Some(RowOutcome::RefusedInGroup(_)))).collect();
            if refused.len() > 1 && split_budget >= 2 {
                split_budget -= 2;
                let (first, second) = refused.split_at(refused.len() / 2);
                next.extend([first.to_vec(), second.to_vec()]);
            } else {
                let note = (refused.len() > 1).then_some("refused with other rows; sluice could not single out the bad ones");
                reject(&mut outcomes, &refused, note);
            }
        }
        depth += 1;
        // Every group of three levels refused and nothing written: maybe no row can pass (a
        // schema the receiver rejects). One row of each group, sent alone, tells.
        let nothing_written = !outcomes.iter().any(|o| matches!(o, Some(RowOutcome::Written { .. })));
        if depth >= 3 && !probed && nothing_written && next.len() >= 3 && split_budget >= next.len() {
            probed = true;
            split_budget -= next.len();
            let probes: Vec<usize> = next.iter().map(|g| g[0]).collect();
            for &i in &probes {
                if let Some(error) = write_group(writer, batch, &[i], &mut outcomes, &mut pacer, flow).await {
                    return Sent::ended(outcomes, error);
                }
            }
            let still: Vec<usize> =
                probes.iter().copied().filter(|&i| matches!(outcomes[i], Some(RowOutcome::RefusedInGroup(_)))).collect();
            if still.len() == probes.len() {
                // Not proven bad one by one: they wait for the next run rather than being held.
                reject(&mut outcomes, &still, None);
                let message =
                    "the destination refused every row of this batch, alone or together: the request, not the rows, looks at fault";
                for i in next.into_iter().flatten().filter(|i| !probes.contains(i)) {
                    if let Some(RowOutcome::RefusedInGroup(reason)) = &outcomes[i] {
                        outcomes[i] = Some(RowOutcome::Retryable(format!("{reason} ({message})")));
                    }
                }
                break;
            }
            reject(&mut outcomes, &still, None);
            next = next
                .into_iter()
                .map(|g| g.into_iter().filter(|i| !probes.contains(i)).collect::<Vec<_>>())
                .filter(|g| !g.is_empty())
                .collect();
        }
        level = next;
    }
    let undone = vec![false; outcomes.len()];
    Sent { outcomes: finish(outcomes), error: None, undone }
}

/// Rows refused in a group become `Rejected`, with the group's reason and an optional note.
fn reject(outcomes: &mut [Option<RowOutcome>], rows: &[usize], note: Option<&str>) {
    for &i in rows {
        if let Some(RowOutcome::RefusedInGroup(reason)) = outcomes[i].take() {
            outcomes[i] = Some(RowOutcome::Rejected(match note {
                Some(note) => format!("{reason} ({note})"),
                None => reason,
            }));
        }
    }
}

/// The outcomes of a batch an error ended: rows not yet done, and rows refused in a group that
/// was still being split (they may be fine), wait for a retry; which those are.
fn finish_after(mut outcomes: Vec<Option<RowOutcome>>, error: &DestinationError) -> (Vec<RowOutcome>, Vec<bool>) {
    let mut undone = vec![false; outcomes.len()];
    for (o, undone) in outcomes.iter_mut().zip(undone.iter_mut()) {
        if o.is_none() || matches!(o, Some(RowOutcome::RefusedInGroup(_))) {
            *o = Some(RowOutcome::Retryable(error.message.clone()));
            *undone = true;
        }
    }
    (finish(outcomes), undone)
}

/// Sends the rows `group` of `batch` until each has an outcome or an error ends the batch
/// (returned; the rows it left undone keep no outcome).
async fn write_group(
    writer: &mut dyn Writer,
    batch: &[RowOp],
    group: &[usize],
    outcomes: &mut [Option<RowOutcome>],
    pacer: &mut Pacer<'_>,
    flow: &Adaptive,
) -> Option<DestinationError> {
    // Rows of the group with no outcome yet; all of them on the first attempt.
    let mut pending: Vec<usize> = group.to_vec();
    loop {
        // Every attempt, a retry too, waits for a slot under the adaptive limit: after a
        // push-back, fewer requests are on the wire, retries included.
        let slot = flow.acquire().await;
        let started = std::time::Instant::now();
        let (answer, meter) = destinations::flow::metered(flow.shared.clone(), async {
            if pending.len() == batch.len() {
                writer.write(batch).await
            } else {
                let rows: Vec<RowOp> = pending.iter().map(|&i| batch[i].clone()).collect();
                writer.write(&rows).await
            }
        })
        .await;
        flow.observe_write(started.elapsed(), &meter, matches!(&answer, Err(e) if e.is_transient()));
        drop(slot);
        let mut error = match answer {
            Ok(answer) if answer.len() == pending.len() => {
                for (&i, outcome) in pending.iter().zip(answer) {
                    outcomes[i] = Some(outcome);
                }
                return None;
            }
            Ok(answer) => DestinationError::fatal(format!(
                "the destination returned {} outcomes for {} rows (a destination bug)",
                answer.len(),
                pending.len()
            )),
            Err(e) => e,
        };
        if let Some(done) = error.done.take() {
            let mut still = Vec::new();
            for (&i, outcome) in pending.iter().zip(done.into_iter().chain(std::iter::repeat(None))) {
                match outcome {
                    Some(o) => outcomes[i] = Some(o),
                    None => still.push(i),
                }
            }
            pending = still;
            if pending.is_empty() {
                // Every row is accounted for; only a fatal error still matters (it ends the run).
                return (!error.is_transient()).then_some(error);
            }
        }
        if let Err(error) = pacer.wait(error, "batch").await {
            return Some(error);
        }
    }
}

/// Every row has an outcome by the time a batch ends; the fallback only keeps this total.
fn finish(outcomes: Vec<Option<RowOutcome>>) -> Vec<RowOutcome> {
    outcomes.into_iter().map(|o| o.unwrap_or_else(|| RowOutcome::Retryable("not sent".into()))).collect()
}

/// Where a destination writes may be asked of the service (HubSpot's account): a transient
/// failure there is retried like a batch.
pub async fn identity_with_retry(
    destination: &dyn Destination,
    caps: &Capabilities,
    cancel: &CancellationToken,
) -> Result<String, DestinationError> {
    let mut pacer = Pacer::new(caps, cancel);
    loop {
        match destination.identity().await {
            Ok(identity) => return Ok(identity),
            Err(e) => pacer.wait(e, "asking the destination where it writes").await?,
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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Duration;

    use super::*;
    use crate::destinations::{partial, Op};
    use crate::value::Value;

    /// One scripted answer to a `write` call.
    type Answer = Box<dyn FnMut(&[RowOp]) -> Result<Vec<RowOutcome>, DestinationError> + Send>;

    /// A writer that answers from a script, one answer per call, and records the keys of every
    /// call; with the script spent, every row is written.
    struct Scripted {
        answers: VecDeque<Answer>,
        calls: Vec<Vec<i64>>,
    }

    impl Scripted {
        fn new() -> Scripted {
            Scripted { answers: VecDeque::new(), calls: Vec::new() }
        }
        fn then(mut self, answer: impl FnMut(&[RowOp]) -> Result<Vec<RowOutcome>, DestinationError> + Send + 'static) -> Scripted {
            self.answers.push_back(Box::new(answer));
            self
        }
    }

    #[async_trait::async_trait]
    impl Writer for Scripted {
        async fn write(&mut self, batch: &[RowOp]) -> Result<Vec<RowOutcome>, DestinationError> {
            self.calls.push(batch.iter().map(key).collect());
            match self.answers.pop_front() {
                Some(mut answer) => answer(batch),
                None => Ok(vec![RowOutcome::written(); batch.len()]),
            }
        }
    }

    fn key(op: &RowOp) -> i64 {
        match op.key[0] {
            Value::Int(i) => i,
            _ => -1,
        }
    }

    fn batch(n: i64) -> Vec<RowOp> {
        (0..n).map(|i| RowOp { op: Op::Upsert, key: vec![Value::Int(i)], fields: Vec::new(), destination_id: None }).collect()
    }

    fn caps(attempts: usize) -> Capabilities {
        Capabilities::every_mode(100, attempts, Duration::from_millis(1))
    }

    fn written(o: &RowOutcome) -> bool {
        matches!(o, RowOutcome::Written { .. })
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried_and_a_fatal_one_is_not() {
        let mut w = Scripted::new().then(|_| Err(DestinationError::transient("503")));
        let sent = write_with_retry(&mut w, &batch(3), &caps(3), &CancellationToken::new(), &Adaptive::new(1, "test", None)).await;
        assert!(sent.error.is_none() && sent.outcomes.iter().all(written));
        assert_eq!(w.calls, [vec![0, 1, 2], vec![0, 1, 2]]);

        let mut w = Scripted::new().then(|_| Err(DestinationError::fatal("401")));
        let sent = write_with_retry(&mut w, &batch(3), &caps(3), &CancellationToken::new(), &Adaptive::new(1, "test", None)).await;
        assert_eq!(sent.error.map(|e| e.message), Some("401".to_string()));
        assert_eq!(sent.undone, [true, true, true], "every row left for the next run");
        assert_eq!(w.calls.len(), 1, "a fatal error is not retried");
    }

    #[tokio::test]
    async fn attempts_are_bounded_and_what_is_left_is_marked_undone() {
        let fail = |_: &[RowOp]| Err(DestinationError::transient("503"));
        let mut w = Scripted::new().then(fail).then(fail).then(fail).then(fail);
        let sent = write_with_retry(&mut w, &batch(2), &caps(3), &CancellationToken::new(), &Adaptive::new(1, "test", None)).await;
        assert_eq!(w.calls.len(), 3);
        let error = sent.error.expect("gave up");
        assert!(error.message.contains("gave up after 3 attempts"), "{}", error.message);
        assert!(matches!(&sent.outcomes[0], RowOutcome::Retryable(m) if *m == error.message));
        assert_eq!(sent.undone, [true, true]);
    }

    #[tokio::test]
    async fn after_a_partial_failure_only_the_rows_not_done_are_sent_again() {
        // The first request of three landed, then the connection broke.
        let mut w = Scripted::new().then(|b: &[RowOp]| {
            let done = b.iter().map(|op| (key(op) < 2).then(RowOutcome::written)).collect();
            partial(done, DestinationError::transient("reset"))
        });
        let sent = write_with_retry(&mut w, &batch(5), &caps(3), &CancellationToken::new(), &Adaptive::new(1, "test", None)).await;
        assert!(sent.error.is_none() && sent.outcomes.iter().all(written));
        assert_eq!(w.calls, [vec![0, 1, 2, 3, 4], vec![2, 3, 4]], "rows 0 and 1 are not sent twice");
        assert_eq!(sent.undone, [false; 5]);
    }

    #[tokio::test]
    async fn rows_refused_as_a_group_are_split_until_the_bad_one_stands_alone() {
        // Any request holding row 5 is refused whole, without saying which row is bad.
        let mut w = Scripted::new();
        for _ in 0..16 {
            w = w.then(|b: &[RowOp]| {
                Ok(match b.iter().any(|op| key(op) == 5) {
                    true => vec![RowOutcome::RefusedInGroup("400 bad email".into()); b.len()],
                    false => vec![RowOutcome::written(); b.len()],
                })
            });
        }
        let sent = write_with_retry(&mut w, &batch(8), &caps(1), &CancellationToken::new(), &Adaptive::new(1, "test", None)).await;
        assert!(sent.error.is_none());
        for (i, o) in sent.outcomes.iter().enumerate() {
            match i {
                5 => assert!(matches!(o, RowOutcome::Rejected(m) if m == "400 bad email"), "{o:?}"),
                _ => assert!(written(o), "row {i}: {o:?}"),
            }
        }
        // 8, then halves of 8 (4 + 4), then of the refused 4 (2 + 2), then of the refused 2.
        assert_eq!(w.calls.len(), 7, "{:?}", w.calls);
        assert!(w.calls.iter().flatten().filter(|&&k| k == 0).count() <= 2, "a written row is not sent again: {:?}", w.calls);
    }

    #[tokio::test]
    async fn a_cancelled_run_stops_waiting_between_attempts() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let slow = Capabilities::every_mode(100, 5, Duration::from_secs(3600));
        let mut w = Scripted::new().then(|_| Err(DestinationError::transient("503")));
        let started = std::time::Instant::now();
        let sent = write_with_retry(&mut w, &batch(1), &slow, &cancel, &Adaptive::new(1, "test", None)).await;
        assert!(sent.error.is_some() && started.elapsed() < Duration::from_secs(60));
        assert_eq!(w.calls.len(), 1);
    }
}
