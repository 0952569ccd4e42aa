//! Destinations: where rows go. Only code under `destinations/` speaks to the outside world
//! (HTTP, output files); the engine knows nothing of any destination's protocol.
//!
//! # The contract
//!
//! A [`Destination`] is built once per project load from its `[destinations.NAME]` table. For
//! each run of a sync the engine calls [`Destination::open`] with the sync's [`Target`] and gets a
//! [`Writer`], then calls [`Writer::write`] with batches of [`RowOp`]s no larger than
//! [`Capabilities::max_batch_rows`], then [`Writer::close`].
//!
//! - **Per-row outcome.** `write` returns exactly one [`RowOutcome`] per op, in order:
//!   `Written` (optionally with the destination's record id, stored and passed back on later
//!   ops), `Rejected` (a data problem: not retried until the row changes), `Retryable`, or
//!   `RefusedInGroup` (the request holding the row was refused whole: the engine splits the
//!   group to find the bad rows, so a destination never has to guess).
//! - **Whole-batch failure.** `Err(DestinationError)` means nothing in the batch is known to be
//!   written. Its [`ErrorKind`] decides whether the engine retries the batch (with backoff,
//!   honouring `retry_after`). A destination does not retry a failed batch itself; it may pace
//!   its requests to a published quota and re-send once after refreshing a refused token.
//! - **An outcome is decided once.** A row the writer settles before sending (rejected for an
//!   empty id, already gone) goes in no request; a request's answer decides exactly the rows it
//!   carried. A refused request therefore never turns a settled row into one to send again.
//! - **Partial failure.** A writer that carried out part of a batch (one request of several)
//!   before an error must say which rows are done, or the engine would send them again (an
//!   insert twice): it answers [`partial`], the error carrying the outcomes it has. The engine
//!   records those and retries only the rest, paced by the error (a fatal one stops the run).
//! - **Side by side.** A writer that can [`Writer::fork`] gets up to
//!   [`Capabilities::max_in_flight`] batches at once, through its forks; the engine picks how
//!   many from the service's answers. No two batches of a run hold the same key, so order between
//!   them does not matter; a writer whose batches depend on each other does not fork.
//! - **At-least-once.** After a crash the engine re-sends the batches that were in flight, so a
//!   destination must be idempotent by key: writing the same op twice leaves the same result.
//! - **Self-healing (optional).** A writer that knows which keys the destination holds answers
//!   [`Writer::holds`] (and says so in [`Writer::reads_keys`]); rows removed there by hand are
//!   then written again.
//! - **State follows outcomes.** The engine advances its state only for `Written` rows, after
//!   `write` returned; a destination must not report `Written` before the write is durable.
//! - **Identity.** [`Destination::identity`] names where rows land beyond the sync's `[target]`
//!   (the spreadsheet, the endpoint, the file, the CRM account). When it changes, the new place
//!   holds none of the sync's rows, so the engine sends every row once.

pub mod command;
pub mod database;
pub mod file;
pub mod flow;
pub mod google_sheets;
pub(crate) mod http;
pub mod hubspot;
pub mod notion;
pub mod requests;
pub(crate) mod results;
pub mod salesforce;
pub mod slack;
pub mod webhook;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Re-exported: the traits below are `#[async_trait]` traits, and implementations outside this
/// crate need the same macro.
pub use async_trait::async_trait;

use crate::project::{DestinationSpec, Mode};
use crate::value::Value;

/// What the engine asks a destination to do with one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Upsert,
    Update,
    Insert,
    Delete,
    /// `on_remove = "clear"`: the row left the model; keep the record but empty the sync's
    /// mapped fields (not the ones that identify it). `fields` carries the key-carrying fields'
    /// values and NULL for the rest.
    Clear,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Upsert => "upsert",
            Op::Update => "update",
            Op::Insert => "insert",
            Op::Delete => "delete",
            Op::Clear => "clear",
        }
    }
}

/// One row operation. `key` is aligned with [`Target::key_columns`], `fields` with
/// [`Target::fields`]; a `Delete` carries no fields.
#[derive(Clone, Debug, PartialEq)]
pub struct RowOp {
    pub op: Op,
    pub key: Vec<Value>,
    pub fields: Vec<Value>,
    /// The record id this destination returned when the row was last written, if any.
    pub destination_id: Option<String>,
}

impl RowOp {
    /// The key as a JSON object of primary-key columns, as shown to people and remote systems.
    pub fn key_json(&self, target: &Target) -> serde_json::Value {
        let map = target.key_columns.iter().cloned().zip(self.key.iter().map(Value::to_json)).collect();
        serde_json::Value::Object(map)
    }

    /// `id=42, region=EU`: the row's key in a message.
    pub fn key_label(&self, target: &Target) -> String {
        crate::value::key_label(&target.key_columns, &self.key)
    }

    /// The mapped fields as a JSON object, in mapping order of the sync's fields.
    pub fn fields_json(&self, target: &Target) -> serde_json::Value {
        let map = target.fields.iter().cloned().zip(self.fields.iter().map(Value::to_json)).collect();
        serde_json::Value::Object(map)
    }
}

/// What happened to one row.
#[derive(Clone, Debug, PartialEq)]
pub enum RowOutcome {
    Written {
        destination_id: Option<String>,
    },
    /// The destination refused the data; retried only once the row changes.
    Rejected(String),
    /// A transient problem with this row; retried on the next run.
    Retryable(String),
    /// The destination refused the whole request this row was in, for a data problem it did not
    /// pin on a row (a 400 for the batch). The row may be fine: the engine sends such rows again
    /// in smaller groups until the bad one stands alone, then records it `Rejected`.
    RefusedInGroup(String),
}

impl RowOutcome {
    pub fn written() -> Self {
        RowOutcome::Written { destination_id: None }
    }
}

/// The answer to a batch that stopped at `error` after some rows in `out` got their outcomes:
/// the error, carrying those outcomes. The engine records them and retries only the rest,
/// paced (and stopped) by the error as any other.
pub fn partial(out: Vec<Option<RowOutcome>>, error: DestinationError) -> Result<Vec<RowOutcome>, DestinationError> {
    let done = out.iter().any(|o| matches!(o, Some(RowOutcome::Written { .. })));
    Err(DestinationError { done: done.then_some(out), ..error })
}

/// The rows of `batch` with operation `op` whose outcome is not decided yet, for a writer that
/// sends each kind of operation in requests of its own. A row's outcome is decided once: rows
/// settled before sending (rejected, already gone) go in no request.
pub fn undecided(batch: &[RowOp], out: &[Option<RowOutcome>], op: Op) -> Vec<usize> {
    batch.iter().enumerate().filter(|(i, r)| r.op == op && out[*i].is_none()).map(|(i, _)| i).collect()
}

/// A writer's answer once its requests for a batch are done (`sent`): the error with the
/// outcomes decided so far ([`partial`]: the requests before it were carried out), or every
/// outcome, a row no answer of `service` mentioned being retried on the next run.
pub fn settle(
    out: Vec<Option<RowOutcome>>,
    sent: Result<(), DestinationError>,
    service: &str,
) -> Result<Vec<RowOutcome>, DestinationError> {
    if let Err(e) = sent {
        return partial(out, e);
    }
    Ok(out
        .into_iter()
        .map(|o| o.unwrap_or_else(|| RowOutcome::Retryable(format!("{service}'s answer did not mention this row"))))
        .collect())
}

/// What a sync sends: the destination-side shape of its rows.
#[derive(Clone, Debug)]
pub struct Target {
    pub sync: String,
    pub run_id: String,
    pub mode: Mode,
    /// The sync header's `[target]` table, interpreted by the destination.
    pub settings: toml::Table,
    /// Primary-key column names, in key order.
    pub key_columns: Vec<String>,
    /// Destination field names, in mapping order.
    pub fields: Vec<String>,
    /// For each key column, the index in `fields` of the field carrying it, if mapped.
    pub key_fields: Vec<Option<usize>>,
    /// The canonical type of each key column's cells, in key order (a destination that creates
    /// its own storage, a database table, declares its columns from these).
    pub key_types: Vec<crate::value::ValueType>,
    /// The canonical type of each field's cells, in field order (a template's is text).
    pub field_types: Vec<crate::value::ValueType>,
    /// `nulls = "skip"`: a NULL field leaves the destination's value alone (see [`Target::writes`]).
    pub skip_nulls: bool,
    /// Per field: write only where the destination holds no value yet (`write = "if_empty"`).
    /// Only destinations with [`Capabilities::if_empty`] get syncs that set it.
    pub if_empty: Vec<bool>,
}

impl Target {
    /// Whether field `j` of `op` is written at all: not a NULL under `nulls = "skip"`. A clear
    /// writes every field (its NULLs are the point). `write = "if_empty"` is the destination's
    /// to apply: it needs the current value.
    pub fn writes(&self, op: &RowOp, j: usize) -> bool {
        op.op == Op::Clear || !(self.skip_nulls && op.fields.get(j).is_some_and(Value::is_null))
    }

    /// Whether field `j` of `op` keeps the destination's current value (empty or not, as
    /// `current_empty` says): a skipped NULL, or an `if_empty` field that already holds one.
    /// A clear empties even `if_empty` fields.
    pub fn keeps_current(&self, op: &RowOp, j: usize, current_empty: bool) -> bool {
        !self.writes(op, j) || (op.op != Op::Clear && self.if_empty.get(j).copied().unwrap_or(false) && !current_empty)
    }

    /// Whether any field is written only where empty.
    pub fn has_if_empty(&self) -> bool {
        self.if_empty.iter().any(|&e| e)
    }
}

/// What a destination can do; the engine and `check` respect it.
#[derive(Clone, Debug)]
pub struct Capabilities {
    pub modes: Vec<Mode>,
    pub max_batch_rows: usize,
    /// Whole-batch retries inside one run: attempts (including the first) and the first delay.
    pub retry_attempts: usize,
    pub retry_initial_delay: Duration,
    /// Runs of syncs writing to this destination that may go on at once (`None`: no cap).
    pub concurrent_runs: Option<usize>,
    /// Batches one run may have on the wire at once, at most: the ceiling of the engine's
    /// adaptive concurrency. Above 1 only for a writer that can [`Writer::fork`].
    pub max_in_flight: usize,
    /// The service's published rate limit the destination paces to, for the run report.
    pub rate_limit: Option<flow::RateLimit>,
    /// Whether it can empty a record's mapped fields ([`Op::Clear`], `on_remove = "clear"`).
    pub clear: bool,
    /// Whether it reads current values, so `write = "if_empty"` fields can be honoured.
    pub if_empty: bool,
    /// `[target]` settings that change how rows look, not which data is sent (Slack's message
    /// templates): left out of the configuration fingerprint, so editing them re-sends nothing.
    pub presentation: &'static [&'static str],
}

impl Capabilities {
    /// A destination that takes every mode, with its batch size and whole-batch retry policy.
    pub fn every_mode(max_batch_rows: usize, retry_attempts: usize, retry_initial_delay: Duration) -> Capabilities {
        Capabilities {
            modes: vec![Mode::Upsert, Mode::Update, Mode::Insert, Mode::Mirror],
            max_batch_rows: max_batch_rows.max(1),
            retry_attempts: retry_attempts.max(1),
            retry_initial_delay,
            concurrent_runs: None,
            max_in_flight: 1,
            rate_limit: None,
            clear: true,
            if_empty: false,
            presentation: &[],
        }
    }
}

/// Whether a failed whole batch is worth retrying. Decided by the destination (it knows its
/// protocol); acted on by the engine (`engine::retry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Network trouble, timeouts, 5xx, 429: retry with backoff.
    Transient,
    /// Configuration or auth problem: retrying cannot help; the run fails.
    Fatal,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DestinationError {
    pub kind: ErrorKind,
    pub message: String,
    /// Server-requested delay before the next attempt (Retry-After).
    pub retry_after: Option<Duration>,
    /// The rows of the batch that got an outcome before the error (see [`partial`]); `None`:
    /// nothing in the batch is known to be done.
    pub done: Option<Vec<Option<RowOutcome>>>,
}

impl DestinationError {
    pub fn transient(message: impl Into<String>) -> Self {
        DestinationError { kind: ErrorKind::Transient, message: message.into(), retry_after: None, done: None }
    }
    pub fn fatal(message: impl Into<String>) -> Self {
        DestinationError { kind: ErrorKind::Fatal, message: message.into(), retry_after: None, done: None }
    }
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}

#[async_trait]
pub trait Destination: Send + Sync {
    fn capabilities(&self) -> Capabilities;
    /// Validates the sync's `[target]` and field names and checks the destination is reachable.
    /// Used by `sluice check`; must not write anything.
    async fn check(&self, target: &Target) -> Result<(), DestinationError>;
    /// Starts one run of one sync.
    async fn open(&self, target: &Target) -> Result<Box<dyn Writer>, DestinationError>;
    /// Where this destination's rows land, beyond the sync's `[target]` (which the engine
    /// fingerprints already): a spreadsheet's id, an endpoint's host and path, an output file,
    /// the CRM account a token belongs to. The engine keeps only a hash of it; when it changes,
    /// every row of each sync is sent once (the new place holds none). It must not change when
    /// a credential is rotated, and never holds a secret. May ask the service (cached). The
    /// default, `""`, says it cannot tell.
    async fn identity(&self) -> Result<String, DestinationError> {
        Ok(String::new())
    }
}

#[async_trait]
pub trait Writer: Send {
    /// Writes one batch; one outcome per op, in order (see the module docs).
    async fn write(&mut self, batch: &[RowOp]) -> Result<Vec<RowOutcome>, DestinationError>;
    /// Whether the destination still holds a row with this key, for destinations that read
    /// their keys when opened (`None`: cannot tell). In upsert and mirror modes the engine
    /// re-sends an unchanged row when this says `Some(false)`: someone removed it by hand.
    fn holds(&self, _key: &[Value]) -> Option<bool> {
        None
    }
    /// Whether [`Writer::holds`] can answer at all: the engine asks it only then.
    fn reads_keys(&self) -> bool {
        false
    }
    /// The batch size this writer wants for a run with `pending` rows to send, when it differs
    /// from [`Capabilities::max_batch_rows`] (Salesforce sends large runs as Bulk API jobs).
    fn preferred_batch_rows(&self, _pending: u64) -> Option<usize> {
        None
    }
    /// Another writer for the same run, to send batches side by side with this one (up to
    /// [`Capabilities::max_in_flight`]); it shares this one's connections and whatever it learnt
    /// when opened. `None` (the default): batches go one at a time, in order, which a writer
    /// needs when a batch depends on the one before (a sheet's appends and row deletions, a
    /// digest). The engine gives forks batches whose keys no other batch of the run holds, and
    /// closes each fork before this writer.
    fn fork(&self) -> Option<Box<dyn Writer>> {
        None
    }
    /// Warnings for the run report (e.g. a key found twice in a sheet); drained after each call.
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// Ends the run; called once after the last batch.
    async fn close(self: Box<Self>) -> Result<(), DestinationError> {
        Ok(())
    }
}

/// What the configuration reference (docs/configuration.md) says of a destination kind, from
/// its config types' doc comments and defaults.
pub struct Reference {
    /// The `[destinations.NAME]` settings; the type's own doc comment says what the kind is.
    pub settings: schemars::Schema,
    /// The request settings it takes (`requests`), with its defaults.
    pub requests: schemars::Schema,
    /// A sync's `[target]` table.
    pub target: schemars::Schema,
}

impl Reference {
    fn new<S: schemars::JsonSchema, T: schemars::JsonSchema>(requests: &requests::Defaults) -> Reference {
        Reference { settings: schemars::schema_for!(S), requests: requests::schema(requests), target: schemars::schema_for!(T) }
    }
}

/// The reference of a built-in kind (every one of [`KINDS`]).
pub fn reference(kind: &str) -> Option<Reference> {
    Some(match kind {
        "command" => command::reference(),
        "file" => file::reference(),
        "google_sheets" => google_sheets::reference(),
        "hubspot" => hubspot::reference(),
        "mysql" | "postgres" => database::reference(),
        "notion" => notion::reference(),
        "salesforce" => salesforce::reference(),
        "slack" => slack::reference(),
        "webhook" => webhook::reference(),
        _ => return None,
    })
}

/// None: this destination takes no `[target]` settings.
#[derive(schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
struct NoTarget {}

/// An error in a `[destinations.NAME]` table, reported by `build`.
#[derive(Debug, thiserror::Error)]
#[error("destination `{name}`: {message}")]
pub struct ConfigError {
    pub name: String,
    pub message: String,
}

/// The destination kinds `build` knows.
pub const KINDS: [&str; 10] =
    ["command", "file", "google_sheets", "hubspot", "mysql", "notion", "postgres", "salesforce", "slack", "webhook"];

/// A `[destinations.NAME]` table's settings (everything but `kind`); [`parse_settings`] reads
/// them into a destination's own config type.
pub type Settings = toml::Table;

/// Builds a destination of a registered kind: from the destination's name, its settings and
/// the project directory. An `Err` is shown as "destination `NAME`: <message>".
pub type Factory = fn(name: &str, settings: &Settings, project_root: &Path) -> Result<Arc<dyn Destination>, String>;

/// Destination kinds registered by the program that embeds sluice (see [`register`]).
static REGISTERED: RwLock<BTreeMap<String, Factory>> = RwLock::new(BTreeMap::new());

/// Registers a destination kind, for a build of sluice with its own destinations: call it
/// before [`crate::cli::start`] (or before loading a project), then `kind = "KIND"` in
/// sluice.toml builds the destination with `factory`. A built-in kind cannot be replaced.
/// `examples/custom_destination.rs` is a complete example.
pub fn register(kind: &str, factory: Factory) {
    if let Ok(mut kinds) = REGISTERED.write() {
        kinds.insert(kind.to_string(), factory);
    }
}

fn registered(kind: &str) -> Option<Factory> {
    REGISTERED.read().ok()?.get(kind).copied()
}

/// Builds the destination for a `[destinations.NAME]` table. Built-in kinds are added here.
pub fn build(name: &str, spec: &DestinationSpec, project_root: &Path) -> Result<Arc<dyn Destination>, ConfigError> {
    let err = |message: String| ConfigError { name: name.to_string(), message };
    match spec.kind.as_str() {
        "command" => Ok(Arc::new(command::CommandDestination::from_settings(name, &spec.settings, project_root).map_err(err)?)),
        "file" => Ok(Arc::new(file::FileDestination::from_settings(&spec.settings, project_root).map_err(err)?)),
        "webhook" => Ok(Arc::new(webhook::WebhookDestination::from_settings(name, &spec.settings).map_err(err)?)),
        "google_sheets" => Ok(Arc::new(google_sheets::SheetsDestination::from_settings(name, &spec.settings).map_err(err)?)),
        "hubspot" => Ok(Arc::new(hubspot::HubSpotDestination::from_settings(name, &spec.settings).map_err(err)?)),
        "postgres" => Ok(Arc::new(database::DatabaseDestination::from_settings(database::Dialect::Postgres, &spec.settings).map_err(err)?)),
        "mysql" => Ok(Arc::new(database::DatabaseDestination::from_settings(database::Dialect::Mysql, &spec.settings).map_err(err)?)),
        "notion" => Ok(Arc::new(notion::NotionDestination::from_settings(name, &spec.settings).map_err(err)?)),
        "salesforce" => Ok(Arc::new(salesforce::SalesforceDestination::from_settings(name, &spec.settings).map_err(err)?)),
        "slack" => Ok(Arc::new(slack::SlackDestination::from_settings(name, &spec.settings).map_err(err)?)),
        other => match registered(other) {
            Some(factory) => factory(name, &spec.settings, project_root).map_err(err),
            None => {
                let mut known: Vec<String> = KINDS.iter().map(|k| k.to_string()).collect();
                known.extend(REGISTERED.read().map(|r| r.keys().cloned().collect::<Vec<_>>()).unwrap_or_default());
                Err(err(format!(
                    "unknown kind `{other}`{}: known kinds are {}",
                    crate::project::did_you_mean(other, known.iter().map(String::as_str))
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default(),
                    known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                )))
            }
        },
    }
}

/// Deserialises a destination's settings (or a sync's `[target]`) into its typed config; the
/// error names the bad key.
pub fn parse_settings<T: serde::de::DeserializeOwned>(settings: &toml::Table) -> Result<T, String> {
    T::deserialize(toml::Value::Table(settings.clone())).map_err(|e| e.message().trim().to_string())
}

/// Durations in settings as humantime strings ("30s", "500ms"):
/// `#[serde(with = "sluice::destinations::duration_setting")]` (it lives with the project's config).
pub use crate::project::duration_setting;
