use async_trait::async_trait;

use super::client::{Answer, Client};
use super::config::WebhookConfig;
use super::encoding;
use crate::destinations::{parse_settings, Capabilities, Destination, DestinationError, RowOp, RowOutcome, Target, Writer};

pub struct WebhookDestination {
    config: WebhookConfig,
    client: std::sync::Arc<Client>,
}

impl WebhookDestination {
    pub fn from_settings(settings: &toml::Table) -> Result<Self, String> {
        let config: WebhookConfig = parse_settings(settings)?;
        let client = Client::new(&config)?;
        Ok(WebhookDestination { config, client: std::sync::Arc::new(client) })
    }
}

#[async_trait]
impl Destination for WebhookDestination {
    /// The endpoint without its query (which often carries a token: rotating it is no move).
    async fn identity(&self) -> Result<String, DestinationError> {
        use secrecy::ExposeSecret;
        let url = reqwest::Url::parse(self.config.url.expose_secret()).map_err(|e| DestinationError::fatal(format!("`url`: {e}")))?;
        Ok(format!("{}://{}:{}{}", url.scheme(), url.host_str().unwrap_or(""), url.port_or_known_default().unwrap_or(0), url.path()))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::every_mode(self.config.max_batch_rows, self.config.max_attempts, self.config.retry_initial_delay)
    }

    /// A webhook has no schema to check against and no side-effect-free probe; `check`
    /// validates the sync's `[target]` (none is used) and leaves reachability to the first run.
    async fn check(&self, target: &Target) -> Result<(), DestinationError> {
        if let Some(key) = target.settings.keys().next() {
            return Err(DestinationError::fatal(format!("[target] `{key}`: the webhook destination takes no [target] settings")));
        }
        Ok(())
    }

    async fn open(&self, target: &Target) -> Result<Box<dyn Writer>, DestinationError> {
        Ok(Box::new(WebhookWriter { client: self.client.clone(), target: target.clone() }))
    }
}

struct WebhookWriter {
    client: std::sync::Arc<Client>,
    target: Target,
}

#[async_trait]
impl Writer for WebhookWriter {
    async fn write(&mut self, batch: &[RowOp]) -> Result<Vec<RowOutcome>, DestinationError> {
        match self.client.post(encoding::body(&self.target, batch)).await? {
            Answer::Accepted(body) => Ok(encoding::outcomes(&self.target, batch, &body)),
            // The batch as a whole: the engine splits it to find the rows at fault.
            Answer::Refused(reason) => Ok(vec![RowOutcome::RefusedInGroup(reason); batch.len()]),
        }
    }
}
