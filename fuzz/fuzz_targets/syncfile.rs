//! Any text as a sync file: `parse` gives a sync or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = sluice::project::syncfile::parse(std::path::Path::new("syncs/fuzzed.sql"), text);
});
