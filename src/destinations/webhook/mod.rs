//! `webhook`: POSTs each batch as JSON to a URL. See docs/destinations.md for the wire format.
//!
//! `client` decides *whether* a response is a success, a per-row answer, a data rejection or a
//! transient failure; the engine's retry loop decides *how* to retry.

mod client;
mod config;
mod encoding;
mod writer;

pub use config::WebhookConfig;
pub use encoding::SIGNATURE_HEADER;

use async_trait::async_trait;

use crate::destinations::{Capabilities, Destination, DestinationError, Target, Writer};
use client::Client;
use writer::WebhookWriter;

pub struct WebhookDestination {
    config: WebhookConfig,
    client: std::sync::Arc<Client>,
}

impl WebhookDestination {
    pub fn from_settings(name: &str, settings: &toml::Table) -> Result<Self, String> {
        let (mut config, requests) = crate::destinations::requests::parse::<WebhookConfig>(settings, &config::REQUESTS)?;
        config.requests = requests;
        let client = Client::new(name, &config)?;
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
        Capabilities { rate_limit: self.client.rate_limit(), ..self.config.requests.capabilities() }
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

/// This kind's settings and `[target]`, for the configuration reference.
pub fn reference() -> super::Reference {
    super::Reference::new::<config::WebhookConfig, super::NoTarget>(&config::REQUESTS)
}
