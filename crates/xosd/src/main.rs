//! `xosd`, the Xtreem node daemon: one per machine. All logic lives in
//! `xtreem-node`; this binary reads arguments, sets up logging, turns
//! SIGTERM/SIGINT into an orderly stop and picks the allocator (jemalloc:
//! see ARCHITECTURE.md).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use xtreem_node::NodeConfig;

/// The Xtreem node daemon.
///
/// Example: xosd --config /etc/xtreem/xosd.toml
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Path of the node's TOML config.
    #[arg(short, long, default_value = "/etc/xtreem/xosd.toml")]
    config: PathBuf,
    /// Check the config and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    // `xosd supervise DIR`: the supervisor of one job unit, started by the
    // daemon and outliving it. Not for people, so not in --help.
    let mut argv = std::env::args_os().skip(1);
    if argv.next().is_some_and(|a| a == "supervise") {
        let Some(dir) = argv.next() else {
            eprintln!("xosd supervise: missing the unit directory");
            return ExitCode::from(64); // EX_USAGE
        };
        xtreem_exec::supervise(std::path::Path::new(&dir));
    }
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("XOSD_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match NodeConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xosd: bad config: {e}");
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    if args.check_config {
        println!("{}: ok", args.config.display());
        return ExitCode::SUCCESS;
    }
    // A descriptor per running unit: 1024 would cap a node near 1,000.
    match xtreem_exec::raise_open_files_limit() {
        Ok((before, after)) if after > before => {
            tracing::info!(before, after, "raised the soft limit on open files");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the soft limit on open files"),
    }
    // One thread means the runtime of this thread: with a separate single
    // worker, every wake-up between it and the main thread crosses threads.
    let mut builder = if config.worker_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(config.worker_threads);
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("xosd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let stop = CancellationToken::new();
        let signals = stop.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::error!("cannot install signal handlers");
                return;
            };
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
            signals.cancel();
        });
        xtreem_node::run(config, stop).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xosd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The runtime's threads free what others allocated; jemalloc does that
/// for less than glibc's malloc (about 9% less daemon CPU per job).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
