//! The integration tests, in one binary: each file here is a module (an area of sluice), and
//! `support` is what they share (throwaway projects, emulators of the services, the daemon as a
//! process). One binary links the bundled DuckDB once instead of once per file.
//!
//! `cargo test --test it run_lock::` runs one area; `scripts/test` runs them all.

mod support;

mod alerts;
mod architecture;
mod bad_input;
mod change_log;
mod cli;
mod command_destination;
mod command_source;
mod command_source_examples;
mod concurrency;
mod console;
mod crash;
mod cursor;
mod custom_destination;
mod daemon;
mod daemon_api;
mod database;
mod dbt;
mod delete_guard;
mod destination_identity;
mod durability;
mod engine;
mod environments;
mod everyday;
mod failed_rows;
mod fan_out;
mod faults;
mod field_writes;
mod file_destination;
mod fingerprints;
mod form_webhook;
mod google_sheets;
mod google_sheets_errors;
mod google_sheets_fidelity;
mod hubspot;
mod hubspot_fidelity;
mod injection;
mod kill;
mod mapping;
mod mcp;
mod models_only_read;
mod mysql_source;
mod notion;
mod on_remove;
mod packaging;
mod pipes;
mod redirects;
mod reference;
mod run_endings;
mod run_lock;
mod salesforce;
mod salesforce_fidelity;
mod saved_plans;
mod secrets;
mod send_pipeline;
mod sequences;
mod slack;
mod slack_fidelity;
mod smoke;
mod split_retries;
mod state_store;
mod streams;
mod warehouse_diff;
mod writeback;
