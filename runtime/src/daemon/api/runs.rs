//! `/runs`: start a run of a published workflow, list runs a page at a time, show one with its
//! step tree and logs, cancel, retry, and decide on a parked step.

use super::errors::{ApiError, ApiResult, Body, Params, PathParams, RawBody, optional_json};
use super::{AppState, Caller};
use crate::engine::DecisionInput;
use crate::records::{RunSpec, RunStatus, Trigger, split_workflow_path, workflow_path};
use crate::store::{MAX_PAGE, RunQuery};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Runs a page holds when the request does not say.
const DEFAULT_PAGE: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    workflow: String,
    #[serde(default, deserialize_with = "whole_number")]
    version: Option<u32>,
    #[serde(default)]
    property_overrides: Map<String, Value>,
}

/// A version as JSON has whole numbers: `3`, or `3.0` as some clients and generators write it
/// (JSON Schema's `integer` includes it).
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(f))
            // Whole and within u32: the conversion is exact.
            .map(|f| f as u64)
    });
    whole
        .and_then(|v| u32::try_from(v).ok())
        .map(Some)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "version: `{n}` is not a whole number from 0 to {}",
                u32::MAX
            ))
        })
}

pub async fn start(
    State(st): State<AppState>,
    Caller(actor): Caller,
    Body(body): Body<StartRun>,
) -> ApiResult<Response> {
    let (p, w) = split_workflow_path(&body.workflow).ok_or_else(|| {
        ApiError::bad_request(format!(
            "`{}` is not /projects/P/workflows/W",
            body.workflow
        ))
    })?;
    let record = st.catalog.get(&workflow_path(p, w)).await?;
    let version = match body.version {
        Some(n) => record
            .version(n)
            .ok_or_else(|| ApiError::not_found(format!("{} has no version {n}", record.path)))?,
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
        projects_sha256: None,
    };
    let run = st.engine.submit(spec).await?;
    Ok((StatusCode::CREATED, Json(json!(run))).into_response())
}

/// `?limit=&cursor=`: one page of a run listing.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunListing {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `GET /runs` filters, and the page.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    workflow: Option<String>,
    /// One state, or several separated by commas.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    /// Child runs of a run (`wfr_…`) or of one of its steps (`wfr_…/2.1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
}

fn statuses(text: &str) -> ApiResult<Vec<RunStatus>> {
    RunStatus::parse_list(text).map_err(ApiError::bad_request)
}

/// A page of runs as a JSON array, newest first. When there is a next page, a
/// `Link: <…>; rel="next"` header points at it: this route again, with the query string
/// `next_query` makes for the new cursor.
pub async fn listing<Q: Serialize>(
    st: &AppState,
    uri: &Uri,
    mut query: RunQuery,
    limit: Option<usize>,
    cursor: Option<String>,
    next_query: impl FnOnce(usize, String) -> Q,
) -> ApiResult<Response> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "`limit` must be between 1 and {MAX_PAGE}"
        )));
    }
    query.limit = limit;
    query.cursor = cursor;
    let found = st.engine.runs.list(&query).await?;
    let body = Json(Value::Array(found.runs.iter().map(|r| json!(r)).collect()));
    let Some(next) = found.next else {
        return Ok(body.into_response());
    };
    let query_string = serde_urlencoded::to_string(next_query(limit, next)).unwrap_or_default();
    let link = format!("<{}?{query_string}>; rel=\"next\"", uri.path());
    Ok(([(header::LINK, link)], body).into_response())
}

/// The next page's path in a `Link` header as [`listing`] writes it (`<PATH>; rel="next"`);
/// clients follow it.
pub fn next_page(link: &str) -> Option<&str> {
    link.strip_prefix('<')?
        .split_once(">; rel=\"next\"")
        .map(|(path, _)| path)
}

pub async fn list(
    State(st): State<AppState>,
    uri: Uri,
    Params(filter): Params<RunFilter>,
) -> ApiResult<Response> {
    let present = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
    let query = RunQuery {
        workflow: present(&filter.workflow),
        statuses: statuses(filter.status.as_deref().unwrap_or_default())?,
        parent: present(&filter.parent),
        ..RunQuery::default()
    };
    let (limit, cursor) = (filter.limit, filter.cursor.clone());
    listing(&st, &uri, query, limit, cursor, |limit, cursor| RunFilter {
        limit: Some(limit),
        cursor: Some(cursor),
        ..filter
    })
    .await
}

pub async fn show(
    State(st): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(st.engine.load(&id).await?)))
}

#[derive(Deserialize)]
pub struct LogFilter {
    step: Option<String>,
}

pub async fn logs(
    State(st): State<AppState>,
    PathParams(id): PathParams<String>,
    Params(filter): Params<LogFilter>,
) -> ApiResult<Json<Value>> {
    let run = st.engine.load(&id).await?;
    let path = match &filter.step {
        None => None,
        Some(step) => Some(
            crate::engine::find_by_path_or_id(&run.steps, step)
                .ok_or_else(|| ApiError::not_found(format!("run `{id}` has no step `{step}`")))?
                .path
                .clone(),
        ),
    };
    let lines: Vec<Value> = st
        .engine
        .runs
        .logs(&id, path.as_deref())
        .await?
        .into_iter()
        .map(|(path, line)| json!({"step": path, "ts": line.ts, "stream": line.stream, "text": line.text}))
        .collect();
    Ok(Json(Value::Array(lines)))
}

pub async fn cancel(
    State(st): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Value>> {
    st.engine.cancel(&id).await?;
    // Cancellation completes asynchronously; report the run once it has settled (briefly).
    for _ in 0..50 {
        let run = st.engine.load(&id).await?;
        if !run.status.is_active() {
            return Ok(Json(json!(run)));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(Json(json!(st.engine.load(&id).await?)))
}

pub async fn retry(
    State(st): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(st.engine.retry(&id).await?)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    comment: Option<String>,
}

pub async fn decide(
    State(st): State<AppState>,
    Caller(actor): Caller,
    PathParams((id, step, decision)): PathParams<(String, String, String)>,
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
