//! The command line: parsing, and one function per command. Output for people goes to stdout
//! as short lines; `--json` prints one JSON document instead. Logs go to stderr.

mod init;
mod log;
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

/// Exit codes (`engine::exit`, where a run's outcome decides them).
pub use crate::engine::exit::{INVALID as EXIT_INVALID, OK as EXIT_OK, SYNC_FAILED as EXIT_SYNC_FAILED};

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
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
    /// Validate every sync: header, config, source connection, model columns, mapping.
    Check,
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
        Command::Check => check(&cli).await,
        Command::Plan { names, samples, full_resync, select } => {
            let opts = RunOptions { dry_run: true, samples: *samples, full_resync: *full_resync, cancel, ..Default::default() };
            run(&cli, names, select, opts).await
        }
        Command::Run { names, full_resync, allow_deletes, select } => {
            let opts = RunOptions {
                full_resync: *full_resync,
                allow_deletes: *allow_deletes,
                cancel,
                started_by: "`sluice run`".into(),
                ..Default::default()
            };
            run(&cli, names, select, opts).await
        }
        Command::Status { names, runs } => status(&cli, names, *runs).await,
        Command::Failures { names, limit } => failures(&cli, names, *limit).await,
        Command::Retry { names } => {
            let opts = RunOptions { retry_rejected: true, cancel, started_by: "`sluice retry`".into(), ..Default::default() };
            run(&cli, names, &[], opts).await
        }
        Command::Reset { names } => reset(&cli, names).await,
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

fn load(cli: &Cli) -> Result<Project, Failure> {
    Ok(Project::load_in(&cli.project, cli.env.as_deref())?)
}

async fn open_engine(project: &Project) -> Result<Engine, Failure> {
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
fn selected<'p>(project: &'p Project, names: &[String], select: &[String], json: bool) -> Result<(Vec<&'p SyncSpec>, bool), Failure> {
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

async fn check(cli: &Cli) -> Result<u8, Failure> {
    let project = load(cli)?;
    let engine = open_engine(&project).await?;
    let mut results = Vec::new();
    for e in &project.invalid {
        results.push(output::CheckResult { sync: crate::project::syncfile::sync_name(&e.file), ok: false, detail: e.to_string() });
    }
    for sync in &project.syncs {
        let detail = check_one(&engine, sync).await;
        results.push(output::CheckResult { sync: sync.name().to_string(), ok: detail.is_ok(), detail: detail.unwrap_or_else(|e| e) });
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
    let ok = results.iter().all(|r| r.ok);
    if let (Some(env), false) = (&project.config.active_env, cli.json) {
        output::say!("environment: {env}");
    }
    output::check(&results, cli.json);
    Ok(if ok { EXIT_OK } else { EXIT_INVALID })
}

/// Everything `check` verifies for one sync, short of running it.
async fn check_one(engine: &Engine, sync: &SyncSpec) -> Result<String, String> {
    let at = |m: String| format!("{}:{}: {m}", sync.file.path.display(), sync.file.header_line);
    let destination = engine.destination(&sync.destination).map_err(|e| at(e.to_string()))?;
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

async fn run(cli: &Cli, names: &[String], select: &[String], mut opts: RunOptions) -> Result<u8, Failure> {
    let project = load(cli)?;
    let live = !cli.json && std::io::stderr().is_terminal();
    if live {
        opts.progress = Some(output::progress_line());
    }
    let (syncs, invalid) = selected(&project, names, select, cli.json)?;
    if !select.is_empty() && syncs.is_empty() && !invalid && !cli.json {
        output::say!("no sync reads a dbt model that --select {} picks: nothing to do", select.join(" --select "));
    }
    // Each sync after those it names in `after` (of the ones selected).
    let syncs = project.in_order(syncs);
    let engine = open_engine(&project).await?;
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
            _ => engine.run(sync, &opts).await,
        };
        if live {
            output::clear_progress();
        }
        if !cli.json {
            output::report(&report);
        }
        reports.push(report);
    }
    engine.store.close().await;
    if cli.json {
        output::json(&serde_json::json!({
            "environment": project.config.active_env,
            "syncs": reports,
            "invalid": project.invalid.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        }));
    }
    let code = crate::engine::Outcome::exit_code_of(reports.iter().map(SyncReport::outcome));
    Ok(if code != EXIT_OK {
        code
    } else if invalid {
        EXIT_INVALID
    } else {
        EXIT_OK
    })
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

fn db_error(e: crate::state::StateError) -> Failure {
    fail(EXIT_SYNC_FAILED, e.to_string())
}

/// A sync's rejected and pending rows: the counts and the first `limit`.
async fn failed_rows(engine: &Engine, sync: &str, limit: i64) -> Result<output::FailureRows, Failure> {
    let (rejected, retryable) = engine.store.error_counts(sync).await.map_err(db_error)?;
    let rows = engine.store.row_errors(sync, limit.max(1)).await.map_err(db_error)?;
    Ok(output::FailureRows { sync: sync.to_string(), rejected, retryable, rows })
}

async fn status(cli: &Cli, names: &[String], runs: i64) -> Result<u8, Failure> {
    let project = load(cli)?;
    let (syncs, _) = selected(&project, names, &[], cli.json)?;
    let engine = open_engine(&project).await?;
    let mut rows = Vec::new();
    for sync in syncs {
        let history = engine.store.runs(sync.name(), runs.max(1)).await.map_err(db_error)?;
        let failed = failed_rows(&engine, sync.name(), 5).await?;
        rows.push(output::StatusRow {
            sync: failed.sync,
            runs: history,
            pending_rejected: failed.rejected,
            pending_retryable: failed.retryable,
            errors: failed.rows,
        });
    }
    engine.store.close().await;
    output::status(&rows, cli.json);
    Ok(EXIT_OK)
}

async fn failures(cli: &Cli, names: &[String], limit: i64) -> Result<u8, Failure> {
    let project = load(cli)?;
    let (syncs, _) = selected(&project, names, &[], cli.json)?;
    let engine = open_engine(&project).await?;
    let mut rows = Vec::new();
    for sync in syncs {
        rows.push(failed_rows(&engine, sync.name(), limit).await?);
    }
    engine.store.close().await;
    output::failures(&rows, cli.json);
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
