//! `sluice mcp`: a Model Context Protocol server over stdio, for agents. Its tools are the
//! commands' own (check, plan, run, status, failures, log), answering with the JSON their
//! `--json` prints. Each call loads the project afresh (edits are seen) and opens the state store
//! for that call only, so it is what `sluice CMD --json` would say at that moment.
//!
//! What an agent cannot do: pass `--allow-deletes` (the delete guard always holds: a person lets
//! a big removal through with `sluice run --allow-deletes`), reset a sync's state, or write
//! files (`plan --out`). Runs take the syncs' locks like any other: never beside another run of
//! the same sync, whoever started it. stdout carries the protocol only; logs go to stderr.

use std::path::PathBuf;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::{tool, tool_handler, tool_router, ServerHandler, ServiceExt};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::Failure;
use crate::engine::{Engine, RunOptions};
use crate::project::Project;

#[derive(Clone)]
pub struct Server {
    project: PathBuf,
    env: Option<String>,
    cancel: CancellationToken,
    tool_router: ToolRouter<Server>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct PlanArgs {
    /// Sync names; empty or absent: every sync.
    #[serde(default)]
    pub names: Vec<String>,
    /// Sample rows shown per kind of change (default 3).
    pub samples: Option<usize>,
    /// Plan as if every row were re-sent.
    #[serde(default)]
    pub full_resync: bool,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct RunArgs {
    /// Sync names; empty or absent: every sync, in `after` order.
    #[serde(default)]
    pub names: Vec<String>,
    /// Re-send every row, whatever was sent before.
    #[serde(default)]
    pub full_resync: bool,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct StatusArgs {
    /// Sync names; empty or absent: every sync.
    #[serde(default)]
    pub names: Vec<String>,
    /// Runs shown per sync (default 1).
    pub runs: Option<i64>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct FailuresArgs {
    /// Sync names; empty or absent: every sync.
    #[serde(default)]
    pub names: Vec<String>,
    /// Rows shown per sync (default 50).
    pub limit: Option<i64>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct LogArgs {
    /// The sync.
    pub name: String,
    /// Only this row: its key value (`42`), `col=value,col=value` for a composite key, or JSON.
    pub key: Option<String>,
    /// Only changes since a time (2026-11-25T09:00:00Z) or for a duration back (30m, 2h, 7d).
    pub since: Option<String>,
    /// Entries shown at most (default 100).
    pub limit: Option<i64>,
}

/// A tool's answer: the command's JSON, or its error (the tool call then fails with it).
type Answer = Result<String, String>;

fn answer(value: serde_json::Value) -> Answer {
    serde_json::to_string_pretty(&value).map_err(|e| e.to_string())
}

fn failed(f: Failure) -> String {
    f.message
}

#[tool_router]
impl Server {
    pub fn new(project: PathBuf, env: Option<String>, cancel: CancellationToken) -> Server {
        Server { project, env, cancel, tool_router: Self::tool_router() }
    }

    fn load(&self) -> Result<Project, String> {
        Project::load_in(&self.project, self.env.as_deref()).map_err(|e| e.to_string())
    }

    /// The call's work with the project and an engine, the engine's store closed after.
    async fn with_engine<T>(&self, work: impl AsyncFnOnce(&Project, &Engine) -> Result<T, String>) -> Result<T, String> {
        let project = self.load()?;
        let engine = super::open_engine(&project).await.map_err(failed)?;
        let result = work(&project, &engine).await;
        engine.store.close().await;
        result
    }

    #[tool(description = "Validate every sync: header, config, source connection, model columns, mapping. \
                          Returns {ok, syncs: [{sync, ok, detail}]}.")]
    async fn check(&self) -> Answer {
        let results = self.with_engine(async |project, engine| Ok(super::check_results(project, engine).await)).await?;
        answer(serde_json::json!({ "ok": results.iter().all(|r| r.ok), "syncs": results }))
    }

    #[tool(description = "Dry run: what each sync would send (counts per kind of change, sample rows; a changed \
                          row's old values where the change log has them). Sends and stores nothing.")]
    async fn plan(&self, Parameters(args): Parameters<PlanArgs>) -> Answer {
        let opts = RunOptions {
            dry_run: true,
            samples: args.samples.unwrap_or(3),
            full_resync: args.full_resync,
            cancel: self.cancel.clone(),
            ..Default::default()
        };
        self.runs(&args.names, opts).await
    }

    #[tool(description = "Run syncs once: send the added, changed and removed rows. The delete guard holds: a run \
                          that would remove more than it allows sends nothing (a person can let it through). \
                          Returns each sync's report (status, counts, written, rejected, error).")]
    async fn run(&self, Parameters(args): Parameters<RunArgs>) -> Answer {
        let opts = RunOptions {
            full_resync: args.full_resync,
            cancel: self.cancel.clone(),
            started_by: "`sluice mcp`".into(),
            ..Default::default()
        };
        self.runs(&args.names, opts).await
    }

    #[tool(description = "Recent runs per sync: when, result, counts, errors, and rows pending or rejected.")]
    async fn status(&self, Parameters(args): Parameters<StatusArgs>) -> Answer {
        let rows = self
            .with_engine(async |project, engine| {
                let (syncs, _) = super::selected(project, &args.names, &[], true).map_err(failed)?;
                super::status_rows(engine, &syncs, args.runs.unwrap_or(1)).await.map_err(failed)
            })
            .await?;
        answer(serde_json::json!({ "syncs": rows }))
    }

    #[tool(description = "Rows a destination rejected or that wait for a retry: key, reason, attempts, first and \
                          last seen.")]
    async fn failures(&self, Parameters(args): Parameters<FailuresArgs>) -> Answer {
        let rows = self
            .with_engine(async |project, engine| {
                let (syncs, _) = super::selected(project, &args.names, &[], true).map_err(failed)?;
                super::failure_rows(engine, &syncs, args.limit.unwrap_or(50)).await.map_err(failed)
            })
            .await?;
        answer(serde_json::json!({ "syncs": rows }))
    }

    #[tool(description = "The change log of one sync: every row operation sent and its outcome, newest first.")]
    async fn log(&self, Parameters(args): Parameters<LogArgs>) -> Answer {
        let name = args.name.clone();
        let changes = self
            .with_engine(async |project, engine| {
                let query = super::log::query(project, &name, args.key.as_deref(), args.since.as_deref(), args.limit.unwrap_or(100), "")?;
                engine.store.changes(&name, &query).await.map_err(|e| e.to_string())
            })
            .await?;
        answer(serde_json::json!({ "sync": args.name, "changes": changes }))
    }
}

impl Server {
    /// `plan` and `run`: the syncs named (all without names), in `after` order.
    async fn runs(&self, names: &[String], opts: RunOptions) -> Answer {
        let (environment, reports, invalid) = self
            .with_engine(async |project, engine| {
                let (syncs, _) = super::selected(project, names, &[], true).map_err(failed)?;
                let reports = super::execute(engine, project.in_order(syncs), &opts, |_| {}).await;
                let invalid: Vec<String> = project.invalid.iter().map(|e| e.to_string()).collect();
                Ok((project.config.active_env.clone(), reports, invalid))
            })
            .await?;
        answer(serde_json::json!({ "environment": environment, "syncs": reports, "invalid": invalid }))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "sluice sends the rows of SQL models to business tools (reverse ETL). Call `check` first, `plan` to see \
             what a run would send, `run` to send it, then `status`, `failures` and `log` to see what happened.",
        )
    }
}

/// Serves the tools on stdin/stdout until the client closes stdin or the process is stopped.
pub async fn serve(cli: &super::Cli, cancel: CancellationToken) -> Result<u8, Failure> {
    // The project must load now: a server that fails every call helps no one.
    Project::load_in(&cli.project, cli.env.as_deref())?;
    let server = Server::new(cli.project.clone(), cli.env.clone(), cancel.clone());
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| super::fail(super::EXIT_SYNC_FAILED, format!("the MCP session did not start: {e}")))?;
    // Stopped (Ctrl-C, SIGTERM): runs in flight stop as `sluice run`'s do, then the session ends.
    let session = running.cancellation_token();
    let stop = tokio::spawn(async move {
        cancel.cancelled().await;
        session.cancel();
    });
    let ended = running.waiting().await;
    stop.abort();
    ended.map_err(|e| super::fail(super::EXIT_SYNC_FAILED, format!("the MCP session ended: {e}")))?;
    Ok(super::EXIT_OK)
}
