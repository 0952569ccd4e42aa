//! One run of a Slack sync: a message per row (or a digest per batch), paced, posted one by one.

use std::sync::Arc;

use async_trait::async_trait;

use super::client::Client;
use super::encoding::Message;
use super::DIGEST_MAX_ROWS;
use crate::destinations::http::CallError;
use crate::destinations::{partial, DestinationError, RowOp, RowOutcome, Target, Writer};

pub(super) struct SlackWriter {
    pub client: Arc<Client>,
    pub target: Target,
    pub message: Message,
    /// What had to be cut to fit Slack's limits, for the run report.
    pub warnings: Vec<String>,
}

#[async_trait]
impl Writer for SlackWriter {
    async fn write(&mut self, batch: &[RowOp]) -> Result<Vec<RowOutcome>, DestinationError> {
        if self.message.digest {
            let rendered =
                self.message.digest(&self.target, batch).map_err(|e| DestinationError::fatal(format!("[target] digest: {e}")))?;
            self.warnings.extend(rendered.cut);
            return match self.client.post(rendered.body).await {
                Ok(()) => Ok(vec![RowOutcome::written(); batch.len()]),
                Err(CallError::Refused(reason)) => Ok(vec![RowOutcome::Rejected(reason); batch.len()]),
                Err(e) => Err(e.into()),
            };
        }
        // One message per row. A failure part-way reports the messages already sent, so a
        // retry never posts them twice.
        let mut out: Vec<Option<RowOutcome>> = vec![None; batch.len()];
        for (i, op) in batch.iter().enumerate() {
            let body = match self.message.row(&self.target, op) {
                Ok(rendered) => {
                    let key = op.key_label(&self.target);
                    self.warnings.extend(rendered.cut.into_iter().map(|c| format!("row ({key}): {c}")));
                    rendered.body
                }
                Err(e) => {
                    out[i] = Some(RowOutcome::Rejected(format!("the message template failed for this row: {e}")));
                    continue;
                }
            };
            match self.client.post(body).await {
                Ok(()) => out[i] = Some(RowOutcome::written()),
                Err(CallError::Refused(reason)) => out[i] = Some(RowOutcome::Rejected(reason)),
                Err(e) => return partial(out, e.into()),
            }
        }
        Ok(out.into_iter().map(|o| o.unwrap_or_else(RowOutcome::written)).collect())
    }

    fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// A digest is one message per run: the whole run in one batch, up to a bound.
    fn preferred_batch_rows(&self, pending: u64) -> Option<usize> {
        self.message.digest.then(|| (pending as usize).clamp(1, DIGEST_MAX_ROWS))
    }
}
