//! `slack`: each added or changed row becomes a message to a Slack incoming webhook, from a
//! template over its fields (or one digest message per run). See docs/destinations.md.
//!
//! `client` decides what Slack's answer means (sent, a refused message, a configuration
//! problem, a pause); `encoding` renders messages; the engine's retry loop decides how to retry.

mod client;
mod config;
mod encoding;
mod writer;

pub use config::SlackConfig;

use std::sync::Arc;

use async_trait::async_trait;

use self::client::Client;
use self::encoding::Message;
use crate::destinations::{Capabilities, Destination, DestinationError, Target, Writer};
use crate::project::Mode;
use writer::SlackWriter;

pub(super) const DIGEST_MAX_ROWS: usize = 10_000;

pub struct SlackDestination {
    config: SlackConfig,
    client: Arc<Client>,
}

impl SlackDestination {
    pub fn from_settings(name: &str, settings: &toml::Table) -> Result<Self, String> {
        let (mut config, requests) = crate::destinations::requests::parse::<SlackConfig>(settings, &config::REQUESTS)?;
        config.requests = requests;
        let client = Client::new(name, &config)?;
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
            rate_limit: Some(self.client.rate_limit()),
            ..self.config.requests.capabilities()
        }
    }

    /// Compiles the sync's templates against its fields. Posting is the only way to probe a
    /// webhook, and a check must not post, so reachability waits for the first run.
    async fn check(&self, target: &Target) -> Result<(), DestinationError> {
        Message::compile(target).map(drop).map_err(DestinationError::fatal)
    }

    async fn open(&self, target: &Target) -> Result<Box<dyn Writer>, DestinationError> {
        let message = Message::compile(target).map_err(DestinationError::fatal)?;
        Ok(Box::new(SlackWriter { client: self.client.clone(), target: target.clone(), message, warnings: Vec::new() }))
    }
}

/// This kind's settings and `[target]`, for the configuration reference.
pub fn reference() -> super::Reference {
    super::Reference::new::<config::SlackConfig, config::SlackTarget>(&config::REQUESTS)
}
