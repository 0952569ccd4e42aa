use std::sync::Arc;

use async_trait::async_trait;

use super::client::{Answer, Client};
use super::config::SlackConfig;
use super::encoding::Message;
use crate::destinations::{parse_settings, partial, Capabilities, Destination, DestinationError, RowOp, RowOutcome, Target, Writer};
use crate::project::Mode;

/// A digest message covers at most this many rows; a run with more sends one per this many.
const DIGEST_MAX_ROWS: usize = 10_000;

pub struct SlackDestination {
    config: SlackConfig,
    client: Arc<Client>,
}

impl SlackDestination {
    pub fn from_settings(settings: &toml::Table) -> Result<Self, String> {
        let config: SlackConfig = parse_settings(settings)?;
        let client = Client::new(&config)?;
        Ok(SlackDestination { config, client: Arc::new(client) })
    }
}

#[async_trait]
impl Destination for SlackDestination {
    /// Messages cannot be taken back, so there is no mirror mode: `check` refuses it.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            modes: vec![Mode::Upsert, Mode::Update, Mode::Insert],
            clear: false,
            // A fixed typo in a template must not post every row again.
            presentation: &["text", "blocks", "digest", "digest_rows"],
            ..Capabilities::every_mode(self.config.max_batch_rows, self.config.max_attempts, self.config.retry_initial_delay)
        }
    }

    /// Compiles the sync's templates against its fields. Posting is the only way to probe a
    /// webhook, and a check must not post, so reachability waits for the first run.
    async fn check(&self, target: &Target) -> Result<(), DestinationError> {
        Message::compile(target).map(drop).map_err(DestinationError::fatal)
    }

    async fn open(&self, target: &Target) -> Result<Box<dyn Writer>, DestinationError> {
        let message = Message::compile(target).map_err(DestinationError::fatal)?;
        Ok(Box::new(SlackWriter { client: self.client.clone(), target: target.clone(), message }))
    }
}

struct SlackWriter {
    client: Arc<Client>,
    target: Target,
    message: Message,
}

#[async_trait]
impl Writer for SlackWriter {
    async fn write(&mut self, batch: &[RowOp]) -> Result<Vec<RowOutcome>, DestinationError> {
        if self.message.digest {
            let body = self.message.digest(&self.target, batch).map_err(|e| DestinationError::fatal(format!("[target] digest: {e}")))?;
            return Ok(match self.client.post(body).await? {
                Answer::Sent => vec![RowOutcome::written(); batch.len()],
                Answer::Refused(reason) => vec![RowOutcome::Rejected(reason); batch.len()],
            });
        }
        // One message per row. A failure part-way reports the messages already sent, so a
        // retry never posts them twice.
        let mut out: Vec<Option<RowOutcome>> = vec![None; batch.len()];
        for (i, op) in batch.iter().enumerate() {
            let body = match self.message.row(&self.target, op) {
                Ok(body) => body,
                Err(e) => {
                    out[i] = Some(RowOutcome::Rejected(format!("the message template failed for this row: {e}")));
                    continue;
                }
            };
            match self.client.post(body).await {
                Ok(Answer::Sent) => out[i] = Some(RowOutcome::written()),
                Ok(Answer::Refused(reason)) => out[i] = Some(RowOutcome::Rejected(reason)),
                Err(e) => return partial(out, e),
            }
        }
        Ok(out.into_iter().map(|o| o.unwrap_or_else(RowOutcome::written)).collect())
    }

    /// A digest is one message per run: the whole run in one batch, up to a bound.
    fn preferred_batch_rows(&self, pending: u64) -> Option<usize> {
        self.message.digest.then(|| (pending as usize).clamp(1, DIGEST_MAX_ROWS))
    }
}
