//! Parsing one `syncs/*.sql` file: a TOML header in a leading `/* sluice ... */` comment, then
//! the model query. Errors carry the file and the line in that file (TOML spans are mapped
//! back through the header's starting line).

use std::ops::Range;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use super::cron::Schedule;
use super::mapping::FieldMapping;
use super::{did_you_mean, ProjectError};

/// How the rows of a model reach the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Send added and changed rows; the destination creates or updates by key.
    Upsert,
    /// Send added and changed rows, but only change records that already exist.
    Update,
    /// Send only rows whose key was never sent before.
    Insert,
    /// Upsert, plus delete the records of rows that left the model.
    Mirror,
}

/// What happens to the destination's record of a row that left the model (`on_remove`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnRemove {
    /// Leave it as it is.
    Ignore,
    /// Keep the record, empty the sync's mapped fields.
    Clear,
    /// Delete it (what mode = "mirror" means).
    Delete,
}

/// What a NULL in the model does to the destination's value (`nulls`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Nulls {
    /// Write it: the destination's value is emptied.
    Send,
    /// Leave the destination's value alone.
    Skip,
}

/// Where a run compares the model with what the destination holds (`diff`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiffMode {
    /// In sluice, against the state store: the source only reads.
    Local,
    /// In the source database, against a table sluice keeps there (`engine::warehouse`):
    /// only the rows that changed leave the database.
    Warehouse,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Upsert => "upsert",
            Mode::Update => "update",
            Mode::Insert => "insert",
            Mode::Mirror => "mirror",
        }
    }
}

/// A parsed, not yet validated against the project, sync file.
#[derive(Clone, Debug)]
pub struct SyncFile {
    pub name: String,
    /// Where the diff runs; its line (0 when left out: local).
    pub diff: Located<DiffMode>,
    pub path: PathBuf,
    pub schedule: Schedule,
    pub source: Option<Located<String>>,
    pub destination: Option<Located<String>>,
    pub primary_key: Located<Vec<String>>,
    pub mode: Mode,
    pub target: toml::Table,
    /// Explicit mapping, in file order. Empty means "every model column under its own name".
    pub mapping: Vec<FieldMapping>,
    pub model: String,
    /// The header's TOML as written (between `/* sluice` and `*/`), for the console.
    pub header_text: String,
    /// Line where the model SQL starts.
    pub model_line: usize,
    /// Line of the `/* sluice` opener, for errors about the header as a whole.
    pub header_line: usize,
    /// Run once at daemon start when a scheduled run was missed while it was down.
    pub catch_up: bool,
    /// Up to this many seconds of random delay per scheduled run, to spread syncs sharing a schedule.
    pub jitter_secs: u64,
    /// The sync's own delete guard, overriding `[delete_guard]`.
    pub max_deletes: Option<u64>,
    pub max_delete_pct: Option<f64>,
    /// The sync's own `[retry] rejected_after`.
    pub retry_rejected_after: Option<std::time::Duration>,
    /// The longest the model's query may run in the source (Postgres `statement_timeout`,
    /// MariaDB `max_statement_time`, MySQL `max_execution_time`, DuckDB interrupted); `None`: no limit.
    pub statement_timeout: Option<std::time::Duration>,
    /// The longest a run may take, all in: a stuck run ends failed and frees its slot.
    pub max_run_time: std::time::Duration,
    /// Cursor-incremental reads: the model column whose high-water mark limits each run to the
    /// rows past it (`engine::cursor`).
    pub cursor: Option<Located<String>>,
    /// Record the fields sent in the change log (`sync_changes.fields_json`).
    pub log_values: bool,
    /// What happens to rows that leave the model: `delete` for mode = "mirror".
    pub on_remove: OnRemove,
    pub nulls: Nulls,
    /// What starts a run in the daemon besides `schedule`: events arriving on its stream.
    pub trigger: Trigger,
    /// The syncs this one runs after (`project::after`), as written; line 0 when left out.
    pub after: Located<Vec<String>>,
    /// The sync's own alert events and thresholds, over `[alerts]` in sluice.toml, with the line.
    pub alerts: Option<Located<super::alert_config::SyncAlerts>>,
}

/// What starts a sync's runs in the daemon, besides its `schedule`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Only the schedule (and people: `sluice run`, the API).
    Schedule,
    /// Also new events on the sync's stream: a run within `debounce` of the first new one.
    OnEvent { debounce: std::time::Duration, line: usize },
}

/// A value with the file line it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located<T> {
    pub value: T,
    pub line: usize,
}

#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum KeySpec {
    One(String),
    Many(Vec<String>),
}

/// The sync's settings in the header; [`parse`] checks and resolves them into a [`SyncFile`].
/// Defaults are stated once, as the constants below, for both.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Header {
    /// When the daemon runs the sync: a 5-field cron ("0 * * * *"), 6 fields with seconds first,
    /// `@hourly`/`@daily`/`@weekly`/`@monthly`, or "manual": only `sluice run` runs it. Read in
    /// `[daemon] timezone`.
    #[schemars(with = "Option<String>", extend("default" = "manual"))]
    schedule: Option<Spanned<String>>,
    /// A `[sources.NAME]`, or `stream:NAME` for the events of a `[streams.NAME]` (the table
    /// `events`); may be left out when sluice.toml defines just one source.
    #[schemars(with = "Option<String>")]
    source: Option<Spanned<String>>,
    /// A `[destinations.NAME]`; may be left out when sluice.toml defines just one.
    #[schemars(with = "Option<String>")]
    destination: Option<Spanned<String>>,
    /// The model column(s) that identify a row, unique in the model's result: a name, or a list
    /// for a composite key (`["account_id", "region"]`). Required.
    #[schemars(with = "Option<KeySpec>")]
    primary_key: Option<Spanned<KeySpec>>,
    /// What is sent: `upsert` (added and changed rows), `update` (changes to records that exist
    /// only), `insert` (rows never sent before) or `mirror` (upsert, and delete the records of
    /// rows that left the model).
    #[schemars(with = "Option<Mode>", extend("default" = DEFAULT_MODE))]
    mode: Option<Spanned<Mode>>,
    /// Settings the destination reads: which file, sheet or object (see each destination).
    #[serde(default)]
    #[schemars(with = "super::schema::AnyTable")]
    target: toml::Table,
    /// Destination field = model column, in the order fields are written; or
    /// `{ column = "c", write = "if_empty" }`, `{ value = "same in every row" }`,
    /// `{ template = "{{ first }} {{ last }}" }`. Left out: every model column under its own name.
    #[serde(default)]
    #[schemars(with = "super::schema::AnyTable")]
    mapping: IndexMap<String, Spanned<toml::Value>>,
    /// Daemon: run once at start when a scheduled run was missed while it was down.
    #[schemars(extend("default" = DEFAULT_CATCH_UP))]
    catch_up: Option<bool>,
    /// Daemon: seconds (0 to 3600) within which this sync's scheduled runs are delayed by a
    /// fixed amount, to spread syncs that share a schedule.
    #[schemars(with = "Option<u16>", extend("default" = 0))]
    jitter: Option<Spanned<i64>>,
    /// This sync's delete guard: at most this many removals per run (overrides `[delete_guard]`).
    #[schemars(with = "Option<u64>")]
    max_deletes: Option<Spanned<i64>>,
    /// This sync's delete guard: at most this share of the rows the destination holds, in
    /// percent (overrides `[delete_guard]`; 100 turns the share check off).
    #[schemars(with = "Option<f64>")]
    max_delete_pct: Option<Spanned<f64>>,
    /// How long a rejected row that has not changed is held back before it is sent again
    /// (overrides `[retry] rejected_after`).
    #[schemars(with = "Option<super::schema::DurationText>")]
    retry_rejected_after: Option<Spanned<String>>,
    /// The longest the model's query may run in the source; then it is cancelled and the run
    /// fails saying so. No limit when left out.
    #[schemars(with = "Option<super::schema::DurationText>")]
    statement_timeout: Option<Spanned<String>>,
    /// The longest a run may take, all in: a stuck run is stopped, recorded as failed and frees
    /// its slot. "0s": no limit.
    #[schemars(with = "Option<super::schema::DurationText>", extend("default" = super::duration_setting::text(DEFAULT_MAX_RUN_TIME)))]
    max_run_time: Option<Spanned<String>>,
    /// A number, date or timestamp column that grows whenever a row changes (`updated_at`):
    /// each run reads only the rows from the last run's high-water mark on.
    #[schemars(with = "Option<String>")]
    cursor: Option<Spanned<String>>,
    /// Also record the fields sent in the change log (`sluice log`).
    #[schemars(extend("default" = DEFAULT_LOG_VALUES))]
    log_values: Option<bool>,
    /// What happens to the record of a row that left the model: `ignore`, `clear` (keep it,
    /// empty the mapped fields) or `delete`. Default: `delete` in mode = "mirror", else `ignore`.
    #[schemars(with = "Option<OnRemove>")]
    on_remove: Option<Spanned<OnRemove>>,
    /// What a NULL in the model does: `send` empties the destination's value, `skip` leaves it
    /// alone.
    #[schemars(extend("default" = DEFAULT_NULLS))]
    nulls: Option<Nulls>,
    /// Where the diff runs: `local` (in sluice, against the state store; the source only
    /// reads) or `warehouse` (in the source database, against a table sluice keeps in its
    /// `state_schema`: for models too big for sluice's memory; Postgres and MariaDB/MySQL
    /// sources; DuckDB sources keep it in files of sluice's own, in `state_directory`).
    #[schemars(with = "Option<DiffMode>", extend("default" = "local"))]
    diff: Option<Spanned<DiffMode>>,
    /// Daemon: `on_event` also runs the sync when events arrive on its stream (`source =
    /// "stream:NAME"`), within `debounce` of the first new one; `schedule` runs it on its
    /// schedule only.
    #[schemars(with = "Option<String>", extend("default" = "schedule"))]
    trigger: Option<Spanned<String>>,
    /// Daemon, with trigger = "on_event": how long after the first new event the run starts, so
    /// a burst of events is sent by one run.
    #[schemars(with = "Option<super::schema::DurationText>", extend("default" = super::duration_setting::text(DEFAULT_DEBOUNCE)))]
    debounce: Option<Spanned<String>>,
    /// Syncs this one runs after: a name or a list (`["accounts", "owners"]`). In the daemon it
    /// runs only when each of their latest runs got through (success or partial), else its run
    /// is recorded as skipped with the reason; while one of them runs, it waits. With no
    /// `schedule` of its own it runs each time they have all got through. `sluice run` runs
    /// syncs in this order and skips the dependants of one that failed.
    #[schemars(with = "Option<KeySpec>")]
    after: Option<Spanned<KeySpec>>,
    /// This sync's alerts: `on` (its events, instead of `[alerts] on`) and any threshold of
    /// `[alerts]` in sluice.toml (`rejected_share_pct`, `deviation_pct`, `deviation_runs`,
    /// `deviation_min_rows`, `max_duration`), each replacing the project's for this sync.
    #[schemars(with = "Option<super::alert_config::SyncAlerts>")]
    alerts: Option<Spanned<super::alert_config::SyncAlerts>>,
}

const DEFAULT_DEBOUNCE: std::time::Duration = std::time::Duration::from_secs(1);

const DEFAULT_MODE: Mode = Mode::Upsert;
const DEFAULT_NULLS: Nulls = Nulls::Send;
const DEFAULT_CATCH_UP: bool = true;
const DEFAULT_LOG_VALUES: bool = false;

/// The header's schema, for the configuration reference.
pub fn header_schema() -> schemars::Schema {
    schemars::schema_for!(Header)
}

/// The header's keys, for "did you mean".
fn header_keys() -> Vec<String> {
    let schema = header_schema();
    schema.get("properties").and_then(|p| p.as_object()).map(|p| p.keys().cloned().collect()).unwrap_or_default()
}

const OPENER: &str = "/* sluice";

/// A run's deadline when the sync sets none: longer than any sane run, short enough that a stuck
/// one frees its slot the same day.
pub const DEFAULT_MAX_RUN_TIME: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// The sync's name: the file stem (`syncs/team/high_value.sql` -> `high_value`).
pub fn sync_name(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

pub fn parse(path: &Path, text: &str) -> Result<SyncFile, ProjectError> {
    let err = |line: usize, message: String| ProjectError::at(path, line, message);
    let leading_ws = text.len() - text.trim_start().len();
    let header_line = 1 + text[..leading_ws].matches('\n').count();
    let body = &text[leading_ws..];
    if !body.starts_with(OPENER) {
        return Err(err(header_line, "a sync file must start with a `/* sluice` header comment (TOML), then the SQL model".into()));
    }
    // The header ends at the first line holding only `*/`: a cron such as "*/15 * * * *" inside
    // the header must not end it early.
    let header_start = leading_ws + OPENER.len();
    let mut offset = header_start;
    let mut close = None;
    for line in text[header_start..].split_inclusive('\n') {
        if line.trim() == "*/" {
            close = Some((offset, offset + line.len()));
            break;
        }
        offset += line.len();
    }
    let Some((header_end, model_start)) = close else {
        return Err(err(header_line, "the header comment is never closed: end it with a line holding only `*/`".into()));
    };
    let header_text = &text[header_start..header_end];
    let line_of = |span: Range<usize>| header_line + header_text[..span.start.min(header_text.len())].matches('\n').count();

    let header: Header = toml::from_str(header_text).map_err(|e| {
        let line = e.span().map(&line_of).unwrap_or(header_line);
        let message = e.message().trim().to_string();
        let mut pe = err(line, format!("invalid header: {message}"));
        if let Some(unknown) = unknown_field(&message) {
            pe = pe.with_hint(did_you_mean(&unknown, header_keys().iter().map(String::as_str)).map(|s| format!("did you mean `{s}`?")));
        }
        pe
    })?;

    let model_raw = &text[model_start..];
    let model_ws = model_raw.len() - model_raw.trim_start().len();
    let model_line = 1 + text[..model_start + model_ws].matches('\n').count();
    let model = model_raw.trim().trim_end_matches(';').trim_end().to_string();
    if model.is_empty() {
        return Err(err(1 + text[..model_start].matches('\n').count(), "no SQL model after the header".into()));
    }
    check_model(&model).map_err(|m| err(model_line, m))?;

    let schedule = match &header.schedule {
        None => Schedule::Manual,
        Some(s) => Schedule::parse(s.get_ref()).map_err(|m| err(line_of(s.span()), m))?,
    };
    let located = |s: &Option<Spanned<String>>| s.as_ref().map(|s| Located { value: s.get_ref().clone(), line: line_of(s.span()) });
    let primary_key = match &header.primary_key {
        None => return Err(err(header_line, "the header has no `primary_key`: name the model column(s) that identify a row".into())),
        Some(k) => {
            let cols = match k.get_ref() {
                KeySpec::One(c) => vec![c.clone()],
                KeySpec::Many(cs) => cs.clone(),
            };
            let line = line_of(k.span());
            if cols.is_empty() || cols.iter().any(|c| c.trim().is_empty()) {
                return Err(err(line, "`primary_key` must name at least one non-empty column".into()));
            }
            Located { value: cols, line }
        }
    };
    let mapping = header
        .mapping
        .iter()
        .map(|(field, raw)| {
            let line = line_of(raw.span());
            super::mapping::parse_entry(field, raw.get_ref(), line).map_err(|m| err(line, m))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let jitter_secs = match &header.jitter {
        None => 0,
        Some(j) if *j.get_ref() >= 0 && *j.get_ref() <= 3600 => *j.get_ref() as u64,
        Some(j) => return Err(err(line_of(j.span()), "`jitter` is seconds of random delay: 0 to 3600".into())),
    };
    let max_deletes = match &header.max_deletes {
        None => None,
        Some(m) if *m.get_ref() >= 0 => Some(*m.get_ref() as u64),
        Some(m) => return Err(err(line_of(m.span()), "`max_deletes` must be 0 or more".into())),
    };
    let max_delete_pct = match &header.max_delete_pct {
        None => None,
        Some(p) if (0.0..=100.0).contains(p.get_ref()) => Some(*p.get_ref()),
        Some(p) => return Err(err(line_of(p.span()), "`max_delete_pct` is a percentage: 0 to 100 (100 turns the share check off)".into())),
    };
    let retry_rejected_after = match &header.retry_rejected_after {
        None => None,
        Some(d) => Some(humantime::parse_duration(d.get_ref()).map_err(|e| {
            err(
                line_of(d.span()),
                format!("`retry_rejected_after` = \"{}\" is not a duration ({e}): use e.g. \"6h\" or \"30m\"", d.get_ref()),
            )
        })?),
    };
    let duration = |key: &str, d: &Spanned<String>| {
        humantime::parse_duration(d.get_ref()).map_err(|e| {
            err(line_of(d.span()), format!("`{key}` = \"{}\" is not a duration ({e}): use e.g. \"30m\" or \"2h\"", d.get_ref()))
        })
    };
    let statement_timeout = header.statement_timeout.as_ref().map(|d| duration("statement_timeout", d)).transpose()?;
    let max_run_time = header.max_run_time.as_ref().map(|d| duration("max_run_time", d)).transpose()?.unwrap_or(DEFAULT_MAX_RUN_TIME);
    let mut mode = header.mode.as_ref().map(|m| *m.get_ref()).unwrap_or(DEFAULT_MODE);
    let on_remove = match (&header.on_remove, mode) {
        (None, Mode::Mirror) => OnRemove::Delete,
        (None, _) => OnRemove::Ignore,
        (Some(r), _) => {
            let line = line_of(r.span());
            match (*r.get_ref(), mode) {
                (OnRemove::Delete, Mode::Mirror) | (OnRemove::Ignore, Mode::Upsert | Mode::Update | Mode::Insert) => *r.get_ref(),
                // Upsert + delete is what mirror means.
                (OnRemove::Delete, Mode::Upsert) => {
                    mode = Mode::Mirror;
                    OnRemove::Delete
                }
                (OnRemove::Clear, Mode::Upsert | Mode::Update) => OnRemove::Clear,
                (OnRemove::Clear | OnRemove::Ignore, Mode::Mirror) => {
                    return Err(err(
                        line,
                        "mode = \"mirror\" means on_remove = \"delete\": for another on_remove use mode = \"upsert\"".into(),
                    ))
                }
                (r, m) => {
                    return Err(err(
                        line,
                        format!(
                            "on_remove = \"{}\" does not go with mode = \"{}\": removed rows can be cleared in upsert and update modes, \
                             deleted in upsert (= mirror) mode",
                            match r {
                                OnRemove::Ignore => "ignore",
                                OnRemove::Clear => "clear",
                                OnRemove::Delete => "delete",
                            },
                            m.as_str()
                        ),
                    ))
                }
            }
        }
    };
    let cursor = located(&header.cursor);
    if let Some(c) = &cursor {
        if c.value.trim().is_empty() {
            return Err(err(
                c.line,
                "`cursor` names an empty column: name the model column that grows on every change, e.g. \"updated_at\"".into(),
            ));
        }
        if on_remove == OnRemove::Clear {
            return Err(err(
                c.line,
                "a cursor sync cannot use on_remove = \"clear\": it reads only rows past the cursor, so it cannot tell which rows left the model"
                    .into(),
            ));
        }
        if mode == Mode::Mirror {
            return Err(err(
                c.line,
                "a cursor sync cannot use mode = \"mirror\": it reads only rows past the cursor, so it cannot tell which rows left the model \
                 (drop `cursor`, or use mode = \"upsert\")"
                    .into(),
            ));
        }
    }
    let trigger = match &header.trigger {
        None => Trigger::Schedule,
        Some(t) => match t.get_ref().as_str() {
            "schedule" => Trigger::Schedule,
            "on_event" => {
                let debounce = header.debounce.as_ref().map(|d| duration("debounce", d)).transpose()?.unwrap_or(DEFAULT_DEBOUNCE);
                Trigger::OnEvent { debounce, line: line_of(t.span()) }
            }
            other => {
                return Err(err(
                    line_of(t.span()),
                    format!("unknown trigger `{other}`: use \"on_event\" (runs when events arrive on its stream) or \"schedule\""),
                ))
            }
        },
    };
    if let (Trigger::Schedule, Some(d)) = (&trigger, &header.debounce) {
        return Err(err(line_of(d.span()), "`debounce` applies to trigger = \"on_event\" only".into()));
    }
    let after = match &header.after {
        None => Located { value: Vec::new(), line: 0 },
        Some(a) => {
            let names = match a.get_ref() {
                KeySpec::One(n) => vec![n.clone()],
                KeySpec::Many(ns) => ns.clone(),
            };
            let line = line_of(a.span());
            if names.iter().any(|n| n.trim().is_empty()) {
                return Err(err(line, "`after` names an empty sync: name the syncs this one runs after, e.g. [\"accounts\"]".into()));
            }
            Located { value: names, line }
        }
    };
    let alerts = match &header.alerts {
        None => None,
        Some(a) => {
            let line = line_of(a.span());
            a.get_ref().check().map_err(|(_, m)| err(line, format!("[alerts] {m}")))?;
            Some(Located { value: a.get_ref().clone(), line })
        }
    };
    let diff = match &header.diff {
        None => Located { value: DiffMode::Local, line: 0 },
        Some(d) => Located { value: *d.get_ref(), line: line_of(d.span()) },
    };
    Ok(SyncFile {
        diff,
        after,
        alerts,
        trigger,
        on_remove,
        nulls: header.nulls.unwrap_or(DEFAULT_NULLS),
        log_values: header.log_values.unwrap_or(DEFAULT_LOG_VALUES),
        cursor,
        retry_rejected_after,
        statement_timeout,
        max_run_time,
        max_deletes,
        max_delete_pct,
        catch_up: header.catch_up.unwrap_or(DEFAULT_CATCH_UP),
        jitter_secs,
        name: sync_name(path),
        path: path.to_path_buf(),
        schedule,
        source: located(&header.source),
        destination: located(&header.destination),
        primary_key,
        mode,
        target: header.target,
        mapping,
        model,
        header_text: header_text.trim_matches('\n').to_string(),
        model_line,
        header_line,
    })
}

/// The model must be one query: sluice only reads. Catches a second statement (`;` outside
/// strings and comments) and a statement that is not a query (DELETE, CREATE, ...).
fn check_model(model: &str) -> Result<(), String> {
    // The model with comments and quoted text replaced by a space.
    let mut code = String::with_capacity(model.len());
    let mut rest = model;
    while let Some(c) = rest.chars().next() {
        let skipped = super::sqltext::skipped(rest);
        if skipped > 0 {
            code.push(' ');
            rest = &rest[skipped..];
        } else {
            code.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if code.contains(';') {
        return Err("the model holds more than one statement: a sync file's model is one query".into());
    }
    let first = code.trim_start().trim_start_matches('(').split(|c: char| !c.is_alphanumeric()).next().unwrap_or("").to_ascii_lowercase();
    if !matches!(first.as_str(), "select" | "with" | "from" | "values" | "table" | "pivot" | "unpivot") {
        return Err(format!(
            "the model starts with `{}`, not a query: it must be a SELECT (or WITH ... SELECT); sluice only reads",
            first.to_ascii_uppercase()
        ));
    }
    Ok(())
}

/// Pulls the field name out of serde's "unknown field `x`, expected ..." message.
pub(crate) fn unknown_field(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    Some(rest.split('`').next()?.to_string())
}

#[cfg(test)]
mod model_tests {
    use super::check_model;

    #[test]
    fn one_query_only() {
        assert!(check_model("SELECT 1").is_ok());
        assert!(check_model("-- top\nWITH a AS (SELECT ';' AS x) SELECT * FROM a").is_ok());
        assert!(check_model("SELECT 'it''s; fine', \"a;b\" FROM t /* ; */").is_ok());
        assert!(check_model("SELECT $$a;b$$, $x$;$x$").is_ok());
        assert!(check_model("(SELECT 1) UNION (SELECT 2)").is_ok());
        assert!(check_model("SELECT 1; SELECT 2").unwrap_err().contains("more than one statement"));
        assert!(check_model("DELETE FROM customers").unwrap_err().contains("starts with `DELETE`"));
        assert!(check_model("/* c */ create table x (a int)").unwrap_err().contains("`CREATE`"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<SyncFile, ProjectError> {
        parse(Path::new("syncs/t.sql"), text)
    }

    #[test]
    fn parses_a_full_header_and_keeps_mapping_order() {
        let f = parse_str(
            "/* sluice\nschedule = \"*/15 * * * *\"\nsource = \"w\"\ndestination = \"crm\"\nprimary_key = \"id\"\nmode = \"mirror\"\n[target]\nobject = \"contacts\"\n[mapping]\nz = \"a\"\n\"Lifetime value\" = \"ltv\"\n*/\nSELECT 1 AS id;\n",
        )
        .unwrap();
        assert_eq!(f.name, "t");
        assert_eq!(f.mode, Mode::Mirror);
        assert_eq!(f.primary_key.value, vec!["id".to_string()]);
        assert_eq!(f.mapping.iter().map(|m| m.field.as_str()).collect::<Vec<_>>(), ["z", "Lifetime value"]);
        assert_eq!(f.mapping[1].line, 11);
        assert_eq!(f.model, "SELECT 1 AS id");
        assert_eq!(f.model_line, 13);
        assert_eq!(f.destination.unwrap().line, 4);
    }

    #[test]
    fn unknown_key_names_line_and_suggests() {
        let e = parse_str("/* sluice\nprimary_key = \"id\"\nshedule = \"@daily\"\n*/\nSELECT 1 AS id").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("syncs/t.sql:3:"), "{text}");
        assert!(text.contains("did you mean `schedule`?"), "{text}");
    }

    #[test]
    fn composite_keys_and_defaults() {
        let f = parse_str("/* sluice\nprimary_key = [\"a\", \"b\"]\n*/\nSELECT 1 a, 2 b").unwrap();
        assert_eq!(f.primary_key.value, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(f.mode, Mode::Upsert);
        assert_eq!(f.schedule, Schedule::Manual);
    }

    #[test]
    fn structural_errors_are_clear() {
        let e = parse_str("SELECT 1").unwrap_err().to_string();
        assert!(e.contains("must start with a `/* sluice` header"), "{e}");
        let e = parse_str("/* sluice\nprimary_key = \"id\"\nSELECT 1").unwrap_err().to_string();
        assert!(e.contains("never closed"), "{e}");
        let e = parse_str("/* sluice\nprimary_key = \"id\"\n*/\n  ;").unwrap_err().to_string();
        assert!(e.contains("no SQL model"), "{e}");
        let e = parse_str("/* sluice\n*/\nSELECT 1").unwrap_err().to_string();
        assert!(e.contains("no `primary_key`"), "{e}");
        let e = parse_str("/* sluice\nprimary_key = \"id\"\nmode = \"upsertt\"\n*/\nSELECT 1").unwrap_err().to_string();
        assert!(e.starts_with("syncs/t.sql:3:") && e.contains("upsert"), "{e}");
        let e = parse_str("/* sluice\nprimary_key = \"id\"\nschedule = \"61 * * * *\"\n*/\nSELECT 1").unwrap_err().to_string();
        assert!(e.starts_with("syncs/t.sql:3:") && e.contains("schedule"), "{e}");
        let e =
            parse_str("/* sluice\nprimary_key = \"id\"\nmode = \"mirror\"\ncursor = \"updated_at\"\n*/\nSELECT 1").unwrap_err().to_string();
        assert!(e.starts_with("syncs/t.sql:4:") && e.contains("cannot use mode = \"mirror\""), "{e}");
        let e = parse_str("/* sluice\nprimary_key = \"id\"\non_remove = \"clear\"\ncursor = \"updated_at\"\n*/\nSELECT 1")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("syncs/t.sql:4:") && e.contains("cannot use on_remove = \"clear\""), "{e}");
    }
}
