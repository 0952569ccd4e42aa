//! The command line: parsing, and one function per command. Output for people goes to stdout
//! as short lines; `--json` prints one JSON document instead. Logs go to stderr.

mod apply;
mod init;
pub(crate) mod log;
mod mcp;
mod output;
pub mod reference;
mod start;

pub use start::start;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::engine::{check_capabilities, Engine, RunOptions, Shape, SyncReport};
use crate::project::{Project, ProjectError, SyncSpec};

/// `sluice --version`: the version and the commit it was built from (build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("SLUICE_COMMIT"), ")");

/// Exit codes (`engine::exit`, where a run's outcome decides them).
pub use crate::engine::exit::{INVALID as EXIT_INVALID, OK as EXIT_OK, SYNC_FAILED as EXIT_SYNC_FAILED};

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version = VERSION,
    about = "Reverse ETL from plain .sql files: run a model, diff it against the last run, send only the changes."
)]
pub struct Cli {
    /// Project directory (holding sluice.toml and syncs/).
    #[arg(long, global = true, env = "SLUICE_PROJECT", default_value = ".")]
    pub project: PathBuf,
    /// The environment: an `[env.NAME]` of sluice.toml laid over the rest (default: its
    /// `environment`, if set).
    #[arg(long, global = true, env = "SLUICE_ENV")]
    pub env: Option<String>,
    /// Print one JSON document instead of text (check, plan, run, status, failures, log).
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug). SLUICE_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log lines as text for people or JSON for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a working example project in DIR.
    Init { dir: PathBuf },
    /// Validate syncs (default: all) and every destination: header, config, source connection,
    /// model columns, mapping.
    Check {
        /// Syncs to check (default: all, and the destinations no sync uses).
        names: Vec<String>,
    },
    /// Dry run: what each sync would send (counts and sample rows). Sends and stores nothing.
    Plan {
        /// Syncs to plan (default: all).
        names: Vec<String>,
        /// Sample rows shown per kind of change.
        #[arg(long, default_value_t = 3)]
        samples: usize,
        /// Plan as if `run --full-resync`.
        #[arg(long)]
        full_resync: bool,
        /// Also the syncs over dbt models: `tag:NAME`, or `dbt:MODEL` (MODEL or a model downstream of it).
        #[arg(long)]
        select: Vec<String>,
        /// Save every change (key, op, fingerprint, values) to FILE, for `sluice apply FILE`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Send exactly the changes of a plan saved with `plan --out`; refuse (nothing sent) where the
    /// model's changes are no longer those, or the plan is older than --max-age.
    Apply {
        file: PathBuf,
        /// The oldest plan applied ("30m", "2h", "1d").
        #[arg(long, default_value = "24h")]
        max_age: String,
        /// Let mirror runs remove more rows than the delete guard allows.
        #[arg(long)]
        allow_deletes: bool,
    },
    /// Run syncs once: send added, changed (and in mirror mode, removed) rows.
    Run {
        /// Syncs to run (default: all).
        names: Vec<String>,
        /// Re-send every row, whatever was sent before.
        #[arg(long)]
        full_resync: bool,
        /// Let mirror runs remove more rows than the delete guard allows (or all, for an empty model).
        #[arg(long)]
        allow_deletes: bool,
        /// Also the syncs over dbt models: `tag:NAME`, or `dbt:MODEL` (MODEL or a model downstream
        /// of it); for a run right after `dbt build`.
        #[arg(long)]
        select: Vec<String>,
        /// Send at most N changes per sync (a first real test of a new sync): the run is partial,
        /// the rest is sent by the next run.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// Exit 1 when a destination rejected rows (default: `[run] fail_on_rejected`, false:
        /// rejected rows are kept and retried, and the run exits 0).
        #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
        fail_on_rejected: Option<bool>,
    },
    /// Recent runs per sync: when, result, counts, errors, pending rows.
    Status {
        names: Vec<String>,
        /// Runs shown per sync.
        #[arg(long, default_value_t = 1)]
        runs: i64,
    },
    /// Rows a destination rejected or that wait for a retry: key, reason, attempts, first/last seen.
    Failures {
        /// Syncs to list (default: all).
        names: Vec<String>,
        /// Rows shown per sync.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Run syncs now, sending again the rows the destination rejected even if they did not change.
    Retry {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// The change log of a sync: every row operation sent, its outcome, newest first.
    Log {
        name: String,
        /// Only this row: its key value (`42`), `col=value,col=value` for a composite key, or JSON.
        #[arg(long)]
        key: Option<String>,
        /// Only changes since a time (2026-11-25T09:00:00Z) or for a duration back (30m, 2h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// Entries shown at most.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Run every sync on its schedule until stopped (SIGTERM/Ctrl-C); SIGHUP reloads the project.
    /// Meant to run under systemd: see contrib/systemd/sluice.service.
    Daemon,
    /// Print a completion script for a shell: `sluice completions bash > /etc/bash_completion.d/sluice`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `scripts/package` installs it.
    #[command(hide = true)]
    Man,
    /// Serve check, plan, run, status, failures and log to an agent: a Model Context Protocol
    /// server on stdin/stdout (the delete guard always holds).
    Mcp,
    /// Forget a sync's state: its next run sends every row again.
    Reset {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// An error that ends a command, with its exit code.
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl From<ProjectError> for Failure {
    fn from(e: ProjectError) -> Self {
        Failure { code: EXIT_INVALID, message: e.to_string() }
    }
}

fn fail(code: u8, message: impl Into<String>) -> Failure {
    Failure { code, message: message.into() }
}

pub async fn main(cli: Cli, cancel: CancellationToken) -> ExitCode {
    let result = match &cli.command {
        Command::Init { dir } => init::init(dir),
        Command::Check { names } => check(&cli, names).await,
        Command::Plan { names, samples, full_resync, select, out } => {
            let record = out.as_ref().map(|_| std::sync::Arc::new(crate::engine::saved::Recorder::default()));
            let opts = RunOptions { dry_run: true, samples: *samples, full_resync: *full_resync, cancel, record, ..Default::default() };
            run(&cli, names, select, opts, Ending { out: out.as_deref(), fail_on_rejected: None }).await
        }
        Command::Apply { file, max_age, allow_deletes } => apply::apply(&cli, file, max_age, *allow_deletes, cancel).await,
        Command::Run { names, full_resync, allow_deletes, select, limit, fail_on_rejected } => {
            let opts = RunOptions {
                full_resync: *full_resync,
                allow_deletes: *allow_deletes,
                limit: *limit,
                cancel,
                started_by: "`sluice run`".into(),
                ..Default::default()
            };
            run(&cli, names, select, opts, Ending { out: None, fail_on_rejected: *fail_on_rejected }).await
        }
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut <Cli as clap::CommandFactory>::command(), "sluice", &mut std::io::stdout());
            Ok(EXIT_OK)
        }
        Command::Man => {
            let man = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command());
            man.render(&mut std::io::stdout()).map(|_| EXIT_OK).map_err(|e| fail(EXIT_SYNC_FAILED, format!("writing the man page: {e}")))
        }
        Command::Status { names, runs } => status(&cli, names, *runs).await,
        Command::Failures { names, limit } => failures(&cli, names, *limit).await,
        Command::Retry { names } => {
            let opts = RunOptions { retry_rejected: true, cancel, started_by: "`sluice retry`".into(), ..Default::default() };
            run(&cli, names, &[], opts, Ending::default()).await
        }
        Command::Reset { names } => reset(&cli, names).await,
        Command::Mcp => mcp::serve(&cli, cancel).await,
        Command::Log { name, key, since, limit } => log::log(&cli, name, key.as_deref(), since.as_deref(), *limit).await,
        Command::Daemon => {
            crate::daemon::run(&cli.project, cli.env.as_deref(), cancel).await.map(|_| EXIT_OK).map_err(|e| fail(EXIT_INVALID, e))
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            output::tell!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

pub(crate) fn load(cli: &Cli) -> Result<Project, Failure> {
    Ok(Project::load_in(&cli.project, cli.env.as_deref())?)
}

pub(crate) async fn open_engine(project: &Project) -> Result<Engine, Failure> {
    Engine::open(project).await.map_err(|e| {
        // A busy store is a failure to retry, not an invalid project.
        let code = if matches!(e, crate::state::StateError::Locked) { EXIT_SYNC_FAILED } else { EXIT_INVALID };
        fail(code, e.to_string())
    })
}

/// The syncs a command works on. Naming an invalid sync is an error; without names, invalid
/// syncs are reported and the others go ahead.
/// `select` (`--select`) adds the syncs over those dbt models, and without names means those only;
/// an invalid sync may then be one a selector would pick (a ref that no longer resolves), so it
/// is reported and fails the command too.
pub(crate) fn selected<'p>(
    project: &'p Project,
    names: &[String],
    select: &[String],
    json: bool,
) -> Result<(Vec<&'p SyncSpec>, bool), Failure> {
    let mut syncs =
        if names.is_empty() && !select.is_empty() { Vec::new() } else { project.select(names).map_err(|m| fail(EXIT_INVALID, m))? };
    if !select.is_empty() {
        for sync in project.select_dbt(select).map_err(|m| fail(EXIT_INVALID, m))? {
            if !syncs.iter().any(|c| c.name() == sync.name()) {
                syncs.push(sync);
            }
        }
    }
    let invalid = (names.is_empty() || !select.is_empty()) && !project.invalid.is_empty();
    if invalid && !json {
        for e in &project.invalid {
            output::tell!("invalid sync: {e}");
        }
    }
    Ok((syncs, invalid))
}

async fn check(cli: &Cli, names: &[String]) -> Result<u8, Failure> {
    let project = load(cli)?;
    // Naming a sync that does not exist (or is invalid) is an error, with its reason.
    let named = if names.is_empty() { None } else { Some(selected(&project, names, &[], cli.json)?.0) };
    let engine = open_engine(&project).await?;
    let results = match named {
        None => check_results(&project, &engine).await,
        Some(syncs) => {
            let mut results = Vec::new();
            for sync in syncs {
                results.push(check_result(&engine, &project, sync).await);
            }
            results
        }
    };
    let ok = results.iter().all(|r| r.ok);
    if let (Some(env), false) = (&project.config.active_env, cli.json) {
        output::say!("environment: {env}");
    }
    output::check(&results, cli.json);
    Ok(if ok { EXIT_OK } else { EXIT_INVALID })
}

/// What `check` finds of every sync, the invalid ones first, and of every stream.
pub(crate) async fn check_results(project: &Project, engine: &Engine) -> Vec<output::CheckResult> {
    let mut results = Vec::new();
    for e in &project.invalid {
        results.push(output::CheckResult { sync: crate::project::syncfile::sync_name(&e.file), ok: false, detail: e.to_string() });
    }
    for sync in &project.syncs {
        results.push(check_result(engine, project, sync).await);
    }
    for stream in project.unread_streams() {
        results.push(output::CheckResult {
            sync: format!("stream:{stream}"),
            ok: false,
            detail: format!(
                "no sync reads stream `{stream}`: its events would be stored and dropped unread after `retain`; add a sync with \
                 `source = \"stream:{stream}\"`, or remove [streams.{stream}] from sluice.toml"
            ),
        });
    }
    // A destination no sync uses is checked too: its settings may be wrong before a sync needs it.
    for name in project.config.destinations.keys().filter(|d| !project.syncs.iter().any(|s| s.destination == **d)) {
        let (ok, detail) = match engine.destination(name) {
            Ok(_) => (true, "no sync uses it; its settings are valid".to_string()),
            Err(e) => (false, format!("{}: {e}", crate::project::config::table_at(&project.root, &["destinations", name]))),
        };
        results.push(output::CheckResult { sync: format!("destination:{name}"), ok, detail });
    }
    if let Some(result) = engine.check_writeback().await {
        results.push(output::CheckResult { sync: "[writeback]".into(), ok: result.is_ok(), detail: result.unwrap_or_else(|e| e) });
    }
    results
}

async fn check_result(engine: &Engine, project: &Project, sync: &SyncSpec) -> output::CheckResult {
    let detail = check_one(engine, project, sync).await;
    output::CheckResult { sync: sync.name().to_string(), ok: detail.is_ok(), detail: detail.unwrap_or_else(|e| e) }
}

/// Everything `check` verifies for one sync, short of running it.
async fn check_one(engine: &Engine, project: &Project, sync: &SyncSpec) -> Result<String, String> {
    let at = |m: String| format!("{}:{}: {m}", sync.file.path.display(), sync.file.header_line);
    // A destination's own settings are wrong in sluice.toml, not in the sync file.
    let in_config = |m: String| format!("{}: {m}", crate::project::config::table_at(&project.root, &["destinations", &sync.destination]));
    let destination = engine.destination(&sync.destination).map_err(|e| in_config(e.to_string()))?;
    let mode = sync.file.mode;
    check_capabilities(sync, &destination.capabilities()).map_err(|e| e.to_string())?;
    let columns = engine.describe(sync).await.map_err(|e| match e {
        crate::engine::RunError::Source(e) => format!("{}:{}: {e}", sync.file.path.display(), sync.file.model_line),
        e => at(e.to_string()),
    })?;
    let shape = Shape::new(sync, &columns).map_err(|e| e.to_string())?;
    destination.check(&shape.target(sync, "check")).await.map_err(|e| at(format!("destination `{}`: {e}", sync.destination)))?;
    engine.check_warehouse(sync).await.map_err(|e| e.to_string())?;
    Ok(format!("{} -> {} ({}, {} column(s), {} field(s))", sync.source, sync.destination, mode.as_str(), columns.len(), shape.fields.len()))
}

async fn run(cli: &Cli, names: &[String], select: &[String], opts: RunOptions, ending: Ending<'_>) -> Result<u8, Failure> {
    run_in(cli, load(cli)?, names, select, opts, ending).await
}

/// How a `run`-like command ends, besides its runs: a plan saved to `out` (`apply::write`),
/// and whether rejected rows fail it (`--fail-on-rejected`, else `[run] fail_on_rejected`).
#[derive(Default)]
struct Ending<'a> {
    out: Option<&'a std::path::Path>,
    fail_on_rejected: Option<bool>,
}

/// Runs (or plans) the syncs named or selected, in `after` order.
async fn run_in(
    cli: &Cli,
    project: Project,
    names: &[String],
    select: &[String],
    mut opts: RunOptions,
    ending: Ending<'_>,
) -> Result<u8, Failure> {
    let Ending { out, fail_on_rejected } = ending;
    // Bars for a person at a terminal, JSON lines for a machine, nothing on a pipe.
    let mut bars = None;
    if cli.json {
        opts.progress = Some(output::progress_json());
    } else if std::io::stderr().is_terminal() {
        let (progress, drawn) = output::progress_bars();
        opts.progress = Some(progress);
        bars = Some(drawn);
    }
    let (syncs, invalid) = selected(&project, names, select, cli.json)?;
    if !select.is_empty() && syncs.is_empty() && !invalid && !cli.json {
        output::say!("no sync reads a dbt model that --select {} picks: nothing to do", select.join(" --select "));
    }
    // Each sync after those it names in `after` (of the ones selected).
    let syncs = project.in_order(syncs);
    let engine = open_engine(&project).await?;
    let reports = execute(&engine, syncs, &opts, |report| {
        if let Some(bars) = &bars {
            bars.clear();
        }
        if !cli.json {
            output::report(report);
        }
    })
    .await;
    let saved = match (out, &opts.record) {
        (Some(out), Some(recorder)) => Some(apply::write(&engine, &project, &reports, recorder, opts.full_resync, out).await),
        _ => None,
    };
    engine.store.close().await;
    if cli.json {
        output::json(&serde_json::json!({
            "environment": project.config.active_env,
            "syncs": reports,
            "invalid": project.invalid.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            "saved_plan": match (&saved, out) {
                (Some(Ok(changes)), Some(out)) => serde_json::json!({ "file": out, "changes": changes }),
                (Some(Err(e)), _) => serde_json::json!({ "error": e }),
                _ => serde_json::Value::Null,
            },
        }));
    }
    let mut code = crate::engine::Outcome::exit_code_of(reports.iter().map(SyncReport::outcome));
    let fail_on_rejected = fail_on_rejected.unwrap_or(project.config.run.fail_on_rejected);
    if fail_on_rejected && !opts.dry_run && code == EXIT_OK && reports.iter().any(|r| r.rejected > 0) {
        let rejected: u64 = reports.iter().map(|r| r.rejected).sum();
        let by_sync: Vec<String> = reports.iter().filter(|r| r.rejected > 0).map(|r| format!("{} in `{}`", r.rejected, r.sync)).collect();
        output::tell!(
            "error: {rejected} row(s) rejected, and rejected rows fail this command (--fail-on-rejected, [run] fail_on_rejected): \
             {}; `sluice failures NAME` says why",
            by_sync.join(", ")
        );
        code = EXIT_SYNC_FAILED;
    }
    match (saved, out) {
        (Some(Ok(changes)), Some(out)) if !cli.json => {
            output::say!("plan saved to {}: {changes} change(s); `sluice apply {}` sends exactly these", out.display(), out.display())
        }
        (Some(Err(e)), _) => {
            output::tell!("error: {e}");
            return Ok(code.max(EXIT_SYNC_FAILED));
        }
        _ => {}
    }
    Ok(if code != EXIT_OK {
        code
    } else if invalid {
        EXIT_INVALID
    } else {
        EXIT_OK
    })
}

/// Runs (or plans) the syncs, in the order given, each reported to `each` as it ends. A sync
/// after one that did not get through in this call is skipped (recorded, alerted).
pub(crate) async fn execute(
    engine: &Engine,
    syncs: Vec<&SyncSpec>,
    opts: &RunOptions,
    mut each: impl FnMut(&SyncReport),
) -> Vec<SyncReport> {
    let mut reports: Vec<SyncReport> = Vec::new();
    for sync in syncs {
        if opts.cancel.is_cancelled() {
            break;
        }
        // A sync after one that did not get through in this command is skipped (recorded, alerted);
        // one whose dependency was not selected runs: the person named it. A plan plans them all.
        let held_up = sync.file.after.value.iter().find_map(|before| {
            let r = reports.iter().find(|r| r.sync == *before)?;
            (!r.outcome().got_through()).then(|| {
                let (how, why) = ended_as(r);
                format!("it runs after `{before}`, which {how} in this command{why}")
            })
        });
        let report = match held_up {
            Some(why) if !opts.dry_run => engine.skip(sync, why, &opts.started_by).await,
            _ => engine.run(sync, opts).await,
        };
        each(&report);
        reports.push(report);
    }
    reports
}

/// How a run that held up the syncs after it ended, in words, and its error (`: ...`) if
/// that says more.
fn ended_as(r: &SyncReport) -> (&'static str, String) {
    let why = r.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
    match r.outcome() {
        crate::engine::Outcome::Busy => ("was running elsewhere", why),
        crate::engine::Outcome::Skipped => ("was skipped", String::new()),
        crate::engine::Outcome::Interrupted => ("was interrupted", String::new()),
        _ => ("failed", why),
    }
}

pub(crate) fn db_error(e: crate::state::StateError) -> Failure {
    fail(EXIT_SYNC_FAILED, e.to_string())
}

/// A sync's rejected and pending rows: the counts and the first `limit`.
pub(crate) async fn failed_rows(engine: &Engine, sync: &str, limit: i64) -> Result<output::FailureRows, Failure> {
    let (rejected, retryable) = engine.store.error_counts(sync).await.map_err(db_error)?;
    let rows = engine.store.row_errors(sync, limit.max(1)).await.map_err(db_error)?;
    Ok(output::FailureRows { sync: sync.to_string(), rejected, retryable, rows })
}

async fn status(cli: &Cli, names: &[String], runs: i64) -> Result<u8, Failure> {
    let project = load(cli)?;
    let (syncs, _) = selected(&project, names, &[], cli.json)?;
    let engine = open_engine(&project).await?;
    let rows = status_rows(&engine, &syncs, runs).await;
    engine.store.close().await;
    output::status(&rows?, cli.json);
    Ok(EXIT_OK)
}

/// `failures`: each sync's rejected and pending rows, the first `limit`.
pub(crate) async fn failure_rows(engine: &Engine, syncs: &[&SyncSpec], limit: i64) -> Result<Vec<output::FailureRows>, Failure> {
    let mut rows = Vec::new();
    for sync in syncs {
        rows.push(failed_rows(engine, sync.name(), limit).await?);
    }
    Ok(rows)
}

/// `status`: each sync's last `runs` runs and its rejected and pending rows.
pub(crate) async fn status_rows(engine: &Engine, syncs: &[&SyncSpec], runs: i64) -> Result<Vec<output::StatusRow>, Failure> {
    let mut rows = Vec::new();
    for sync in syncs {
        let history = engine.store.runs(sync.name(), runs.max(1)).await.map_err(db_error)?;
        let failed = failed_rows(engine, sync.name(), 5).await?;
        rows.push(output::StatusRow {
            sync: failed.sync,
            runs: history,
            pending_rejected: failed.rejected,
            pending_retryable: failed.retryable,
            errors: failed.rows,
        });
    }
    Ok(rows)
}

async fn failures(cli: &Cli, names: &[String], limit: i64) -> Result<u8, Failure> {
    let project = load(cli)?;
    let (syncs, _) = selected(&project, names, &[], cli.json)?;
    let engine = open_engine(&project).await?;
    let rows = failure_rows(&engine, &syncs, limit).await;
    engine.store.close().await;
    output::failures(&rows?, cli.json);
    Ok(EXIT_OK)
}

async fn reset(cli: &Cli, names: &[String]) -> Result<u8, Failure> {
    let project = load(cli)?;
    // Resetting a sync whose file is broken is legitimate: accept any name with state.
    let engine = open_engine(&project).await?;
    for name in names {
        let n = engine.reset(name, "`sluice reset`").await.map_err(|e| fail(EXIT_SYNC_FAILED, e.to_string()))?;
        output::say!("{name}: forgot {n} row(s); the next run sends every row");
    }
    engine.store.close().await;
    Ok(EXIT_OK)
}
