use std::process::ExitCode;

use clap::Parser;

use berth::cli::{Cli, Command};

// glibc's malloc was about a seventh of Berth's CPU time on the session check (perf); mimalloc's
// per-thread free lists serve the many small, short-lived allocations of a request for less.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    berth::telemetry::init();
    let result = match cli.command {
        None => berth::serve::serve(cli.serve).await,
        Some(Command::Serve(config)) => berth::serve::serve(*config).await,
        Some(Command::Worker(config)) => berth::serve::worker(*config).await,
        Some(Command::Migrate(db)) => berth::serve::migrate_only(db).await,
        Some(Command::Openapi) => berth::serve::print_openapi(),
        Some(Command::Quarantine(action)) => berth::serve::quarantine(action).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
