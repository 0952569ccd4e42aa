//! `kind = "command"`: a destination written as a program in any language. sluice writes each
//! batch as JSON lines on the program's stdin and reads one result line per row from its
//! stdout (docs/custom-destinations.md has the protocol).

mod client;
mod config;
mod destination;
mod encoding;

pub use destination::CommandDestination;
