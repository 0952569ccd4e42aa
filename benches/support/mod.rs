//! What the benchmark needs besides sluice: a counting HTTP sink, a measured child process, drt,
//! and the idle daemon.

pub mod daemon;
pub mod drt;
pub mod measure;
pub mod sink;
