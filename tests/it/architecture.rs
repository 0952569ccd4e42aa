//! The dependency rules of ARCHITECTURE.md, checked by reading `src/`: a module may name only
//! the modules its layer may use. Data flows one way (sync file -> model rows -> diff -> batches
//! -> destination -> outcomes -> state); the rules keep the code flowing the same way.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The code of a file without its comments and string literals: what is named in docs or
/// messages is no dependency.
fn code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match (escaped, c) {
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => escaped = false,
                    }
                }
                out.push_str("\"\"");
            }
            // A char literal such as '"' must not open a string; lifetimes pass through.
            '\'' => {
                let rest: String = chars.clone().take(3).collect();
                let literal = rest.starts_with('\\') || rest.chars().nth(1) == Some('\'');
                if literal {
                    for c in chars.by_ref() {
                        if c == '\'' {
                            break;
                        }
                    }
                }
                out.push('\'');
            }
            c => out.push(c),
        }
    }
    out
}

/// The top-level module a file of `src/` belongs to (`engine` for src/engine/send.rs), and for
/// files of a destination, that destination (`hubspot` for src/destinations/hubspot/client.rs).
fn module_of(src: &Path, file: &Path) -> (String, Option<String>) {
    let rel: Vec<String> =
        file.strip_prefix(src).unwrap().iter().map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
    let destination = (rel[0] == "destinations" && rel.len() > 2).then(|| rel[1].clone());
    (rel[0].clone(), destination)
}

/// The top-level modules a file names (`crate::state::...`), and the destinations it names
/// (`crate::destinations::slack::...`, or `super::super::slack` from inside another one).
fn names(code: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    let mut modules = BTreeSet::new();
    let mut destinations = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let module = ident(rest);
        if module == "destinations" {
            if let Some(sub) = rest.strip_prefix("destinations::") {
                destinations.insert(ident(sub));
            }
        }
        modules.insert(module);
    }
    for (i, _) in code.match_indices("super::super::") {
        destinations.insert(ident(&code[i + "super::super::".len()..]));
    }
    (modules, destinations)
}

#[test]
fn the_layers_depend_only_on_what_architecture_md_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let folders: BTreeSet<String> = std::fs::read_dir(src.join("destinations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    // (module, modules it may not name, why)
    let rules: [(&str, &[&str], &str); 5] = [
        (
            "diff",
            &["destinations", "engine", "state", "source", "project", "daemon", "cli", "alerts", "template", "metrics"],
            "diff depends on nothing but value",
        ),
        ("destinations", &["state", "engine", "daemon", "cli"], "destinations never depend on state or the engine"),
        ("source", &["destinations", "engine", "state", "daemon", "cli"], "sources never depend on destinations"),
        ("engine", &["daemon", "cli"], "the engine never depends on the daemon or the CLI"),
        ("state", &["engine", "daemon", "cli", "source"], "the state store depends on no layer above it"),
    ];
    let mut broken = Vec::new();
    for file in sources(&src) {
        let (module, destination) = module_of(&src, &file);
        let text = std::fs::read_to_string(&file).unwrap();
        let (modules, named_destinations) = names(&code(&text));
        let shown = file.strip_prefix(&src).unwrap().display().to_string();
        for (layer, forbidden, why) in &rules {
            if module == *layer {
                for m in modules.iter().filter(|m| forbidden.contains(&m.as_str())) {
                    broken.push(format!("src/{shown} names crate::{m}: {why}"));
                }
            }
        }
        // Nothing depends on the CLI (but the binary, which starts it).
        if module != "cli" && module != "main" && modules.contains("cli") {
            broken.push(format!("src/{shown} names crate::cli: nothing depends on the CLI"));
        }
        if let Some(own) = destination {
            for other in named_destinations.iter().filter(|d| **d != own && folders.contains(*d)) {
                broken.push(format!("src/{shown} names destination `{other}`: no destination folder depends on another"));
            }
        }
    }
    assert!(broken.is_empty(), "dependency rules broken (see ARCHITECTURE.md):\n{}", broken.join("\n"));
}

#[test]
fn the_rule_reader_sees_code_not_comments_or_strings() {
    let text = "// crate::cli::start\nlet s = \"crate::engine\"; let c = '\"'; use crate::value::Value; fn f<'a>(x: &'a str) {}\n/* crate::daemon */ super::super::slack::x";
    let (modules, destinations) = names(&code(text));
    assert_eq!(modules.into_iter().collect::<Vec<_>>(), ["value"]);
    assert_eq!(destinations.into_iter().collect::<Vec<_>>(), ["slack"]);
}

/// Every destination folder has the same files in the same roles (ARCHITECTURE.md): a new
/// engineer finds the protocol of any destination in `client.rs`, its writer in `writer.rs`.
#[test]
fn every_destination_has_the_same_shape() {
    let destinations = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/destinations");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&destinations).unwrap() {
        let folder = entry.unwrap().path();
        if !folder.is_dir() {
            continue;
        }
        for file in ["mod.rs", "config.rs", "client.rs", "encoding.rs", "writer.rs"] {
            if !folder.join(file).exists() {
                missing.push(format!("{}/{file}", folder.file_name().unwrap().to_string_lossy()));
            }
        }
        if folder.join("destination.rs").exists() {
            missing.push(format!("{}: the Destination belongs in mod.rs", folder.display()));
        }
    }
    assert!(missing.is_empty(), "destination folders out of shape: {missing:?}");
}
