//! Environments: `[env.NAME]` overlays in sluice.toml, chosen with `--env NAME` (or
//! `SLUICE_ENV`), else the config's `environment`, as dbt's targets are.
//!
//! An overlay holds `state`, `dbt`, `sources.X` and `destinations.X` tables; each one it gives replaces
//! the base's table of that name whole (a source that is DuckDB in dev and Postgres in prod shares
//! no settings), and names the base lacks are added. Applied to the raw table before `${VAR}`s
//! are resolved, so another environment's variables need not be set.

use std::path::Path;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{did_you_mean, ProjectError};

/// `[env.NAME]`: what differs in one environment. Each table given replaces the base's whole.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvOverlay {
    /// This environment's `[state]` (its own store: what was sent to its destinations).
    #[schemars(with = "Option<super::schema::AnyTable>")]
    pub state: Option<toml::Table>,
    /// Sources by name, replacing or adding to `[sources]`.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, super::schema::AnyTable>")]
    pub sources: IndexMap<String, toml::Table>,
    /// Destinations by name, replacing or adding to `[destinations]`.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, super::schema::AnyTable>")]
    pub destinations: IndexMap<String, toml::Table>,
    /// This environment's `[dbt]` (the manifest of the dbt target it reads).
    #[schemars(with = "Option<super::schema::AnyTable>")]
    pub dbt: Option<toml::Table>,
}

/// Lays the chosen environment's overlay of `envs` (sluice.toml's `env`, as written) over
/// `table` (the rest of it): `chosen`, else the table's `environment`, else none. Returns the
/// environment in effect.
pub fn apply(
    table: &mut toml::Table,
    envs: Option<&toml::Value>,
    chosen: Option<&str>,
    path: &Path,
    text: &str,
) -> Result<Option<String>, ProjectError> {
    // The first line assigning `key` (`key =`, `key.x =`) or opening its table (`[key]`, `[key.x]`).
    let line = |key: &str| {
        text.lines()
            .position(|l| {
                let l = l.trim_start().trim_start_matches('[').trim_start();
                l.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with(['=', '.', ']']))
            })
            .map(|i| i + 1)
    };
    let none = toml::Table::new();
    let envs = match envs {
        None => &none,
        Some(toml::Value::Table(t)) => t,
        Some(_) => {
            return Err(ProjectError::file(path, "`env` must be tables: [env.NAME] for each environment".into()).with_line(line("env")))
        }
    };
    let default = match table.get("environment") {
        None => None,
        Some(toml::Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(ProjectError::file(path, "`environment` names one of the [env.NAME] tables".into()).with_line(line("environment")))
        }
    };
    let Some(name) = chosen.map(str::to_string).or(default.clone()) else { return Ok(None) };
    let Some(overlay) = envs.get(&name) else {
        let defined: Vec<&str> = envs.keys().map(String::as_str).collect();
        let whence = if chosen.is_some() { "--env" } else { "`environment`" };
        let listed =
            if defined.is_empty() { "none".to_string() } else { defined.iter().map(|d| format!("`{d}`")).collect::<Vec<_>>().join(", ") };
        let hint = did_you_mean(&name, defined.iter().copied())
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| format!("add an [env.{name}] table"));
        let at = if chosen.is_some() { None } else { line("environment") };
        return Err(ProjectError::file(
            path,
            format!("{whence} names environment `{name}`, which sluice.toml does not define (defined: {listed})"),
        )
        .with_line(at)
        .with_hint(Some(hint)));
    };
    let overlay: EnvOverlay = overlay.clone().try_into().map_err(|e: toml::de::Error| {
        // serde's "invalid type" quotes the value, which may be a secret written in the file.
        let message = e.message().trim();
        let message = if message.starts_with("unknown field") {
            message.to_string()
        } else {
            "an environment holds tables only: `state`, `dbt`, `sources.NAME`, `destinations.NAME`".to_string()
        };
        ProjectError::file(path, format!("invalid [env.{name}]: {message}")).with_line(line(&format!("env.{name}")))
    })?;
    for (section, replacement) in [("state", overlay.state), ("dbt", overlay.dbt)] {
        if let Some(replacement) = replacement {
            table.insert(section.into(), toml::Value::Table(replacement));
        }
    }
    for (section, entries) in [("sources", overlay.sources), ("destinations", overlay.destinations)] {
        let base = table.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(base) = base.as_table_mut() else { continue }; // a wrong type is the base config's error
        for (entry, settings) in entries {
            base.insert(entry, toml::Value::Table(settings));
        }
    }
    Ok(Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(text: &str, chosen: Option<&str>) -> Result<(toml::Table, Option<String>), String> {
        let mut table: toml::Table = toml::from_str(text).unwrap();
        let envs = table.remove("env");
        let env = apply(&mut table, envs.as_ref(), chosen, Path::new("sluice.toml"), text).map_err(|e| e.to_string())?;
        Ok((table, env))
    }

    const CONFIG: &str = "environment = \"dev\"\n\
        [sources.wh]\nkind = \"duckdb\"\npath = \"dev.duckdb\"\n\
        [destinations.crm]\nkind = \"webhook\"\nurl = \"http://localhost/dev\"\n\
        [env.dev]\n\
        [env.prod.state]\nurl = \"${PROD_STATE}\"\n\
        [env.prod.sources.wh]\nkind = \"postgres\"\nurl = \"${PROD_PG}\"\n\
        [env.prod.destinations.alerts]\nkind = \"slack\"\n";

    #[test]
    fn an_overlay_replaces_whole_tables_and_adds_new_ones() {
        let (t, env) = applied(CONFIG, Some("prod")).unwrap();
        assert_eq!(env.as_deref(), Some("prod"));
        assert!(t.get("env").is_none());
        assert_eq!(t["sources"]["wh"].as_table().unwrap().keys().collect::<Vec<_>>(), ["kind", "url"], "no `path` left over");
        assert_eq!(t["state"]["url"].as_str(), Some("${PROD_STATE}"), "resolved later, for the chosen environment only");
        assert_eq!(t["destinations"].as_table().unwrap().keys().collect::<Vec<_>>(), ["crm", "alerts"]);
        let (t, env) = applied(CONFIG, None).unwrap();
        assert_eq!(env.as_deref(), Some("dev"), "the stated default");
        assert_eq!(t["sources"]["wh"]["path"].as_str(), Some("dev.duckdb"));
        assert_eq!(applied("[sources.wh]\nkind = \"duckdb\"\n", None).unwrap().1, None, "no environments: the config as written");
    }

    #[test]
    fn unknown_environments_and_keys_are_errors() {
        let e = applied(CONFIG, Some("prd")).unwrap_err();
        assert!(e.contains("--env names environment `prd`, which sluice.toml does not define (defined: `dev`, `prod`)"), "{e}");
        assert!(e.contains("did you mean `prod`?"), "{e}");
        let e = applied("environment = \"qa\"\n[env.dev]\n", None).unwrap_err();
        assert!(e.starts_with("sluice.toml:1: `environment` names environment `qa`"), "{e}");
        let e = applied("[env.production]\n[env.prod.daemon]\nlisten = \"off\"\n", Some("prod")).unwrap_err();
        assert!(e.starts_with("sluice.toml:2: invalid [env.prod]: unknown field `daemon`"), "{e}");
        let e = applied("[env.prod]\nstate = \"postgres://u:hunter2@db/x\"\n", Some("prod")).unwrap_err();
        assert!(e.contains("holds tables only") && !e.contains("hunter2"), "{e}");
    }
}
