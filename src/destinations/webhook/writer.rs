//! One run of a webhook sync: each batch one POST; the answer decides each row's outcome.

use async_trait::async_trait;

use super::client::Client;
use super::encoding;
use crate::destinations::http::CallError;
use crate::destinations::{DestinationError, RowOp, RowOutcome, Target, Writer};

pub(super) struct WebhookWriter {
    pub client: std::sync::Arc<Client>,
    pub target: Target,
}

#[async_trait]
impl Writer for WebhookWriter {
    fn fork(&self) -> Option<Box<dyn Writer>> {
        Some(Box::new(WebhookWriter { client: self.client.clone(), target: self.target.clone() }))
    }

    async fn write(&mut self, batch: &[RowOp]) -> Result<Vec<RowOutcome>, DestinationError> {
        match self.client.post(encoding::body(&self.target, batch)).await {
            Ok(body) => Ok(encoding::outcomes(&self.target, batch, &body)),
            // The batch as a whole: the engine splits it to find the rows at fault.
            Err(CallError::Refused(reason)) => Ok(vec![RowOutcome::RefusedInGroup(reason); batch.len()]),
            Err(e) => Err(e.into()),
        }
    }
}
