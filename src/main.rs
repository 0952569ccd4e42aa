use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

// Rows are many small allocations on several threads; mimalloc's thread-local heaps beat
// glibc's arenas by a wide margin there (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = sluice::cli::Cli::parse();
    // A daemon logs each run; one-off commands print their own report and log only problems.
    let daemon = matches!(cli.command, sluice::cli::Command::Daemon);
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
        sluice::cli::LogFormat::Json => logs.json().init(),
        sluice::cli::LogFormat::Text => logs.init(),
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(sluice::cli::EXIT_SYNC_FAILED);
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
        sluice::cli::main(cli, cancel).await
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
