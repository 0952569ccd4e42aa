//! `sluice init DIR`: writes the example project that this repository's root also is, so the
//! scaffold is always a project the test suite has run.

use std::path::Path;

use super::{fail, output, Failure, EXIT_INVALID, EXIT_OK};

const FILES: &[(&str, &str)] = &[
    ("sluice.toml", include_str!("../../sluice.toml")),
    ("syncs/high_value_customers.sql", include_str!("../../syncs/high_value_customers.sql")),
    ("syncs/churn_risk.sql", include_str!("../../syncs/churn_risk.sql")),
    ("data/customers.csv", include_str!("../../data/customers.csv")),
    ("data/orders.csv", include_str!("../../data/orders.csv")),
    ("data/churn_scores.csv", include_str!("../../data/churn_scores.csv")),
    (".gitignore", ".sluice/\nout/\n"),
];

pub fn init(dir: &Path) -> Result<u8, Failure> {
    if dir.join("sluice.toml").exists() {
        return Err(fail(EXIT_INVALID, format!("{} already holds a sluice.toml: nothing written", dir.display())));
    }
    for (rel, contents) in FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail(EXIT_INVALID, format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(&path, contents).map_err(|e| fail(EXIT_INVALID, format!("cannot write {}: {e}", path.display())))?;
    }
    output::say!("created a sluice project in {}", dir.display());
    output::say!("next: cd {} && sluice check && sluice plan && sluice run", dir.display());
    Ok(EXIT_OK)
}
