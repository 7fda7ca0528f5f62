//! The vxbus daemon: the process Docker starts inside the managed plugin.
//!
//! It reads its settings, starts logging, checks its privileges and serves Docker until a
//! signal stops it. dockerd copies its output into its own log; any error is logged and ends
//! the process with a non-zero status.

use std::process::ExitCode;

use clap::Parser;
use tracing::Level;
use tracing_subscriber::{fmt::writer::MakeWriterExt, EnvFilter};
use vxbus::{daemon, privileges, settings::Settings, VERSION};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = Settings::parse();
    if let Some(command) = settings.command.clone() {
        // The host-side commands: ask the running daemon, print, exit.
        return match vxbus::control::client(&settings.control_socket_path(), command, settings.json)
            .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("vxbus: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(settings.log.as_str()))
        // dockerd logs a managed plugin's stdout at level info and its stderr at level error:
        // warnings and errors go to stderr, the rest to stdout, so dockerd's level matches ours.
        .with_writer(
            std::io::stderr
                .with_max_level(Level::WARN)
                .or_else(std::io::stdout),
        )
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
