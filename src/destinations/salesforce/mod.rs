//! `salesforce`: sObject Collections for ordinary runs, Bulk API 2.0 for large ones. See
//! docs/destinations.md.
//!
//! Records are matched by the sync's External ID field; the Salesforce id that comes back is
//! stored, so mirror removals delete by id. `client` decides *whether* a failure is worth
//! retrying; the engine decides *how*.

mod auth;
mod bulk;
mod client;
mod config;
mod destination;
mod encoding;
mod writer;

pub use config::SalesforceConfig;
pub use destination::SalesforceDestination;
