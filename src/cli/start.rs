//! The process around the CLI: arguments, logging, the runtime, and the signals that stop a run
//! cleanly. `src/main.rs` calls [`start`]; so can a build of sluice with its own destinations
//! registered first (`examples/custom_destination.rs`).

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use super::{main, Cli, Command, LogFormat, EXIT_SYNC_FAILED};

/// Runs sluice as a command-line program and returns its exit code.
pub fn start() -> ExitCode {
    let mut cli = Cli::parse();
    // Work in the project directory: relative paths in sluice.toml and in models mean the same
    // thing wherever sluice was started, and DuckDB checks a model's relative file paths
    // against the working directory (`source::duckdb`). (`init` creates the directory.)
    if !matches!(cli.command, Command::Init { .. }) {
        if let Ok(root) = std::fs::canonicalize(&cli.project) {
            if std::env::set_current_dir(&root).is_ok() {
                cli.project = root;
            }
        }
    }
    // A daemon logs each run; one-off commands print their own report and log only problems.
    let daemon = matches!(cli.command, Command::Daemon);
    let default_level = match (cli.verbose, daemon) {
        (0, false) => "warn",
        (0, true) | (1, _) => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| EnvFilter::new(format!("sluice={default_level}")));
    // Colours only for a person at a terminal; journald and files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match cli.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_SYNC_FAILED);
        }
    };
    runtime.block_on(async {
        // First Ctrl-C / SIGTERM: finish the batch in flight, commit it, stop. Second: exit now
        // (still safe: state only ever records batches the destination accepted). The handlers
        // are installed here, before anything runs: until then a SIGTERM kills the process
        // outright (its default action), with no run recorded as interrupted.
        let cancel = CancellationToken::new();
        let signals = cancel.clone();
        let mut stops = match Stops::install() {
            Ok(stops) => stops,
            Err(e) => {
                super::output::tell!("error: cannot watch for Ctrl-C and SIGTERM: {e}");
                return ExitCode::from(EXIT_SYNC_FAILED);
            }
        };
        tokio::spawn(async move {
            stops.next().await;
            super::output::tell!("stopping after the current batch (press Ctrl-C again to exit now)");
            signals.cancel();
            stops.next().await;
            std::process::exit(130);
        });
        main(cli, cancel).await
    })
}

/// The signals that stop sluice: SIGINT (Ctrl-C) and SIGTERM (systemd, `kill`).
struct Stops {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Stops {
    fn install() -> std::io::Result<Stops> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Stops { interrupt: signal(SignalKind::interrupt())?, terminate: signal(SignalKind::terminate())? })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
