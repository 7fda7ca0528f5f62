//! The vxbus daemon: the process Docker starts inside the managed plugin.
//!
//! It reads its settings, starts logging, checks its privileges and serves Docker until a
//! signal stops it. Any error is logged (dockerd's log holds the plugin's output) and ends
//! the process with a non-zero status.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use vxbus::{daemon, privileges, settings::Settings, VERSION};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = Settings::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(settings.log.as_str()))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();

    match run(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("vxbus {VERSION} cannot run: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    tracing::info!("vxbus {VERSION} starting (log filter `{}`)", settings.log);
    let shutdown = daemon::shutdown_signal()?;
    privileges::require_net_admin()?;
    daemon::serve(&settings, shutdown).await
}
