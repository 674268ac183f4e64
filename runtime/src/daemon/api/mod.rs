//! The REST API under `/api/v1`: JSON in and out, bearer-token auth, `{error, detail}` errors.
//! One file per resource; this one builds the router and keeps its route table, in which every
//! route declares who may call it, and puts a gate that checks it in front of every handler.

mod errors;
mod events;
mod files;
mod metrics;
mod plugins;
mod runs;
mod workflows;

use super::auth::{self, ConfigDirectory};
use crate::catalog::Catalog;
use crate::engine::Engine;
use crate::identity::{Actor, Role};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodRouter, delete, get, post, put};
use axum::{Json, Router};
use errors::{ApiError, ApiResult};
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

/// Who may call a route: declared where the route is registered, checked by its gate before
/// the handler runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token: the liveness probe.
    Public,
    /// A token whose user has this role or a higher one.
    Role(Role),
    /// Any token at the gate; then the step's own rule, which the engine applies as only it
    /// knows the step: an approval gate's `requires_approval_from` list (whatever the role), or
    /// an operator for a plain wait.
    Approver,
}

impl From<Role> for Access {
    fn from(role: Role) -> Access {
        Access::Role(role)
    }
}

impl Access {
    /// How the route table and `x-role` in docs/openapi.yaml name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Role(role) => role.as_str(),
            Access::Approver => "approver",
        }
    }
}

/// One route the API serves: its method, its path template and who may call it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiRoute {
    pub method: &'static str,
    pub path: String,
    pub access: Access,
}

/// The routes with their handlers, in the order they are registered.
struct Routes(Vec<(ApiRoute, MethodRouter<AppState>)>);

impl Routes {
    fn add(
        mut self,
        method: &'static str,
        path: &str,
        access: impl Into<Access>,
        handler: MethodRouter<AppState>,
    ) -> Routes {
        let route = ApiRoute {
            method,
            path: path.to_string(),
            access: access.into(),
        };
        self.0.push((route, handler));
        self
    }

    fn get<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &str,
        access: impl Into<Access>,
        handler: H,
    ) -> Routes {
        self.add("GET", path, access, get(handler))
    }

    fn post<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &str,
        access: impl Into<Access>,
        handler: H,
    ) -> Routes {
        self.add("POST", path, access, post(handler))
    }

    fn put<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &str,
        access: impl Into<Access>,
        handler: H,
    ) -> Routes {
        self.add("PUT", path, access, put(handler))
    }

    fn delete<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &str,
        access: impl Into<Access>,
        handler: H,
    ) -> Routes {
        self.add("DELETE", path, access, delete(handler))
    }
}

/// Every route: viewers read, operators act on runs, editors change projects and workflows,
/// admins install plugins.
fn routes() -> Routes {
    use Role::{Admin, Editor, Operator, Viewer};
    const WORKFLOW: &str = "/api/v1/projects/{p}/workflows/{w}";
    Routes(Vec::new())
        .get("/healthz", Access::Public, || async {
            Json(json!({"status": "ok"}))
        })
        .get("/metrics", Viewer, metrics::metrics)
        .put("/api/v1/files/{sha256}", Editor, files::put)
        .post("/api/v1/apply", Editor, workflows::apply)
        .get("/api/v1/workflows", Viewer, workflows::list)
        .get(WORKFLOW, Viewer, workflows::show)
        .put(WORKFLOW, Editor, workflows::edit)
        .delete(WORKFLOW, Editor, workflows::delete)
        // validate, publish, duplicate, pause, resume: authoring and workflow state, all an
        // editor's (validate runs the plugins' checks on the draft, which a viewer has no use for).
        .post(&format!("{WORKFLOW}/{{action}}"), Editor, workflows::action)
        .get(
            &format!("{WORKFLOW}/{{action}}"),
            Viewer,
            workflows::history,
        )
        .post("/api/v1/runs", Operator, runs::start)
        .get("/api/v1/runs", Viewer, runs::list)
        .get("/api/v1/runs/{id}", Viewer, runs::show)
        .get("/api/v1/runs/{id}/logs", Viewer, runs::logs)
        .get("/api/v1/runs/{id}/events", Viewer, events::run_events)
        .post("/api/v1/runs/{id}/cancel", Operator, runs::cancel)
        .post("/api/v1/runs/{id}/retry", Operator, runs::retry)
        .post(
            "/api/v1/runs/{id}/steps/{step}/{decision}",
            Access::Approver,
            runs::decide,
        )
        .get("/api/v1/plugins", Viewer, plugins::list)
        .post("/api/v1/plugins", Admin, plugins::install)
        .get("/api/v1/plugins/{name}/describe", Viewer, plugins::describe)
}

/// Every route the API serves, with who may call it, as the router has them; the OpenAPI test
/// holds the document to this, and the roles test walks it.
pub fn route_table() -> Vec<ApiRoute> {
    routes().0.into_iter().map(|(route, _)| route).collect()
}

pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for (route, handler) in routes().0 {
        let gate = Gate {
            access: route.access,
            directory: state.directory.clone(),
        };
        // `route_layer`: a method the path does not take still answers 405, token or not.
        let handler = handler.route_layer(middleware::from_fn_with_state(gate, authorize));
        router = router.route(&route.path, handler);
    }
    router
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

/// What one route's gate needs: the access the route declares and the users to check it against.
#[derive(Clone)]
struct Gate {
    access: Access,
    directory: Arc<ConfigDirectory>,
}

/// The gate in front of every handler: authenticates the bearer token, refuses (403) a caller
/// whose role is below the route's, and hands the handler the caller as [`Caller`].
async fn authorize(
    State(gate): State<Gate>,
    mut request: Request,
    next: Next,
) -> ApiResult<Response> {
    let needed = match gate.access {
        Access::Public => return Ok(next.run(request).await),
        Access::Role(role) => role,
        Access::Approver => Role::Viewer,
    };
    let actor = authenticate(&gate.directory, request.headers())?;
    if actor.role < needed {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} {} needs the {needed} role; {} has the {} role",
                request.method(),
                request.uri().path(),
                actor.name,
                actor.role
            ),
        ));
    }
    request.extensions_mut().insert(actor);
    Ok(next.run(request).await)
}

/// The user behind `Authorization: Bearer TOKEN`, or 401.
fn authenticate(directory: &ConfigDirectory, headers: &HeaderMap) -> ApiResult<Actor> {
    let unauthorized = |detail| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("send `Authorization: Bearer TOKEN`"))?;
    let user = directory
        .authenticate(token.trim())
        .ok_or_else(|| unauthorized("the token matches no user"))?;
    Ok(auth::actor(directory, user))
}

/// The caller, as the route's gate authenticated them; for handlers that act in their name.
pub struct Caller(Actor);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| ApiError::internal("a public route asked who its caller is"))
    }
}
