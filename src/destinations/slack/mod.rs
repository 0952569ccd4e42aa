//! `slack`: each added or changed row becomes a message to a Slack incoming webhook, from a
//! template over its fields (or one digest message per run). See docs/destinations.md.
//!
//! `client` decides what Slack's answer means (sent, a refused message, a configuration
//! problem, a pause); `encoding` renders messages; the engine's retry loop decides how to retry.

mod client;
mod config;
mod destination;
mod encoding;

pub use config::SlackConfig;
pub use destination::SlackDestination;
