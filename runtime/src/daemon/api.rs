//! The REST API under `/api/v1`: JSON in and out, bearer-token auth, `{error, detail}` errors.

use super::auth::{self, ConfigDirectory};
use crate::catalog::Catalog;
use crate::engine::{DecisionInput, Engine, EngineError};
use crate::identity::Actor;
use crate::project::{ProjectSource, Projects};
use crate::records::RunSpec;
use crate::records::{RunStatus, Trigger};
use crate::records::{Version, WorkflowRecord, split_workflow_path, workflow_path};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Map, Value, json};
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

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/apply", post(apply))
        .route("/workflows", get(list_workflows))
        .route(
            "/projects/{p}/workflows/{w}",
            get(show_workflow)
                .put(edit_workflow)
                .delete(delete_workflow),
        )
        .route(
            "/projects/{p}/workflows/{w}/{action}",
            post(workflow_action).get(workflow_history),
        )
        .route("/runs", post(start_run).get(list_runs))
        .route("/runs/{id}", get(show_run))
        .route("/runs/{id}/logs", get(run_logs))
        .route("/runs/{id}/events", get(run_events))
        .route("/runs/{id}/cancel", post(cancel_run))
        .route("/runs/{id}/retry", post(retry_run))
        .route("/runs/{id}/steps/{step}/{decision}", post(decide))
        .route("/plugins", get(list_plugins).post(install_plugin));
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(metrics))
        .nest("/api/v1", api)
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not found",
                "no such route; the API lives under /api/v1",
            )
        })
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

pub struct ApiError {
    status: StatusCode,
    error: String,
    detail: String,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        error: impl Into<String>,
        detail: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            detail: detail.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.error, "detail": self.detail})),
        )
            .into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        let (status, error) = match &e {
            EngineError::NotFound(_) => (StatusCode::NOT_FOUND, "not found"),
            EngineError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            EngineError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            EngineError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            EngineError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        };
        ApiError::new(status, error, format!("{e:#}"))
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        tracing::error!("internal error: {e:#}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
            format!("{e:#}"),
        )
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// A JSON body whose rejections are JSON errors too.
pub struct Body<T>(T);

impl<T, S> axum::extract::FromRequest<S> for Body<T>
where
    Json<T>: axum::extract::FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                "bad request",
                rejection.body_text(),
            )),
        }
    }
}

/// Query parameters whose rejections are JSON errors too.
pub struct Params<T>(T);

impl<T, S> FromRequestParts<S> for Params<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Params(value)),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                "bad request",
                rejection.body_text(),
            )),
        }
    }
}

/// A raw body (for optional JSON), whose rejections (too large…) are JSON errors too.
pub struct RawBody(axum::body::Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::body::Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(RawBody(bytes)),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                "bad request",
                rejection.body_text(),
            )),
        }
    }
}

/// An optional JSON body: empty means the defaults.
fn optional_json<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad request",
            format!("invalid JSON body: {e}"),
        )
    })
}

/// The caller, from `Authorization: Bearer TOKEN`.
pub struct Caller(Actor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "send `Authorization: Bearer TOKEN`",
                )
            })?;
        let user = state.directory.authenticate(token.trim()).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the token matches no user",
            )
        })?;
        Ok(Caller(auth::actor(state.directory.as_ref(), &user.name)))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyBody {
    projects: Vec<ProjectSource>,
}

/// Loads projects and their workflows: projects replace what was there; each workflow file
/// becomes the workflow's draft (published versions are untouched).
async fn apply(
    State(st): State<AppState>,
    Caller(_): Caller,
    Body(body): Body<ApplyBody>,
) -> ApiResult<Json<Value>> {
    Projects::from_sources(&body.projects).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid project",
            e.to_string(),
        )
    })?;
    let mut workflows = Vec::new();
    for source in &body.projects {
        let code = source.parse().map(|p| p.code).unwrap_or_default();
        st.catalog.put_project(&code, source)?;
        for (wf_code, yaml) in &source.workflows {
            let path = workflow_path(&code, wf_code);
            let now = Utc::now();
            let mut record = st.catalog.get(&path)?.unwrap_or_else(|| WorkflowRecord {
                path: path.clone(),
                project: code.clone(),
                code: wf_code.clone(),
                draft: String::new(),
                versions: Vec::new(),
                paused: false,
                source_dir: source.dir.clone(),
                created_at: now,
                updated_at: now,
            });
            record.draft = yaml.clone();
            record.source_dir = source.dir.clone();
            record.updated_at = now;
            st.catalog.put(&record)?;
            workflows.push(path);
        }
    }
    let all = st.catalog.projects()?;
    let codes: Vec<String> = all.projects.keys().cloned().collect();
    *st.engine.projects.write().unwrap() = Arc::new(all);
    st.engine.store.flush().await?;
    Ok(Json(json!({"projects": codes, "workflows": workflows})))
}

async fn list_workflows(State(st): State<AppState>, Caller(_): Caller) -> ApiResult<Json<Value>> {
    Ok(Json(Value::Array(
        st.catalog
            .list()?
            .iter()
            .map(WorkflowRecord::summary)
            .collect(),
    )))
}

fn load_workflow(st: &AppState, p: &str, w: &str) -> ApiResult<WorkflowRecord> {
    st.catalog.get(&workflow_path(p, w))?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not found",
            format!("no workflow {}", workflow_path(p, w)),
        )
    })
}

async fn show_workflow(
    State(st): State<AppState>,
    Caller(_): Caller,
    Path((p, w)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(load_workflow(&st, &p, &w)?.summary()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DraftBody {
    yaml: String,
}

/// Edits (or creates) the draft; published versions are untouched.
async fn edit_workflow(
    State(st): State<AppState>,
    Caller(_): Caller,
    Path((p, w)): Path<(String, String)>,
    Body(body): Body<DraftBody>,
) -> ApiResult<Json<Value>> {
    let projects = st.engine.projects();
    let Some(project) = projects.projects.get(&p) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not found",
            format!("no project `{p}`; apply it first"),
        ));
    };
    let now = Utc::now();
    let mut record = st
        .catalog
        .get(&workflow_path(&p, &w))?
        .unwrap_or_else(|| WorkflowRecord {
            path: workflow_path(&p, &w),
            project: p.clone(),
            code: w.clone(),
            draft: String::new(),
            versions: Vec::new(),
            paused: false,
            source_dir: project.dir.clone(),
            created_at: now,
            updated_at: now,
        });
    record.draft = body.yaml;
    record.updated_at = now;
    st.catalog.put(&record)?;
    st.engine.store.flush().await?;
    Ok(Json(record.summary()))
}

async fn delete_workflow(
    State(st): State<AppState>,
    Caller(_): Caller,
    Path((p, w)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    if !st.catalog.delete(&workflow_path(&p, &w))? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not found",
            format!("no workflow {}", workflow_path(&p, &w)),
        ));
    }
    st.engine.store.flush().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every problem in a workflow text, as `file:line:column: message` lines.
fn problems(st: &AppState, record: &WorkflowRecord, yaml: &str) -> Vec<String> {
    let file = format!("{}.yaml", record.path);
    match crate::workflow::parse_workflow(&file, yaml) {
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
        Ok(workflow) => {
            let mut found: Vec<String> = crate::validate::check_references(
                &workflow,
                &st.engine.registry,
                &st.engine.projects(),
            )
            .iter()
            .map(ToString::to_string)
            .collect();
            found.extend(st.catalog.check_calls(&record.path, &workflow));
            found
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    /// For `duplicate`: the new workflow's code.
    code: Option<String>,
}

async fn workflow_action(
    State(st): State<AppState>,
    Caller(actor): Caller,
    Path((p, w, action)): Path<(String, String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let mut record = load_workflow(&st, &p, &w)?;
    let body: ActionBody = optional_json(&body)?;
    match action.as_str() {
        "validate" => {
            let errors = problems(&st, &record, &record.draft);
            return Ok(Json(json!({"valid": errors.is_empty(), "errors": errors})).into_response());
        }
        "publish" => {
            let errors = problems(&st, &record, &record.draft);
            if !errors.is_empty() {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid workflow",
                    errors.join("\n"),
                ));
            }
            let number = record.latest().map_or(1, |v| v.number + 1);
            record.versions.push(Version {
                number,
                yaml: record.draft.clone(),
                published_at: Utc::now(),
                published_by: actor.name,
            });
        }
        "duplicate" => {
            let code = body.code.ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad request",
                    "send {\"code\": \"NEW_CODE\"}",
                )
            })?;
            let path = workflow_path(&p, &code);
            if st.catalog.get(&path)?.is_some() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    format!("{path} already exists"),
                ));
            }
            let now = Utc::now();
            let copy = WorkflowRecord {
                path,
                code,
                versions: Vec::new(),
                paused: false,
                created_at: now,
                updated_at: now,
                ..record
            };
            st.catalog.put(&copy)?;
            st.engine.store.flush().await?;
            return Ok((StatusCode::CREATED, Json(copy.summary())).into_response());
        }
        "pause" => record.paused = true,
        "resume" => record.paused = false,
        "history" => {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
                "history is read with GET",
            ));
        }
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not found",
                format!(
                    "no workflow action `{other}`: POST validate, publish, duplicate, pause or resume; GET history"
                ),
            ));
        }
    }
    record.updated_at = Utc::now();
    st.catalog.put(&record)?;
    st.engine.store.flush().await?;
    Ok(Json(record.summary()).into_response())
}

async fn workflow_history(
    State(st): State<AppState>,
    Caller(_): Caller,
    Path((p, w, action)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    if action != "history" {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
            format!("`{action}` takes POST"),
        ));
    }
    let path = load_workflow(&st, &p, &w)?.path;
    let runs: Vec<Value> = st
        .engine
        .store
        .list_runs()?
        .into_iter()
        .filter(|r| r.workflow == path)
        .map(|r| json!(r))
        .collect();
    Ok(Json(Value::Array(runs)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRun {
    workflow: String,
    version: Option<u32>,
    #[serde(default)]
    property_overrides: Map<String, Value>,
}

async fn start_run(
    State(st): State<AppState>,
    Caller(actor): Caller,
    Body(body): Body<StartRun>,
) -> ApiResult<Response> {
    let (p, w) = split_workflow_path(&body.workflow).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad request",
            format!("`{}` is not /projects/P/workflows/W", body.workflow),
        )
    })?;
    let record = load_workflow(&st, p, w)?;
    let version = match body.version {
        Some(n) => record.version(n).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not found",
                format!("{} has no version {n}", record.path),
            )
        })?,
        None => record.latest().ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{} is a draft: publish it before running it", record.path),
            )
        })?,
    };
    let spec = RunSpec {
        workflow_yaml: version.yaml.clone(),
        file: format!("{}@v{}", record.path, version.number),
        label: record.path.clone(),
        version: Some(version.number),
        source_dir: record.source_dir.clone(),
        overrides: body.property_overrides,
        trigger: Trigger::manual(Some(actor.name)),
        from_file: false,
    };
    let run = st.engine.submit(spec).await?;
    Ok((StatusCode::CREATED, Json(json!(run))).into_response())
}

#[derive(Deserialize)]
struct RunFilter {
    workflow: Option<String>,
    status: Option<String>,
}

async fn list_runs(
    State(st): State<AppState>,
    Caller(_): Caller,
    Params(filter): Params<RunFilter>,
) -> ApiResult<Json<Value>> {
    let runs: Vec<Value> = st
        .engine
        .store
        .list_runs()?
        .into_iter()
        .filter(|r| filter.workflow.as_ref().is_none_or(|w| r.workflow == *w))
        .filter(|r| {
            filter
                .status
                .as_ref()
                .is_none_or(|s| format!("{:?}", r.status).eq_ignore_ascii_case(s))
        })
        .map(|r| json!(r))
        .collect();
    Ok(Json(Value::Array(runs)))
}

async fn show_run(
    State(st): State<AppState>,
    Caller(_): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(st.engine.load(&id)?)))
}

#[derive(Deserialize)]
struct LogFilter {
    step: Option<String>,
}

async fn run_logs(
    State(st): State<AppState>,
    Caller(_): Caller,
    Path(id): Path<String>,
    Params(filter): Params<LogFilter>,
) -> ApiResult<Json<Value>> {
    let run = st.engine.load(&id)?;
    let path = match &filter.step {
        None => None,
        Some(step) => Some(
            crate::engine::find_by_path_or_id(&run.steps, step)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        "not found",
                        format!("run `{id}` has no step `{step}`"),
                    )
                })?
                .path
                .clone(),
        ),
    };
    let lines: Vec<Value> = st
        .engine
        .store
        .logs(&id, path.as_deref())?
        .into_iter()
        .map(|(path, line)| json!({"step": path, "ts": line.ts, "stream": line.stream, "text": line.text}))
        .collect();
    Ok(Json(Value::Array(lines)))
}

async fn cancel_run(
    State(st): State<AppState>,
    Caller(_): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    st.engine.cancel(&id).await?;
    // Cancellation completes asynchronously; report the run once it has settled (briefly).
    for _ in 0..50 {
        let run = st.engine.load(&id)?;
        if !matches!(
            run.status,
            RunStatus::Queued | RunStatus::Running | RunStatus::Waiting
        ) {
            return Ok(Json(json!(run)));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(Json(json!(st.engine.load(&id)?)))
}

async fn retry_run(
    State(st): State<AppState>,
    Caller(_): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(st.engine.retry(&id).await?)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    comment: Option<String>,
}

async fn decide(
    State(st): State<AppState>,
    Caller(actor): Caller,
    Path((id, step, decision)): Path<(String, String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let comment = optional_json::<DecisionBody>(&body)?.comment;
    let record = st
        .engine
        .decide(
            &id,
            &step,
            DecisionInput {
                kind: decision,
                comment,
            },
            &actor,
        )
        .await?;
    Ok(Json(json!(record)))
}

async fn list_plugins(State(st): State<AppState>, Caller(_): Caller) -> ApiResult<Json<Value>> {
    let list: Vec<Value> = st
        .engine
        .registry
        .all()
        .iter()
        .map(|p| p.summary())
        .collect();
    Ok(Json(Value::Array(list)))
}

/// Server-sent events: the run as it is now, then every durable change, until it ends.
async fn run_events(
    State(st): State<AppState>,
    Caller(_): Caller,
    Path(id): Path<String>,
) -> ApiResult<
    axum::response::sse::Sse<
        impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    // Subscribe before reading the snapshot, so no change falls between the two.
    let mut feed = st.engine.live.events.subscribe();
    let snapshot = st.engine.load(&id)?;
    let stream = async_stream_events(move |tx| async move {
        let finished =
            |status: &Value| matches!(status.as_str(), Some("succeeded" | "failed" | "cancelled"));
        let first = json!(snapshot);
        let done = finished(&first["status"]);
        if tx
            .send(Event::default().event("snapshot").data(first.to_string()))
            .await
            .is_err()
            || done
        {
            return;
        }
        loop {
            match feed.recv().await {
                Ok(event) if event.run == id => {
                    let end = event.kind == "run" && finished(&event.data["status"]);
                    if tx
                        .send(
                            Event::default()
                                .event(event.kind)
                                .data(event.data.to_string()),
                        )
                        .await
                        .is_err()
                        || end
                    {
                        return;
                    }
                }
                Ok(_) => {}
                // Too slow a reader: say so; it can fetch the run again.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let _ = tx
                        .send(Event::default().event("lagged").data(n.to_string()))
                        .await;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// A stream fed by a task through a channel, so the producer can be plain async code.
fn async_stream_events<F, Fut>(
    produce: F,
) -> impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<axum::response::sse::Event>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(produce(tx));
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}

/// Prometheus text format: runs by status, queue depth, step durations, plugin instantiations.
async fn metrics(State(st): State<AppState>, Caller(_): Caller) -> ApiResult<Response> {
    use std::fmt::Write;
    let runs = st.engine.store.list_runs()?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP wasmops_runs Runs in the store by status.\n# TYPE wasmops_runs gauge"
    );
    for status in [
        "queued",
        "running",
        "waiting",
        "succeeded",
        "failed",
        "cancelled",
    ] {
        let n = runs
            .iter()
            .filter(|r| format!("{:?}", r.status).eq_ignore_ascii_case(status))
            .count();
        let _ = writeln!(out, "wasmops_runs{{status=\"{status}\"}} {n}");
    }
    let queued = runs
        .iter()
        .filter(|r| r.status == RunStatus::Queued)
        .count();
    let _ = writeln!(
        out,
        "# HELP wasmops_queue_depth Runs waiting for a slot of their workflow.\n# TYPE wasmops_queue_depth gauge\nwasmops_queue_depth {queued}"
    );
    let _ = writeln!(
        out,
        "# HELP wasmops_step_duration_seconds Finished steps since start.\n# TYPE wasmops_step_duration_seconds summary"
    );
    for (status, (count, ms)) in st.engine.live.step_totals.lock().unwrap().iter() {
        let _ = writeln!(
            out,
            "wasmops_step_duration_seconds_count{{status=\"{status}\"}} {count}"
        );
        let _ = writeln!(
            out,
            "wasmops_step_duration_seconds_sum{{status=\"{status}\"}} {:.3}",
            *ms as f64 / 1000.0
        );
    }
    let instances = st.engine.sandbox.instantiations();
    let _ = writeln!(
        out,
        "# HELP wasmops_plugin_instantiations_total Plugin instances created since start.\n# TYPE wasmops_plugin_instantiations_total counter\nwasmops_plugin_instantiations_total {instances}"
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstallBody {
    /// A plugin folder (plugin.toml and its component) on the daemon's machine.
    dir: std::path::PathBuf,
}

/// Installs a plugin from a directory on the daemon's host; runs started afterwards can use it.
async fn install_plugin(
    State(st): State<AppState>,
    Caller(_): Caller,
    Body(body): Body<InstallBody>,
) -> ApiResult<Response> {
    let engine = st.engine.clone();
    let data = st.data.clone();
    let installed = tokio::task::spawn_blocking(move || engine.registry.install(&body.dir, &data))
        .await
        .map_err(|e| anyhow::anyhow!("install task failed: {e}"))?
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid plugin", e))?;
    Ok((StatusCode::CREATED, Json(installed.summary())).into_response())
}
