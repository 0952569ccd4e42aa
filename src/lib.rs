//! sluice: reverse ETL from plain `.sql` files.
//!
//! Data flows one way: sync file ([`project`]) -> model rows ([`source`]) -> [`diff`] against
//! the [`state`] store -> batches ([`engine`]) -> [`destinations`] -> outcomes -> state.
//! See ARCHITECTURE.md for the map and the invariants.

pub mod cli;
pub mod daemon;
pub mod destinations;
pub mod diff;
pub mod engine;
pub mod metrics;
pub(crate) mod panics;
mod probe;
pub(crate) mod process;
pub mod project;
pub mod source;
pub mod state;
pub mod template;
pub mod value;
