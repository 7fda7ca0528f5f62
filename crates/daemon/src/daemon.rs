//! The daemon's life: prepare its directories, bind the plugin socket, serve Docker until a
//! signal asks it to stop, then finish in-flight calls and remove the socket.
//!
//! Owns: the listening socket file, the directories named in [`Settings`], and shutdown.
//! Must not touch: the protocol's details (the `docker` module) or the kernel (the driver).

use std::{future::Future, io, path::Path, sync::Arc, time::Duration};

use anyhow::{bail, Context, Result};
use nix::{
    errno::Errno,
    fcntl::{Flock, FlockArg},
};
use tokio::{
    net::UnixListener,
    signal::unix::{signal, SignalKind},
    sync::watch,
};

use crate::{
    docker,
    driver::Driver,
    settings::Settings,
    state::StateFile,
    supervisor::{Supervisor, SupervisorConfig},
    VERSION,
};

/// How long in-flight calls may take to finish once shutdown begins. Docker waits longer than
/// this before it kills a plugin it is disabling.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A future that completes on the first SIGTERM or SIGINT. The handlers are installed now, so a
/// signal that arrives during start-up is not lost.
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static> {
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!("received {name}: shutting down");
    })
}

/// Serves Docker's plugin protocol on `settings.socket` until `shutdown` completes.
pub async fn serve(
    settings: &Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    for (what, dir) in [
        ("state directory", &settings.state_dir),
        ("plugin socket directory", &settings.plugin_socket_dir),
    ] {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the {what} {}", dir.display()))?;
    }
    let _state_lock = lock_state_dir(&settings.state_dir)?;
    // The state is reconciled with the kernel before Docker can call: a call after a restart
    // sees the buses as they were left.
    let plugins = Supervisor::new(SupervisorConfig {
        bundled_dir: settings.plugin_dir.clone(),
        state_dir: settings.state_dir.clone(),
        socket_dir: settings.plugin_socket_dir.clone(),
        start_timeout: Duration::from_secs(settings.plugin_start_timeout),
        restart_backoff: crate::supervisor::DEFAULT_RESTART_BACKOFF,
    });
    let driver = Driver::start(StateFile::in_dir(&settings.state_dir), plugins.clone())
        .await
        .context("starting the network driver")?;
    let driver = Arc::new(driver);
    // What other tools change underneath (`cangw -F`) is repaired within seconds.
    driver.keep_healthy(crate::driver::HEAL_PERIOD);
    // Plugins of existing buses start again in the background: Docker must not wait for them.
    tokio::spawn({
        let driver = driver.clone();
        async move { driver.resume_plugins().await }
    });
    let stats = crate::stats::start(driver.clone(), settings.bus_load)?;
    if let Some(address) = settings.metrics.0 {
        crate::stats::metrics::serve(address, stats.clone(), plugins.clone()).await?;
    }
    crate::control::serve(
        &settings.control_socket_path(),
        driver.clone(),
        plugins.clone(),
        stats,
    )?;
    let listener = bind(&settings.socket, "plugin socket", None)?;
    tracing::info!(
        "vxbus {VERSION} ready: serving Docker's network driver protocol on {} \
         (state directory {}, plugin socket directory {}, control socket {})",
        settings.socket.display(),
        settings.state_dir.display(),
        settings.plugin_socket_dir.display(),
        settings.control_socket_path().display(),
    );

    let (stopping_tx, mut stopping_rx) = watch::channel(false);
    let server = axum::serve(listener, docker::router(driver)).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
    });
    let grace_expired = async move {
        let _ = stopping_rx.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let served = tokio::select! {
        served = server => served.context("serving Docker's plugin protocol"),
        () = grace_expired => {
            tracing::warn!("calls still open {SHUTDOWN_GRACE:?} after shutdown began: dropping them");
            Ok(())
        }
    };
    remove_socket(&settings.socket);
    remove_socket(&settings.control_socket_path());
    plugins.shutdown().await;
    served?;
    tracing::info!("vxbus {VERSION} stopped cleanly");
    Ok(())
}

/// Binds the `what` socket at `path`, replacing a stale socket file left by a process that
/// died, but never a file of another kind. With `mode`, the socket has it before it appears at
/// `path` (it is bound at a hidden name beside it, given the mode, then renamed), so nobody the
/// mode excludes can connect in between.
pub(crate) fn bind(path: &Path, what: &str, mode: Option<u32>) -> Result<UnixListener> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the socket directory {}", parent.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) => {
            tracing::info!(
                "removing the stale socket {} left by an earlier run",
                path.display()
            );
            std::fs::remove_file(path)
                .with_context(|| format!("removing the stale socket {}", path.display()))?;
        }
        Ok(_) => bail!(
            "{} exists and is not a socket: refusing to replace it",
            path.display()
        ),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("inspecting {}", path.display())),
    }
    let Some(mode) = mode else {
        return UnixListener::bind(path)
            .with_context(|| format!("binding the {what} {}", path.display()));
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let hidden = path.with_file_name(format!(".{name}.{}", std::process::id()));
    let _ = std::fs::remove_file(&hidden);
    let bound = UnixListener::bind(&hidden)
        .with_context(|| format!("binding the {what} {}", hidden.display()))
        .and_then(|listener| {
            std::fs::set_permissions(&hidden, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .with_context(|| format!("restricting {}", hidden.display()))?;
            std::fs::rename(&hidden, path)
                .with_context(|| format!("moving {} to {}", hidden.display(), path.display()))?;
            Ok(listener)
        });
    if bound.is_err() {
        let _ = std::fs::remove_file(&hidden);
    }
    bound
}

/// Takes the state directory for this daemon, for as long as the lock lives: two daemons on one
/// directory would each reconcile the kernel against the state and undo the other's work.
fn lock_state_dir(dir: &Path) -> Result<Flock<std::fs::File>> {
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| match errno {
        Errno::EWOULDBLOCK => anyhow::anyhow!(
            "another vxbus daemon uses the state directory {}: one directory serves one \
             daemon (give this one its own with VXBUS_STATE_DIR, or the plugin's state.source)",
            dir.display()
        ),
        other => anyhow::anyhow!("locking {}: {other}", path.display()),
    })
}

fn remove_socket(path: &Path) {
    if let Err(err) = std::fs::remove_file(path) {
        if err.kind() != io::ErrorKind::NotFound {
            tracing::warn!("could not remove the socket {}: {err}", path.display());
        }
    }
}
