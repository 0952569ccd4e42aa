//! A sluice project on disk: `sluice.toml` plus `syncs/**/*.sql`.
//!
//! Loading never fails because of one bad sync file: invalid syncs are collected in
//! [`Project::invalid`] so the others can still run (and `check` can list every problem).

pub mod after;
pub mod alert_config;
pub mod config;
pub mod cron;
pub mod dbt;
pub mod duration_setting;
pub mod environments;
pub mod mapping;
pub mod schema;
mod sqltext;
pub mod stream_config;
pub mod syncfile;

use std::fmt;
use std::path::{Path, PathBuf};

pub use config::{DestinationSpec, ProjectConfig, SourceConfig};
pub use cron::Schedule;
pub use mapping::{FieldMapping, FieldSource, WriteMode};
pub use stream_config::{stream_of, StreamConfig};
pub use syncfile::{DiffMode, Located, Mode, Nulls, OnRemove, SyncFile, Trigger};

pub const SYNCS_DIR: &str = "syncs";

/// Something wrong with the project's files: what, where (file:line) and what to do.
#[derive(Debug, Clone)]
pub struct ProjectError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
    pub hint: Option<String>,
}

impl ProjectError {
    pub fn file(file: &Path, message: String) -> Self {
        ProjectError { file: file.to_path_buf(), line: None, message, hint: None }
    }
    pub fn at(file: &Path, line: usize, message: String) -> Self {
        ProjectError { file: file.to_path_buf(), line: Some(line), message, hint: None }
    }
    pub fn with_line(mut self, line: Option<usize>) -> Self {
        self.line = line.or(self.line);
        self
    }
    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }
}

impl fmt::Display for ProjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ProjectError {}

/// The closest candidate to a misspelt name, if any is close enough to be a likely typo.
pub fn did_you_mean<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    // Close by Jaro-Winkler (long names, shared prefixes), or a few edits away as cargo reckons
    // it (short names: `cmr` for `crm` scores low on Jaro-Winkler).
    let edits = (input.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(input, c), strsim::damerau_levenshtein(input, c), c))
        .filter(|(score, distance, _)| *score > 0.8 || *distance <= edits)
        .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)))
        .map(|(_, _, c)| c.to_string())
}

/// A sync whose references to the project config are resolved.
#[derive(Clone, Debug)]
pub struct SyncSpec {
    pub file: SyncFile,
    pub source: String,
    pub destination: String,
    /// The dbt models its model reads (`{{ ref(...) }}`), by unique id.
    pub dbt_models: Vec<String>,
}

impl SyncSpec {
    pub fn name(&self) -> &str {
        &self.file.name
    }
}

pub struct Project {
    pub root: PathBuf,
    pub config: ProjectConfig,
    pub syncs: Vec<SyncSpec>,
    /// Sync files that failed to parse or resolve; reported, never run.
    pub invalid: Vec<ProjectError>,
    /// The dbt manifest (`[dbt] manifest`), when set and readable...
    pub dbt: Option<dbt::Manifest>,
    /// ...or why it could not be read.
    pub dbt_error: Option<String>,
}

impl Project {
    /// Streams no sync reads (`source = "stream:NAME"`): their events are kept for `retain`,
    /// then dropped unread.
    pub fn unread_streams(&self) -> Vec<&str> {
        self.config
            .streams
            .keys()
            .filter(|name| !self.syncs.iter().any(|s| stream_of(&s.source) == Some(name.as_str())))
            .map(String::as_str)
            .collect()
    }

    /// Loads the project in its default environment. Err only when `sluice.toml` itself is
    /// unusable.
    pub fn load(root: &Path) -> Result<Project, ProjectError> {
        Self::load_in(root, None)
    }

    /// Loads the project in environment `env` (`--env`; `None`: sluice.toml's `environment`).
    pub fn load_in(root: &Path, env: Option<&str>) -> Result<Project, ProjectError> {
        let config = config::load(root, env)?;
        let mut files = Vec::new();
        collect_sql_files(&root.join(SYNCS_DIR), &mut files);
        files.sort();
        let mut syncs: Vec<SyncSpec> = Vec::new();
        let mut invalid = Vec::new();
        for path in files {
            let shown = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| ProjectError::file(&shown, format!("cannot read: {e}")))
                .and_then(|text| syncfile::parse(&shown, &text))
                .and_then(|file| resolve(&config, file));
            match parsed {
                Ok(sync) => {
                    if let Some(other) = syncs.iter().find(|s| s.name() == sync.name()) {
                        invalid.push(ProjectError::file(
                            &shown,
                            format!("sync name `{}` is already used by {}: rename one file", sync.name(), other.file.path.display()),
                        ));
                    } else {
                        syncs.push(sync);
                    }
                }
                Err(e) => invalid.push(e),
            }
        }
        let mut project = Project { root: root.to_path_buf(), config, syncs, invalid, dbt: None, dbt_error: None };
        project.resolve_refs();
        project.check_after();
        Ok(project)
    }

    /// Reads `[dbt] manifest` and puts the relation dbt built in place of each `{{ ref(...) }}`;
    /// a sync whose refs cannot be resolved is invalid, at the ref's line.
    fn resolve_refs(&mut self) {
        let manifest = self.config.dbt.as_ref().map(|d| dbt::Manifest::load(&self.root.join(&d.manifest)));
        let mut kept = Vec::new();
        for mut sync in std::mem::take(&mut self.syncs) {
            let line = |offset: usize| sync.file.model_line + sync.file.model[..offset.min(sync.file.model.len())].matches('\n').count();
            let resolved = match dbt::refs(&sync.file.model) {
                Ok(refs) if refs.is_empty() => {
                    kept.push(sync);
                    continue;
                }
                Err(e) => Err(e),
                Ok(refs) => match &manifest {
                    None => Err((refs[0].start, "the model uses `{{ ref(...) }}` but sluice.toml has no [dbt] manifest: add `[dbt]` with `manifest = \"path/to/target/manifest.json\"`".to_string())),
                    Some(Err(e)) => Err((refs[0].start, e.clone())),
                    Some(Ok(m)) => m.resolve(&sync.file.model, &refs),
                },
            };
            match resolved {
                Ok((model, ids)) => {
                    sync.file.model = model;
                    sync.dbt_models = ids;
                    kept.push(sync);
                }
                Err((offset, message)) => self.invalid.push(ProjectError::at(&sync.file.path, line(offset), message)),
            }
        }
        self.syncs = kept;
        match manifest {
            Some(Ok(m)) => self.dbt = Some(m),
            Some(Err(e)) => self.dbt_error = Some(e),
            None => {}
        }
    }

    /// The syncs a `--select` picks: `tag:NAME` (over a dbt model tagged NAME) or `dbt:MODEL`
    /// (over MODEL or a model downstream of it), in project order.
    pub fn select_dbt(&self, selectors: &[String]) -> Result<Vec<&SyncSpec>, String> {
        let mut models = std::collections::BTreeSet::new();
        for selector in selectors {
            let Some(manifest) = &self.dbt else {
                return Err(match &self.dbt_error {
                    Some(e) => format!("--select {selector}: {e}"),
                    None => format!("--select {selector} reads the dbt manifest: set `[dbt] manifest` in sluice.toml"),
                });
            };
            if let Some(tag) = selector.strip_prefix("tag:") {
                models.extend(manifest.tagged(tag));
            } else if let Some(model) = selector.strip_prefix("dbt:") {
                let below =
                    manifest.downstream(model).ok_or_else(|| format!("--select {selector}: the dbt manifest has no model `{model}`"))?;
                models.extend(below);
            } else {
                return Err(format!("--select {selector}: use `tag:NAME` (syncs over dbt models with that tag) or `dbt:MODEL` (syncs over MODEL or a model downstream of it); name syncs without --select"));
            }
        }
        Ok(self.syncs.iter().filter(|s| s.dbt_models.iter().any(|m| models.contains(m))).collect())
    }

    /// The syncs named (all when `names` is empty); unknown names are an error with a suggestion.
    pub fn select(&self, names: &[String]) -> Result<Vec<&SyncSpec>, String> {
        if names.is_empty() {
            return Ok(self.syncs.iter().collect());
        }
        names
            .iter()
            .map(|n| {
                self.syncs.iter().find(|s| s.name() == n).ok_or_else(|| {
                    if let Some(bad) = self.invalid.iter().find(|e| syncfile::sync_name(&e.file) == *n) {
                        return format!("sync `{n}` is invalid: {bad}");
                    }
                    let hint =
                        did_you_mean(n, self.syncs.iter().map(|s| s.name())).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
                    format!("no sync named `{n}` in {}/{SYNCS_DIR}{hint}", self.root.display())
                })
            })
            .collect()
    }
}

fn collect_sql_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_sql_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "sql") {
            out.push(path);
        }
    }
}

/// Resolves `source`/`destination` against the config. Omitted means "the only one there is".
fn resolve(config: &ProjectConfig, file: SyncFile) -> Result<SyncSpec, ProjectError> {
    let source = match file.source.as_ref().filter(|s| stream_of(&s.value).is_some()) {
        Some(named) => stream_source(config, &file, named)?,
        None => pick(&file, file.source.as_ref(), config.sources.keys(), "source", "sources")?,
    };
    if let (syncfile::Trigger::OnEvent { line, .. }, None) = (&file.trigger, stream_of(&source)) {
        return Err(ProjectError::at(
            &file.path,
            *line,
            format!("trigger = \"on_event\" needs a stream to wait on: `source = \"stream:NAME\"` (this sync reads `{source}`)"),
        ));
    }
    let destination = pick(&file, file.destination.as_ref(), config.destinations.keys(), "destination", "destinations")?;
    if let Some(own) = &file.alerts {
        let at = |m: &str| Err(ProjectError::at(&file.path, own.line, m.to_string()));
        match &config.alerts {
            None => return at("this sync's [alerts] has nothing to send them with: sluice.toml has no [alerts] (its `destination`)"),
            Some(project) => {
                if let Err((_, m)) = project.for_sync(&file).check() {
                    return at(&format!("[alerts] {m}"));
                }
            }
        }
    }
    Ok(SyncSpec { file, source, destination, dbt_models: Vec::new() })
}

/// `source = "stream:NAME"`: a `[streams.NAME]`, read by a sync that never removes what it sent
/// (events leaving the stream's retention are not deletions).
fn stream_source(config: &ProjectConfig, file: &SyncFile, named: &Located<String>) -> Result<String, ProjectError> {
    let stream = stream_of(&named.value).unwrap_or_default();
    if !config.streams.contains_key(stream) {
        let names: Vec<&str> = config.streams.keys().map(String::as_str).collect();
        return Err(ProjectError::at(
            &file.path,
            named.line,
            format!("stream `{stream}` is not defined in sluice.toml (defined: {})", list(&names)),
        )
        .with_hint(
            did_you_mean(stream, names.iter().copied())
                .map(|s| format!("did you mean `stream:{s}`?"))
                .or_else(|| Some(format!("add a [streams.{stream}] table to sluice.toml"))),
        ));
    }
    let refuse = |why: &str| {
        Err(ProjectError::at(
            &file.path,
            named.line,
            format!("a sync over a stream {why}: events that leave the stream's retention were not deleted"),
        ))
    };
    if file.mode == Mode::Mirror || file.on_remove != OnRemove::Ignore {
        return refuse("cannot remove or clear records (mode = \"mirror\", on_remove)");
    }
    if file.cursor.is_some() {
        return Err(ProjectError::at(
            &file.path,
            named.line,
            "a sync over a stream reads only the events it has not read yet already: drop `cursor`".to_string(),
        ));
    }
    Ok(named.value.clone())
}

fn pick<'a>(
    file: &SyncFile,
    named: Option<&Located<String>>,
    available: impl Iterator<Item = &'a String> + Clone,
    what: &str,
    section: &str,
) -> Result<String, ProjectError> {
    let names: Vec<&str> = available.map(|s| s.as_str()).collect();
    match named {
        Some(n) if names.contains(&n.value.as_str()) => Ok(n.value.clone()),
        Some(n) => Err(ProjectError::at(
            &file.path,
            n.line,
            format!("{what} `{}` is not defined in sluice.toml (defined: {})", n.value, list(&names)),
        )
        .with_hint(
            did_you_mean(&n.value, names.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| Some(format!("add a [{section}.{}] table to sluice.toml", n.value))),
        )),
        None if names.len() == 1 => Ok(names[0].to_string()),
        None => Err(ProjectError::at(
            &file.path,
            file.header_line,
            format!("the header names no `{what}` and sluice.toml defines {}: add `{what} = \"NAME\"`", list(&names)),
        )),
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
    }
}
