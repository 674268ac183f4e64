//! `wasmops up`: the daemon. It owns the store, the plugins and the engine, resumes what was
//! running when it stopped, and serves the API.

pub mod api;
pub mod auth;
mod serve;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::engine::{Engine, EngineParts, Mode};
use crate::plugins::Registry;
use crate::store::{StoreConfig, Stores};
use anyhow::{Context, Result, anyhow};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct UpOptions {
    pub listen: Option<String>,
    pub data: Option<PathBuf>,
    pub plugins: Option<PathBuf>,
    pub config: Option<PathBuf>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8480";

pub async fn up(opts: UpOptions) -> Result<()> {
    let config = match &opts.config {
        Some(path) => Config::load(path).map_err(|e| anyhow!(e))?,
        None => Config::default(),
    };
    // Command-line flags win over the config file, which wins over the defaults.
    let listen = opts
        .listen
        .or(config.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let data = opts
        .data
        .or(config.data.clone())
        .unwrap_or_else(|| PathBuf::from("./wasmops-data"));
    let mut users = config.users.clone();
    if users.is_empty() {
        users.push(local_admin(&data)?);
    }
    // A user without a role can only read; say so, as an entry written before roles existed
    // (or a forgotten line) would otherwise show up only as 403s.
    for user in users.iter().filter(|u| !u.has_role()) {
        eprintln!(
            "warning: [[users]] {} has no role, so it is a viewer (read-only); set role = \"operator\", \"editor\" or \"admin\" to let it do more",
            user.name
        );
    }
    let stores = Stores::open(&config.store, &data)
        .context("is another daemon using this data directory?")?;
    if matches!(config.store, StoreConfig::Memory) {
        eprintln!("warning: [store] type = \"memory\": nothing survives this process");
    }
    // Counted once now, before anything writes, and kept from then on: `/metrics` never waits
    // on a pass over the history.
    stores.runs.count_by_status().await?;
    let catalog = Catalog::new(stores.catalog.clone());
    let secrets = config.secrets().map_err(|e| anyhow!(e))?;
    let sandbox = config
        .sandbox(Some(data.join("plugin-cache")), secrets)
        .map_err(|e| anyhow!(e))?;
    let registry =
        Registry::load(sandbox, Some(&data), opts.plugins.as_deref()).map_err(|e| anyhow!(e))?;
    let support = wasmops_sandbox::confinement_support();
    if support.complete() {
        tracing::info!(
            "programs started by plugins are confined: {}",
            support.summary()
        );
    } else {
        eprintln!(
            "warning: programs started by plugins cannot be fully confined here: {}; \
             [sandbox] unconfined = {:?}",
            support.summary(),
            config.sandbox.unconfined
        );
    }
    let engine = Engine::new(EngineParts {
        registry: Arc::new(registry),
        runs: stores.runs,
        projects: catalog.projects().await?,
        workspaces: data.join("workspaces"),
        mode: Mode::Daemon {
            catalog: stores.catalog,
        },
    });
    // Written by the last daemon when it shut down cleanly (see the end of this function).
    let stopped_cleanly = std::fs::remove_file(data.join(CLEAN_STOP)).is_ok();
    let resumed = engine.recover(stopped_cleanly).await?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    eprintln!(
        "wasmops listening on http://{} (data: {}, {} plugins, {} runs resumed)",
        listener.local_addr()?,
        data.display(),
        engine.registry.all().len(),
        resumed
    );
    let state = api::AppState {
        data: data.clone(),
        engine,
        catalog,
        directory: Arc::new(auth::ConfigDirectory::new(users)),
    };
    let engine = state.engine.clone();
    serve::serve(listener, api::router(state), stop_signal()).await?;
    // Stop accepting work (done), stop every run with its programs, then say the stop was
    // clean: the next start resumes those runs without counting them as interrupted. Every
    // state change was durable when it was made, so there is nothing left to flush.
    eprintln!("wasmops: stopping; runs in progress resume at the next start");
    engine.stop().await;
    std::fs::write(data.join(CLEAN_STOP), "")
        .with_context(|| format!("cannot write {}", data.join(CLEAN_STOP).display()))?;
    Ok(())
}

/// The file a daemon leaves when it stopped its runs itself.
const CLEAN_STOP: &str = "stopped-cleanly";

/// SIGTERM (systemd's stop, `docker stop`, `kill`) or SIGINT (Ctrl-C).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// With no `[[users]]` configured, a local `admin` user with the `admin` role, so a fresh
/// `wasmops up` can do everything: its token is printed once, and only its hash is kept (in the
/// data directory). Delete `admin-token.sha256` to get a new one.
fn local_admin(data: &Path) -> Result<crate::config::User> {
    use rand::Rng;
    use sha2::{Digest, Sha256};
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    let file = data.join("admin-token.sha256");
    let hash = match std::fs::read_to_string(&file) {
        Ok(hash) => {
            eprintln!(
                "no [[users]] configured: the local `admin` token from the first start still works ({})",
                file.display()
            );
            hash.trim().to_string()
        }
        Err(_) => {
            let token: String = rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(40)
                .map(char::from)
                .collect();
            let token = format!("wasmops_{token}");
            let hash = hex::encode(Sha256::digest(token.as_bytes()));
            std::fs::write(&file, &hash)
                .with_context(|| format!("cannot write {}", file.display()))?;
            eprintln!(
                "no [[users]] configured: created a local `admin` user (role admin); its token, shown only now:\n\n    export WASMOPS_TOKEN={token}\n"
            );
            hash
        }
    };
    Ok(crate::config::User {
        name: "admin".into(),
        groups: vec!["admin".into()],
        role: Some(crate::identity::Role::Admin),
        roles: Vec::new(),
        token_sha256: hash,
    })
}
