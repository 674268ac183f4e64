//! `wasmops up`: the daemon. It owns the store, the plugins and the engine, resumes what was
//! running when it stopped, and serves the API.

pub mod api;
pub mod auth;

use crate::config::Config;
use crate::engine::Engine;
use crate::plugins::{Registry, Runtime};
use crate::secrets::Secrets;
use crate::store::Store;
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
    if config.users.is_empty() {
        tracing::warn!("no [[users]] in the config: every API call will be refused (401)");
    }
    let secrets = Secrets::resolve(&config.secrets).map_err(|e| anyhow!(e))?;
    let store = Store::open(&data).context("is another daemon using this data directory?")?;
    let catalog = store.catalog()?;
    let registry = load_registry(&config, &data, opts.plugins.as_deref())?;
    let support = crate::plugins::confine::support();
    if support.complete() {
        tracing::info!(
            "programs started by plugins are confined: {}",
            support.detail
        );
    } else {
        eprintln!(
            "warning: programs started by plugins cannot be fully confined here ({}); [sandbox] unconfined = {:?}",
            support.detail, config.sandbox.unconfined
        );
    }
    let engine = Arc::new(Engine {
        runtime: Arc::new(Runtime::new(Some(data.join("plugin-cache")))?),
        registry: Arc::new(registry),
        store,
        projects: std::sync::RwLock::new(Arc::new(catalog.projects()?)),
        secrets,
        workspaces: data.join("workspaces"),
        unconfined: config.sandbox.unconfined,
        human_steps: true,
        catalog: Some(catalog.clone()),
        live: Default::default(),
    });
    let resumed = engine.recover()?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    eprintln!(
        "wasmops listening on http://{} (data: {}, {} plugins, {} runs resumed)",
        listener.local_addr()?,
        data.display(),
        engine.registry.all().count(),
        resumed
    );
    let state = api::AppState {
        engine,
        catalog,
        directory: Arc::new(auth::ConfigDirectory::new(config.users.clone())),
    };
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

fn load_registry(config: &Config, data: &Path, plugins: Option<&Path>) -> Result<Registry> {
    let mut registry = Registry::builtin(config.plugins.clone()).map_err(|e| anyhow!(e))?;
    let installed = data.join("plugins");
    if installed.is_dir() {
        registry.load_dir(&installed).map_err(|e| anyhow!(e))?;
    }
    if let Some(dir) = plugins {
        registry.load_dir(dir).map_err(|e| anyhow!(e))?;
    }
    Ok(registry)
}
