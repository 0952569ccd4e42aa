//! Any text as sluice.toml: the loader, then every destination built from it, give a config or
//! an error, never a panic. The project root does not exist, so `*_file` keys fail to read.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let root = Path::new("/nonexistent-sluice-fuzz");
    let Ok(config) = sluice::project::config::parse(root, &root.join("sluice.toml"), text) else {
        return;
    };
    for (name, spec) in &config.destinations {
        let _ = sluice::destinations::build(name, spec, root);
    }
});
