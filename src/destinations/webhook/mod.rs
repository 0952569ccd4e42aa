//! `webhook`: POSTs each batch as JSON to a URL. See docs/destinations.md for the wire format.
//!
//! `client` decides *whether* a response is a success, a per-row answer, a data rejection or a
//! transient failure; the engine's retry loop decides *how* to retry.

mod client;
mod config;
mod destination;
mod encoding;

pub use config::WebhookConfig;
pub use destination::WebhookDestination;
pub use encoding::SIGNATURE_HEADER;
