//! `file`: keeps a CSV or JSON-lines file equal to the synced rows. Upsert, update and mirror
//! rewrite the file atomically (temp file + rename) after every batch, so a kill never leaves a
//! torn file; insert appends.

mod config;
mod destination;
mod encoding;

pub use config::{FileConfig, Format};
pub use destination::FileDestination;
