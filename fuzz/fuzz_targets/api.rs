//! Any request to the API, in process, as an admin: the first byte picks the method, the
//! text up to the first newline is the path, the rest is the body. Every answer must be a
//! response (4xx with a JSON error for bad input), never a panic.
#![no_main]

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;
use sha2::{Digest, Sha256};
use wasmops::catalog::Catalog;
use wasmops::config::User;
use wasmops::daemon::api::{AppState, router};
use wasmops::daemon::auth::ConfigDirectory;
use wasmops::engine::{Engine, EngineParts, Mode};
use wasmops::identity::Role;
use wasmops::plugins::Registry;
use wasmops::store::Stores;

const TOKEN: &str = "fuzz-token-0123456789";

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// The daemon's router over a memory store, the built-in plugins and one admin.
fn app() -> &'static axum::Router {
    static APP: OnceLock<axum::Router> = OnceLock::new();
    APP.get_or_init(|| {
        let data = tempfile::tempdir().unwrap().keep();
        let stores = Stores::memory();
        let sandbox = wasmops_sandbox::Sandbox::new(Default::default()).unwrap();
        let registry = Registry::builtin(Arc::new(sandbox)).unwrap();
        let engine = Engine::new(EngineParts {
            registry: Arc::new(registry),
            runs: stores.runs.clone(),
            projects: Default::default(),
            workspaces: data.join("workspaces"),
            mode: Mode::Daemon {
                catalog: stores.catalog.clone(),
            },
        });
        let admin = User {
            name: "fuzz@example.com".into(),
            groups: vec![],
            role: Some(Role::Admin),
            roles: vec![],
            token_sha256: hex::encode(Sha256::digest(TOKEN.as_bytes())),
        };
        router(AppState {
            engine,
            data,
            catalog: Catalog::new(stores.catalog),
            directory: Arc::new(ConfigDirectory::new(vec![admin])),
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&method, rest)) = data.split_first() else {
        return;
    };
    let method = ["GET", "POST", "PUT", "DELETE", "PATCH"][usize::from(method) % 5];
    let (path, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    let Ok(request) = Request::builder()
        .method(method)
        .uri(format!("/api/v1/{}", path.trim_start_matches('/')))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
    else {
        return;
    };
    let response = runtime()
        .block_on(app().clone().oneshot(request))
        .expect("the router is infallible");
    let status = response.status().as_u16();
    assert!(status < 500 || status == 503, "{method} {path}: {status}");
});
