//! `sluice.toml`: read with the `config` crate (the file, then `SLUICE__SECTION__KEY`
//! environment overrides), then `${VAR}` interpolation and `*_file` secrets, then typed.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

pub use super::alert_config::{AlertEvent, AlertsConfig, ALERT_KINDS};
use super::{did_you_mean, ProjectError};
use crate::project::syncfile::unknown_field;

pub const CONFIG_FILE: &str = "sluice.toml";
pub const DEFAULT_STATE_URL: &str = "sqlite://.sluice/state.db";

/// `sluice.toml`: every section is optional but the sources and destinations syncs name.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// Where sluice keeps what it has sent.
    #[serde(default)]
    pub state: StateConfig,
    /// The databases models run in, by name (`source = "NAME"` in a sync file).
    #[serde(default)]
    pub sources: IndexMap<String, SourceConfig>,
    /// Where rows go, by name (`destination = "NAME"` in a sync file).
    #[serde(default)]
    #[schemars(with = "IndexMap<String, super::schema::AnyTable>")]
    pub destinations: IndexMap<String, DestinationSpec>,
    /// How `sluice daemon` schedules runs and serves its endpoint.
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// How many removals a mirror run may send before it needs `--allow-deletes`.
    #[serde(default)]
    pub delete_guard: DeleteGuardConfig,
    /// What happens to rows a destination rejected.
    #[serde(default)]
    pub retry: RetryConfig,
    /// How `sluice run` (and `retry`, `apply`) end.
    #[serde(default)]
    pub run: RunConfig,
    /// A message when a sync fails, recovers or has rows rejected. No alerts without it.
    pub alerts: Option<AlertsConfig>,
    /// Inbound webhooks, by name: the daemon accepts events at `POST /hooks/NAME` and syncs
    /// read them with `source = "stream:NAME"` (README, "Streams").
    #[serde(default)]
    pub streams: IndexMap<String, super::stream_config::StreamConfig>,
    /// The environment used when neither `--env` nor `SLUICE_ENV` names one: one of the
    /// `[env.NAME]` tables. Left out: the config as written, unless one is named.
    pub environment: Option<String>,
    /// Environments by name (`[env.prod]`), chosen with `--env NAME`: the `state`,
    /// `sources.NAME` and `destinations.NAME` tables an environment gives replace the base's of
    /// that name whole, or are added (README, "Environments").
    #[serde(default)]
    pub env: IndexMap<String, super::environments::EnvOverlay>,
    /// A dbt project whose models syncs read with `{{ ref('model') }}` (README, "dbt").
    pub dbt: Option<DbtConfig>,
    /// The run history and the change log, also written to tables in a source database after
    /// each run (docs/writeback.md).
    pub writeback: Option<WritebackConfig>,
    /// The environment in effect, once loaded (`--env`, else `environment`).
    #[serde(skip)]
    #[schemars(skip)]
    pub active_env: Option<String>,
}

/// `[dbt]`: where dbt wrote what it built.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbtConfig {
    /// The dbt project's `target/manifest.json`, relative to this project: `{{ ref('x') }}` in a
    /// model becomes the relation dbt built for model `x` (give each environment its own, as
    /// dbt's targets build into their own schemas).
    #[schemars(with = "String")]
    pub manifest: PathBuf,
}

/// `[writeback]`: the run history and the change log, also written after each run to tables in
/// one of the sources (Postgres, MariaDB/MySQL or DuckDB), for models to join with.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WritebackConfig {
    /// The source whose database gets the tables (`sluice_runs`, `sluice_changes`).
    pub source: String,
    /// The schema (Postgres) or database (MariaDB/MySQL) they are in, created when missing;
    /// DuckDB keeps them in a file of sluice's own, attached to the source's models as this name.
    #[serde(default = "default_writeback_schema")]
    pub schema: String,
}

fn default_writeback_schema() -> String {
    "sluice_log".to_string()
}

/// `[run]`: how `sluice run` (and `retry`, `apply`) end.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Exit 1 when a destination rejected rows, for orchestrators that must stop there
    /// (`--fail-on-rejected` sets it for one command). Off: rejected rows are kept, retried,
    /// shown by `sluice failures`, and the command exits 0.
    #[serde(default)]
    pub fail_on_rejected: bool,
}

/// `[retry]`: what happens to rows a destination rejected.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// A rejected row that has not changed is sent again after this long (`sluice retry` sooner).
    #[serde(default = "default_rejected_after", with = "crate::project::duration_setting")]
    #[schemars(with = "super::schema::DurationText")]
    pub rejected_after: std::time::Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig { rejected_after: default_rejected_after() }
    }
}

fn default_rejected_after() -> std::time::Duration {
    std::time::Duration::from_secs(24 * 3600)
}

/// `[delete_guard]`: how many removals a mirror run may send before it needs `--allow-deletes`.
/// A sync's header can set its own `max_deletes` / `max_delete_pct`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteGuardConfig {
    /// At most this many removals per run (no limit when unset).
    pub max_deletes: Option<u64>,
    /// At most this share of the rows the destination holds, in percent.
    #[serde(default = "default_delete_pct")]
    pub max_delete_pct: f64,
}

impl Default for DeleteGuardConfig {
    fn default() -> Self {
        DeleteGuardConfig { max_deletes: None, max_delete_pct: default_delete_pct() }
    }
}

fn default_delete_pct() -> f64 {
    50.0
}

/// `[daemon]`: how `sluice daemon` schedules runs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// IANA time zone the cron schedules are read in (e.g. "Europe/Berlin").
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Runs at the same time, over all syncs.
    #[serde(default = "default_concurrent_runs")]
    pub max_concurrent_runs: usize,
    /// How long runs in flight may take to finish their batch after SIGTERM.
    #[serde(default = "default_shutdown_timeout", with = "crate::project::duration_setting")]
    #[schemars(with = "super::schema::DurationText")]
    pub shutdown_timeout: std::time::Duration,
    /// Address of the HTTP endpoint (health, metrics, API); "off" disables it.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Bearer token the mutating API endpoints require (and that shows read endpoints the
    /// errors of runs, which may quote row data). Without it the daemon generates one into the
    /// state directory (`api_token`, mode 0600) and says where.
    #[schemars(with = "Option<super::schema::Secret>")]
    pub api_token: Option<SecretString>,
    /// Host names the endpoint answers to besides IP addresses and `localhost` (requests for any
    /// other name are refused: a web page cannot rebind a name of its own to this address).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// How long a client may take to send a request's headers, and to start the next request
    /// on a kept-alive connection.
    #[serde(default = "default_http_timeout", with = "crate::project::duration_setting")]
    #[schemars(with = "super::schema::DurationText")]
    pub http_timeout: std::time::Duration,
    /// Connections the endpoint serves at once; more wait to be accepted.
    #[serde(default = "default_http_connections")]
    pub http_max_connections: usize,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            timezone: default_timezone(),
            max_concurrent_runs: default_concurrent_runs(),
            shutdown_timeout: default_shutdown_timeout(),
            listen: default_listen(),
            api_token: None,
            allowed_hosts: Vec::new(),
            http_timeout: default_http_timeout(),
            http_max_connections: default_http_connections(),
        }
    }
}

impl DaemonConfig {
    pub fn tz(&self) -> Result<chrono_tz::Tz, String> {
        self.timezone.parse().map_err(|_| {
            format!("[daemon] timezone = \"{}\" is not an IANA time zone name (e.g. \"UTC\", \"Europe/Berlin\")", self.timezone)
        })
    }
}

fn default_http_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}
fn default_http_connections() -> usize {
    64
}

fn default_listen() -> String {
    "127.0.0.1:9187".into()
}
fn default_timezone() -> String {
    "UTC".into()
}
fn default_concurrent_runs() -> usize {
    4
}
fn default_shutdown_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(20)
}

/// `[state]`: where sluice keeps what it has sent.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `sqlite://path` (relative to the project) or `postgres://user:password@host/database`.
    #[serde(default = "default_state_url")]
    #[schemars(with = "super::schema::Secret", default = "default_state_url_text")]
    pub url: SecretString,
    /// How long the change log (`sync_changes`) keeps an entry (with `[writeback]`, longer
    /// while the writeback has not copied it).
    #[serde(default = "default_keep_changes", with = "crate::project::duration_setting")]
    #[schemars(with = "super::schema::DurationText")]
    pub keep_changes: std::time::Duration,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig { url: default_state_url(), keep_changes: default_keep_changes() }
    }
}

impl StateConfig {
    /// The directory sluice keeps its local files in: the SQLite store's, else `.sluice` in the
    /// project (a Postgres store keeps its state elsewhere, but the daemon's token lives here).
    pub fn local_dir(&self, root: &Path) -> std::path::PathBuf {
        use secrecy::ExposeSecret;
        let url = self.url.expose_secret();
        let sqlite = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"));
        match sqlite.map(|rest| rest.split('?').next().unwrap_or(rest)) {
            Some(path) if !path.is_empty() => root.join(path).parent().map(Path::to_path_buf).unwrap_or_else(|| root.to_path_buf()),
            _ => root.join(".sluice"),
        }
    }
}

fn default_state_url() -> SecretString {
    SecretString::from(DEFAULT_STATE_URL)
}
fn default_state_url_text() -> &'static str {
    DEFAULT_STATE_URL
}

fn default_keep_changes() -> std::time::Duration {
    std::time::Duration::from_secs(90 * 24 * 3600)
}

/// `[sources.NAME]`: a database models run in, by `kind`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SourceConfig {
    /// DuckDB, embedded: a database file (read-only) or in-memory, reading Parquet, CSV and
    /// JSON files from the project.
    Duckdb(DuckdbSourceConfig),
    /// A PostgreSQL server; each run reads in one read-only, repeatable-read transaction.
    Postgres(PostgresSourceConfig),
    /// A MariaDB or MySQL server (`kind = "mariadb"` too); each run reads in one read-only
    /// transaction with a consistent snapshot, on a read-only session.
    #[serde(alias = "mariadb")]
    Mysql(MysqlSourceConfig),
    /// A program in any language: each run starts it, loads what it writes on stdout (JSON
    /// lines, CSV, or the path of a Parquet file) as a DuckDB table named `input`, and runs the
    /// model over that table (README, "Sources").
    Command(CommandSourceConfig),
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandSourceConfig {
    /// The program and its arguments, e.g. `["python3", "scripts/score_churn.py"]`: no shell,
    /// run in the project directory.
    pub command: Vec<String>,
    /// What the program writes on stdout: `jsonl` (one JSON object per line), `csv` (with a
    /// header line), or `parquet` (the path of a Parquet file it wrote).
    #[serde(default)]
    pub format: CommandFormat,
    /// How long the program may run before it is killed (with its children) and the run fails.
    #[serde(default = "default_command_timeout", with = "crate::project::duration_setting")]
    #[schemars(with = "super::schema::DurationText")]
    pub timeout: std::time::Duration,
    /// Extra environment for the program (it gets a clean one otherwise). Values are secret:
    /// never logged.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, super::schema::Secret>")]
    pub env: IndexMap<String, SecretString>,
    /// Column types to pin, by name (`customer_id = "VARCHAR"`, DuckDB type names). JSON lines
    /// and CSV: with any pinned, exactly these columns are read; Parquet: these are cast. Else
    /// DuckDB's reader types the columns from the data. Pinned columns let an empty output be
    /// an empty table. (`sluice check` runs the program to learn the model's columns.)
    #[serde(default)]
    pub columns: IndexMap<String, String>,
}

/// The format of a command source's output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CommandFormat {
    /// One JSON object per line.
    #[default]
    Jsonl,
    /// Comma-separated, a header line first.
    Csv,
    /// A line with the path of a Parquet file the program wrote (relative to the project).
    Parquet,
}

fn default_command_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(600)
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DuckdbSourceConfig {
    /// Database file, opened read-only; relative to the project. Left out: in-memory.
    pub path: Option<PathBuf>,
    /// Directories models may read files from besides the project's own (relative to it). A
    /// model reads nothing else, and writes no file at all.
    #[serde(default)]
    pub allowed_directories: Vec<PathBuf>,
    /// How much memory DuckDB may use for a model's query (DuckDB's `memory_limit`: "512MB",
    /// "2GB"); past it DuckDB spills to disk, in `state_directory`'s `tmp`. DuckDB's own
    /// default is 80% of the machine's memory. The query runs inside sluice's process, so this
    /// bounds most of a run's memory with `diff = "warehouse"`; give that room to grow with the
    /// sync's table (its fold joins the whole table: 256MB held at 10M rows, 50M needed 512MB).
    pub memory_limit: Option<String>,
    /// The directory sluice keeps this source's own files in: for syncs with
    /// `diff = "warehouse"`, one DuckDB file per sync (the keys and fingerprints of the rows
    /// the destination holds; the database file itself is only ever opened read-only), and
    /// DuckDB's spill files. Relative to the project. Default: `warehouse/<source name>` in
    /// sluice's local directory (`.sluice`, or the SQLite state store's directory).
    #[schemars(extend("default" = ".sluice/warehouse/<source name>"))]
    pub state_directory: Option<PathBuf>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresSourceConfig {
    /// `postgres://user:password@host:5432/database` (libpq URL; `sslmode` and the like as
    /// query parameters).
    #[schemars(with = "super::schema::Secret")]
    pub url: SecretString,
    /// Connections to the server at most. Default: one per run the daemon may have going at once
    /// (`[daemon] max_concurrent_runs`), plus one.
    pub max_connections: Option<u32>,
    /// The schema sluice keeps its tables in for syncs with `diff = "warehouse"` (one per
    /// sync: the keys and fingerprints of the rows the destination holds); created when
    /// missing. Models never write: these tables are written on connections of their own.
    #[schemars(extend("default" = "sluice_state"))]
    pub state_schema: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MysqlSourceConfig {
    /// `mysql://user:password@host:3306/database` (`ssl-mode` and the like as query
    /// parameters). A user with SELECT only (and no FILE privilege) is the safest.
    #[schemars(with = "super::schema::Secret")]
    pub url: SecretString,
    /// Connections to the server at most. Default: one per run the daemon may have going at once
    /// (`[daemon] max_concurrent_runs`), plus one.
    pub max_connections: Option<u32>,
    /// The database sluice keeps its tables in for syncs with `diff = "warehouse"` (one per
    /// sync); created when missing. Models never write: these tables are written on
    /// connections of their own.
    #[schemars(extend("default" = "sluice_state"))]
    pub state_schema: Option<String>,
}

/// A destination's settings stay an untyped table here: each destination kind parses its own
/// (see `destinations::build`), so a new kind needs no change to this file.
#[derive(Deserialize)]
pub struct DestinationSpec {
    pub kind: String,
    #[serde(flatten)]
    pub settings: toml::Table,
}

/// The kind and the setting names, never their values: any of them may be a credential (a
/// token, a webhook URL, a header), already read from `${VAR}` or a `*_file`.
impl std::fmt::Debug for DestinationSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DestinationSpec").field("kind", &self.kind).field("settings", &self.settings.keys().collect::<Vec<_>>()).finish()
    }
}

/// Keys that hold credentials when written out in the file instead of `${VAR}` or `*_file`.
const SECRET_KEYS: [&str; 9] =
    ["token", "private_key", "credentials", "credentials_json", "signing_secret", "api_token", "password", "webhook_url", "secret"];

/// The first secret key the config sets to a literal value, if any.
fn literal_secret(text: &str) -> Option<&'static str> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        let key = key.trim();
        let value = value.trim().trim_start_matches(['"', '\'']);
        SECRET_KEYS.iter().find(|k| **k == key).filter(|_| !value.starts_with("${") && !value.is_empty()).copied()
    })
}

/// Warns when a file that may hold secrets can be read by every user on the machine.
fn warn_if_world_readable(path: &Path, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o004 != 0 {
            tracing::warn!(
                "{what} {} is readable by every user on this machine: `chmod o-r {}` (or keep secrets in `${{VAR}}`s)",
                path.display(),
                path.display()
            );
        }
    }
}

/// Reads, merges, interpolates and types the project config.
/// Reads sluice.toml in `env` (`--env`; `None`: the config's `environment`, if any).
pub fn load(root: &Path, env: Option<&str>) -> Result<ProjectConfig, ProjectError> {
    let path = root.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        ProjectError::file(&path, format!("cannot read the project config: {e}"))
            .with_hint(Some("run `sluice init DIR` to create a project, or pass --project DIR".into()))
    })?;
    parse_in(root, &path, &text, env)
}

/// [`load`] on text already read, in the default environment.
pub fn parse(root: &Path, path: &Path, text: &str) -> Result<ProjectConfig, ProjectError> {
    parse_in(root, path, text, None)
}

/// [`load`] on text already read: `path` names the file in messages, `root` anchors relative
/// paths (`*_file` secrets). Never panics, whatever the text (fuzzed: `fuzz/`).
pub fn parse_in(root: &Path, path: &Path, text: &str, env: Option<&str>) -> Result<ProjectConfig, ProjectError> {
    if let Some(key) = literal_secret(text) {
        warn_if_world_readable(path, &format!("the project config (it sets `{key}` literally)"));
    }
    // Syntax first, on the raw text, so errors carry the real line.
    let raw = match toml::from_str::<toml::Table>(text) {
        Ok(raw) => raw,
        Err(e) => {
            let line = e.span().map(|s| line_at(text, s.start)).unwrap_or(1);
            return Err(ProjectError::at(path, line, format!("invalid TOML: {}", e.message().trim())));
        }
    };
    let merged: toml::Table = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .add_source(config::Environment::with_prefix("SLUICE").prefix_separator("__").separator("__"))
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| ProjectError::file(path, format!("cannot merge config and SLUICE__* environment: {e}")))?;
    // The chosen environment's overlay first, then `${VAR}`s: only its variables must be set.
    // The overlays as written (the merge may drop an empty `[env.dev]`).
    let mut merged = merged;
    merged.remove("env");
    let overlays = raw.get("env");
    let active_env = super::environments::apply(&mut merged, overlays, env, path, text)?;
    let mut value = toml::Value::Table(merged);
    resolve_strings(&mut value, &mut Vec::new(), root)
        .map_err(|m| ProjectError::file(path, m.message).with_line(line_of_key(text, &m.key_path)))?;
    // Every overlay, as written, for its shape (unknown keys) only.
    if let (Some(overlays), Some(table)) = (overlays, value.as_table_mut()) {
        table.insert("env".into(), overlays.clone());
    }
    ProjectConfig::deserialize(value)
        .map(|config| ProjectConfig { active_env, ..config })
        .map_err(|e| {
            let message = e.message().trim().to_string();
            let unknown = unknown_field(&message);
            let line = unknown.as_deref().and_then(|k| line_of_key(text, &[k.to_string()]));
            let hint = unknown.and_then(|k| {
                did_you_mean(
                    &k,
                    [
                        "state",
                        "sources",
                        "destinations",
                        "daemon",
                        "url",
                        "path",
                        "kind",
                        "timezone",
                        "max_concurrent_runs",
                        "shutdown_timeout",
                        "alerts",
                        "alert_interval",
                    ],
                )
                .map(|s| format!("did you mean `{s}`?"))
            });
            ProjectError::file(path, format!("invalid config: {message}")).with_line(line).with_hint(hint)
        })
        .and_then(|config| check_alerts(config, path, text))
        .and_then(|config| check_writeback(config, path, text))
}

/// `[writeback] source` must name a database source sluice can write tables to.
fn check_writeback(config: ProjectConfig, path: &Path, text: &str) -> Result<ProjectConfig, ProjectError> {
    let Some(writeback) = &config.writeback else { return Ok(config) };
    let at = |key: &str, m: String| {
        ProjectError::file(path, format!("[writeback] {m}")).with_line(line_of_key(text, &["writeback".to_string(), key.to_string()]))
    };
    let plain = |s: &str| !s.is_empty() && s.len() <= 63 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain(&writeback.schema) || writeback.schema.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(at(
            "schema",
            format!("schema `{}`: use letters, digits and `_` (at most 63, not starting with a digit)", writeback.schema),
        ));
    }
    match config.sources.get(&writeback.source) {
        None => Err(at("source", format!("source `{}` is not defined: add a [sources.{}] table", writeback.source, writeback.source))
            .with_hint(did_you_mean(&writeback.source, config.sources.keys().map(String::as_str)).map(|s| format!("did you mean `{s}`?")))),
        Some(SourceConfig::Command(_)) => Err(at(
            "source",
            format!("source `{}` is a command: the writeback goes to a postgres, mysql/mariadb or duckdb source", writeback.source),
        )),
        Some(_) => Ok(config),
    }
}

/// `[alerts] destination` must name a destination that can carry alerts.
fn check_alerts(config: ProjectConfig, path: &Path, text: &str) -> Result<ProjectConfig, ProjectError> {
    let Some(alerts) = &config.alerts else { return Ok(config) };
    alerts.check().map_err(|(key, m)| {
        ProjectError::file(path, format!("[alerts] {m}")).with_line(line_of_key(text, &["alerts".to_string(), key.to_string()]))
    })?;
    let line = line_of_key(text, &["alerts".to_string(), "destination".to_string()]);
    match config.destinations.get(&alerts.destination) {
        None => Err(ProjectError::file(
            path,
            format!(
                "[alerts] destination `{}` is not defined: add a [destinations.{}] table of kind \"slack\" or \"webhook\"",
                alerts.destination, alerts.destination
            ),
        )
        .with_line(line)
        .with_hint(
            did_you_mean(&alerts.destination, config.destinations.keys().map(String::as_str)).map(|s| format!("did you mean `{s}`?")),
        )),
        Some(spec) if !ALERT_KINDS.contains(&spec.kind.as_str()) => Err(ProjectError::file(
            path,
            format!(
                "[alerts] destination `{}` is of kind `{}`: alerts go to a `slack`, `webhook` or `command` destination",
                alerts.destination, spec.kind
            ),
        )
        .with_line(line)),
        Some(_) => Ok(config),
    }
}

struct ResolveError {
    key_path: Vec<String>,
    message: String,
}

/// Replaces `${VAR}` in every string from the environment and turns `x_file = "path"` into
/// `x = <contents of path>` (systemd credentials, docker secrets). Paths are relative to the
/// project. Values are never echoed in errors: they may be secrets.
fn resolve_strings(value: &mut toml::Value, path: &mut Vec<String>, root: &Path) -> Result<(), ResolveError> {
    match value {
        toml::Value::String(s) => {
            *s = interpolate(s).map_err(|var| ResolveError {
                key_path: path.clone(),
                message: format!(
                    "`{}` refers to the environment variable {var}, which is not set: export it, or set the value directly",
                    path.join(".")
                ),
            })?;
        }
        toml::Value::Array(items) => {
            for item in items {
                resolve_strings(item, path, root)?;
            }
        }
        toml::Value::Table(table) => {
            let keys: Vec<String> = table.keys().cloned().collect();
            for key in keys {
                path.push(key.clone());
                if let Some(v) = table.get_mut(&key) {
                    resolve_strings(v, path, root)?;
                }
                if let (Some(base), Some(toml::Value::String(file))) = (key.strip_suffix("_file"), table.get(&key)) {
                    // `credentials_file` etc. Only secrets use this suffix; `path` keys do not.
                    if table.contains_key(base) {
                        return Err(ResolveError {
                            key_path: path.clone(),
                            message: format!("both `{base}` and `{key}` are set in `{}`: keep one", path[..path.len() - 1].join(".")),
                        });
                    }
                    let file_path = root.join(file);
                    warn_if_world_readable(&file_path, &format!("the secret file of `{}`", path.join(".")));
                    let contents = std::fs::read_to_string(&file_path).map_err(|e| ResolveError {
                        key_path: path.clone(),
                        message: format!("`{}`: cannot read {}: {e}", path.join("."), file_path.display()),
                    })?;
                    table.remove(&key);
                    table.insert(base.to_string(), toml::Value::String(contents.trim_end_matches(['\n', '\r']).to_string()));
                }
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

/// `${VAR}` -> the variable's value, `${VAR:-default}` -> the default when VAR is unset or
/// empty (as in a shell); `$${` escapes a literal `${`. Err(name) for a missing var.
pub fn interpolate(s: &str) -> Result<String, String> {
    if !s.contains("${") {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        if rest[..i].ends_with('$') {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[i..]);
            return Ok(out);
        };
        let name = &after[..end];
        match name.split_once(":-") {
            Some((name, default)) => {
                out.push_str(&std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string()))
            }
            None => out.push_str(&std::env::var(name).map_err(|_| name.to_string())?),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn line_at(text: &str, offset: usize) -> usize {
    1 + text[..offset.min(text.len())].matches('\n').count()
}

/// Where a table of sluice.toml is (`[destinations.crm]`, or `crm = {...}` in `[destinations]`):
/// `sluice.toml:LINE` (just `sluice.toml` when not found), for messages about what it configures.
pub fn table_at(root: &Path, table: &[&str]) -> String {
    let text = std::fs::read_to_string(root.join(CONFIG_FILE)).unwrap_or_default();
    let header = format!("[{}]", table.join("."));
    let line = text
        .lines()
        .position(|l| l.trim().replace(' ', "") == header)
        .map(|i| i + 1)
        .or_else(|| line_of_key(&text, &table.iter().map(|t| t.to_string()).collect::<Vec<_>>()));
    match line {
        Some(line) => format!("{CONFIG_FILE}:{line}"),
        None => CONFIG_FILE.to_string(),
    }
}

/// Best-effort line of `a.b.key` in the raw file: the key's line inside its table header, or
/// the first line that assigns the last key. Used only to point errors at a line.
fn line_of_key(text: &str, key_path: &[String]) -> Option<usize> {
    let last = key_path.last()?;
    let section = key_path[..key_path.len() - 1].join(".");
    let mut in_section = section.is_empty();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            let name = t.trim_matches(|c| c == '[' || c == ']').trim();
            in_section = section.is_empty() || name == section;
            if section.is_empty() && name.split('.').any(|p| p.trim() == last) {
                return Some(i + 1);
            }
            continue;
        }
        let assigned = t.split('=').next().map(|k| k.trim().trim_matches('"')) == Some(last.as_str());
        if in_section && assigned {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_replaces_and_reports_missing() {
        std::env::set_var("SLUICE_TEST_INTERP", "secret");
        assert_eq!(interpolate("a ${SLUICE_TEST_INTERP} b").unwrap(), "a secret b");
        assert_eq!(interpolate("$${X}").unwrap(), "${X}");
        assert_eq!(interpolate("x ${SLUICE_TEST_NOT_SET_42}").unwrap_err(), "SLUICE_TEST_NOT_SET_42");
        assert_eq!(interpolate("${SLUICE_TEST_NOT_SET_42:-https://api.x.com}/v1").unwrap(), "https://api.x.com/v1");
        assert_eq!(interpolate("${SLUICE_TEST_INTERP:-other}").unwrap(), "secret");
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        std::env::set_var("SLUICE_TEST_DEBUG_TOKEN", "tok-VISIBLE-1");
        std::env::set_var("SLUICE_TEST_DEBUG_PG", "postgres://u:pw-VISIBLE-2@db/x");
        let text = "[state]\nurl = \"${SLUICE_TEST_DEBUG_PG}\"\n\
                    [sources.wh]\nkind = \"postgres\"\nurl = \"${SLUICE_TEST_DEBUG_PG}\"\n\
                    [destinations.crm]\nkind = \"hubspot\"\ntoken = \"${SLUICE_TEST_DEBUG_TOKEN}\"\n\
                    [destinations.hook]\nkind = \"webhook\"\nurl = \"https://h.example/x?key=${SLUICE_TEST_DEBUG_TOKEN}\"\n\
                    headers = { Authorization = \"Bearer ${SLUICE_TEST_DEBUG_TOKEN}\" }\n\
                    [daemon]\napi_token = \"${SLUICE_TEST_DEBUG_TOKEN}\"\n";
        let dir = std::env::temp_dir();
        let config = parse(&dir, &dir.join("sluice.toml"), text).expect("parses");
        let shown = format!("{config:?}");
        assert!(!shown.contains("VISIBLE"), "{shown}");
        assert!(shown.contains("hubspot") && shown.contains("\"token\""), "the kind and the setting names stay: {shown}");
    }

    #[test]
    fn key_lines_are_found_in_sections() {
        let text = "[state]\nurl = \"x\"\n\n[destinations.out]\nkind = \"file\"\npth = \"a\"\n";
        assert_eq!(line_of_key(text, &["destinations".into(), "out".into(), "pth".into()]), Some(6));
        assert_eq!(line_of_key(text, &["pth".into()]), Some(6));
    }
}
