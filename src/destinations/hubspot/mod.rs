//! `hubspot`: CRM v3 batch APIs. See docs/destinations.md.
//!
//! Records are matched by the sync's `id_property` (e.g. `email`); HubSpot's record id comes back
//! in the results and is stored, so mirror removals archive by id. `client` decides *whether* a
//! failed request is worth retrying; the engine decides *how*.

mod client;
mod config;
mod destination;
mod encoding;
mod writer;

pub use config::HubSpotConfig;
pub use destination::HubSpotDestination;
