//! `google_sheets`: keeps a tab equal to the model by key. See docs/destinations.md.
//!
//! Each run reads the tab's header row and key column(s) (`writer::Tab`), so rows people
//! inserted, sorted or deleted by hand are found where they are now. Changed rows are written in
//! place (only mapped cells), new rows appended, removed rows deleted. `client` decides
//! *whether* a failed request is worth retrying; the engine decides *how*.
//!
//! Files: `config` (settings), `auth` (service-account OAuth via yup-oauth2), `client` (HTTP,
//! quotas, error meaning), `encoding` (cells, keys, A1 notation), `layout` (header alignment,
//! key index), `writer` (a run), `destination` (the trait impl and `check`).

mod auth;
mod client;
mod config;
mod destination;
mod encoding;
mod layout;
mod writer;

pub use config::SheetsConfig;
pub use destination::SheetsDestination;
