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
    let cli = Cli::parse();
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
        // (still safe: state only ever records batches the destination accepted).
        let cancel = CancellationToken::new();
        let signals = cancel.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            eprintln!("stopping after the current batch (press Ctrl-C again to exit now)");
            signals.cancel();
            shutdown_signal().await;
            std::process::exit(130);
        });
        main(cli, cancel).await
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
