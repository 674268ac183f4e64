//! The REST API under `/api/v1`: JSON in and out, bearer-token auth, `{error, detail}` errors.
//! One file per resource; this one builds the router and keeps its route table.

mod errors;
mod events;
mod metrics;
mod plugins;
mod runs;
mod workflows;

use super::auth::{self, ConfigDirectory};
use crate::catalog::Catalog;
use crate::engine::Engine;
use crate::identity::Actor;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::routing::{MethodRouter, delete, get, post, put};
use axum::{Json, Router};
use errors::ApiError;
pub use runs::next_page;
use serde_json::json;
use std::sync::Arc;

/// Requests larger than this are refused with 413.
const MAX_BODY: usize = 4 << 20;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// The daemon's data directory, where installed plugins live.
    pub data: std::path::PathBuf,
    pub catalog: Catalog,
    pub directory: Arc<ConfigDirectory>,
}

/// The router and the (method, path) of every route it serves, recorded as they are added.
struct Routes {
    router: Router<AppState>,
    table: Vec<(&'static str, String)>,
}

impl Routes {
    fn add(mut self, method: &'static str, path: &str, route: MethodRouter<AppState>) -> Routes {
        self.table.push((method, path.to_string()));
        self.router = self.router.route(path, route);
        self
    }

    fn get<H: Handler<T, AppState>, T: 'static>(self, path: &str, handler: H) -> Routes {
        self.add("GET", path, get(handler))
    }

    fn post<H: Handler<T, AppState>, T: 'static>(self, path: &str, handler: H) -> Routes {
        self.add("POST", path, post(handler))
    }

    fn put<H: Handler<T, AppState>, T: 'static>(self, path: &str, handler: H) -> Routes {
        self.add("PUT", path, put(handler))
    }

    fn delete<H: Handler<T, AppState>, T: 'static>(self, path: &str, handler: H) -> Routes {
        self.add("DELETE", path, delete(handler))
    }
}

fn routes() -> Routes {
    const WORKFLOW: &str = "/api/v1/projects/{p}/workflows/{w}";
    Routes {
        router: Router::new(),
        table: Vec::new(),
    }
    .get("/healthz", || async { Json(json!({"status": "ok"})) })
    .get("/metrics", metrics::metrics)
    .post("/api/v1/apply", workflows::apply)
    .get("/api/v1/workflows", workflows::list)
    .get(WORKFLOW, workflows::show)
    .put(WORKFLOW, workflows::edit)
    .delete(WORKFLOW, workflows::delete)
    .post(&format!("{WORKFLOW}/{{action}}"), workflows::action)
    .get(&format!("{WORKFLOW}/{{action}}"), workflows::history)
    .post("/api/v1/runs", runs::start)
    .get("/api/v1/runs", runs::list)
    .get("/api/v1/runs/{id}", runs::show)
    .get("/api/v1/runs/{id}/logs", runs::logs)
    .get("/api/v1/runs/{id}/events", events::run_events)
    .post("/api/v1/runs/{id}/cancel", runs::cancel)
    .post("/api/v1/runs/{id}/retry", runs::retry)
    .post("/api/v1/runs/{id}/steps/{step}/{decision}", runs::decide)
    .get("/api/v1/plugins", plugins::list)
    .post("/api/v1/plugins", plugins::install)
}

/// Every (METHOD, path) the API serves, as the router has them; the OpenAPI test holds the
/// document to this.
pub fn route_table() -> Vec<(String, String)> {
    routes()
        .table
        .into_iter()
        .map(|(method, path)| (method.to_string(), path))
        .collect()
}

pub fn router(state: AppState) -> Router {
    routes()
        .router
        .fallback(|| async { ApiError::not_found("no such route; the API lives under /api/v1") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The caller, from `Authorization: Bearer TOKEN`.
pub struct Caller(Actor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = |detail| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail);
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("send `Authorization: Bearer TOKEN`"))?;
        let user = state
            .directory
            .authenticate(token.trim())
            .ok_or_else(|| unauthorized("the token matches no user"))?;
        Ok(Caller(auth::actor(state.directory.as_ref(), user)))
    }
}
