//! Reload (SPEC §6): on SIGHUP, and with `[server] watch = true` when the config or
//! any file it names changes, the config is read and validated in full, certificates,
//! keys and the runtime are rebuilt, then swapped atomically. A config that fails any
//! check is logged with its `file:line:col` errors and the running one keeps serving.
//! Requests in flight keep the runtime they started with.

use crate::app::{App, ReloadOutcome, Runtime};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Successful reloads.
pub static RELOADS_OK: AtomicU64 = AtomicU64::new(0);
/// Failed reloads.
pub static RELOADS_ERROR: AtomicU64 = AtomicU64::new(0);

/// Re-reads the config and swaps it in; on any error the running config stays.
pub fn reload(app: &App) -> Result<(), String> {
    let path = app.runtime.load().config.path.clone();
    let result = try_reload(app, &path);
    let at = crate::telemetry::rfc3339_now();
    match &result {
        Ok(()) => {
            RELOADS_OK.fetch_add(1, Ordering::Relaxed);
            crate::metrics::reloads_ok().increment(1);
            tracing::info!(config = %path.display(), "config reloaded");
        }
        Err(e) => {
            RELOADS_ERROR.fetch_add(1, Ordering::Relaxed);
            crate::metrics::reloads_error().increment(1);
            tracing::error!(config = %path.display(), errors = %e, "reload failed; still serving the previous config");
        }
    }
    if let Ok(mut last) = app.last_reload.lock() {
        *last = Some(ReloadOutcome {
            at,
            result: result.clone(),
        });
    }
    result
}

fn try_reload(app: &App, path: &Path) -> Result<(), String> {
    let cfg = crate::config::provision::load_creating_keys(path).map_err(|e| e.to_string())?;
    let old = app.runtime.load();
    if cfg.server.listen != old.config.server.listen {
        return Err(format!(
            "[server] listen changed ({} -> {}): restart to move the listener",
            old.config.server.listen, cfg.server.listen
        ));
    }
    if cfg.server.tls.is_some() != app.certs.is_some() {
        return Err("adding or removing [server.tls] needs a restart".into());
    }
    if cfg.telemetry != old.config.telemetry {
        tracing::warn!("[telemetry] changes take effect at the next restart");
    }
    let runtime = Runtime::reloaded(cfg, &old).map_err(|e| e.to_string())?;
    if let (Some(certs), Some(tls)) = (&app.certs, &runtime.config.server.tls) {
        certs.reload(tls).map_err(|e| e.to_string())?;
    }
    app.runtime.store(Arc::new(runtime));
    Ok(())
}

/// Reloads on every SIGHUP, until the process ends.
#[cfg(unix)]
pub fn spawn_sighup(app: Arc<App>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let _ = reload(&app);
        }
    });
}

/// With `watch = true`, reloads when the config or a file it names changes.
/// Directories are watched (editors and Kubernetes replace files by rename), and
/// events are filtered by file name; bursts are coalesced.
pub fn spawn_watcher(app: Arc<App>) -> Option<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    if !app.runtime.load().config.server.watch {
        return None;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let files = watched_files(&app);
    let names: Vec<PathBuf> = files.clone();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            let hit = ev.paths.iter().any(|p| {
                names.iter().any(|n| {
                    p == n
                        || (p.file_name() == n.file_name() && p.parent() == n.parent())
                        // Kubernetes ConfigMap/Secret volumes swap a `..data` symlink.
                        || p.file_name().is_some_and(|f| f == "..data")
                })
            });
            if hit {
                let _ = tx.send(());
            }
        }
    })
    .ok()?;
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .map(|d| {
            if d.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                d
            }
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in &dirs {
        if let Err(e) = watcher.watch(d, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %d.display(), error = %e, "cannot watch directory");
        }
    }
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Coalesce a burst of events (write + rename + chmod) into one reload.
            tokio::time::sleep(Duration::from_millis(200)).await;
            while rx.try_recv().is_ok() {}
            let _ = reload(&app);
        }
    });
    Some(watcher)
}

fn watched_files(app: &App) -> Vec<PathBuf> {
    let cfg = &app.runtime.load().config;
    cfg.files
        .iter()
        .map(|f| std::fs::canonicalize(f).unwrap_or_else(|_| f.clone()))
        .chain(cfg.files.iter().cloned())
        .collect()
}
