//! `/apply` and `/projects/{p}/workflows/{w}`: projects in, workflows listed, shown, edited,
//! validated, published, duplicated, paused, resumed, deleted, and their run history. The work
//! is the catalog service's; these handlers translate HTTP.

use super::errors::{ApiError, ApiResult, Body, Params, PathParams, RawBody, optional_json};
use super::runs::{RunListing, listing};
use super::{AppState, Caller};
use crate::catalog::CatalogError;
use crate::project::{ProjectSource, Projects};
use crate::records::{WorkflowRecord, workflow_path};
use crate::store::RunQuery;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    projects: Vec<ProjectSource>,
}

/// Loads projects and their workflows: projects replace what was there; each workflow file
/// becomes the workflow's draft (published versions are untouched).
pub async fn apply(
    State(st): State<AppState>,
    Body(body): Body<ApplyBody>,
) -> ApiResult<Json<Value>> {
    // The engine's snapshot is swapped while the apply still holds its turn.
    let engine = st.engine.clone();
    let install = move |projects: &Projects| {
        *engine
            .projects
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(projects.clone());
    };
    let applied = st
        .catalog
        .apply(&body.projects, &st.engine.registry, install)
        .await
        .map_err(|e| match e {
            CatalogError::Invalid(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid project", m)
            }
            e => e.into(),
        })?;
    let codes: Vec<String> = applied.projects.projects.keys().cloned().collect();
    Ok(Json(
        json!({"projects": codes, "workflows": applied.workflows}),
    ))
}

pub async fn list(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(Value::Array(
        st.catalog
            .list()
            .await?
            .iter()
            .map(WorkflowRecord::summary)
            .collect(),
    )))
}

pub async fn show(
    State(st): State<AppState>,
    PathParams((p, w)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        st.catalog.get(&workflow_path(&p, &w)).await?.summary(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraftBody {
    yaml: String,
}

/// Edits (or creates) the draft; published versions are untouched.
pub async fn edit(
    State(st): State<AppState>,
    PathParams((p, w)): PathParams<(String, String)>,
    Body(body): Body<DraftBody>,
) -> ApiResult<Json<Value>> {
    let projects = st.engine.projects();
    let record = st.catalog.edit_draft(&projects, &p, &w, body.yaml).await?;
    Ok(Json(record.summary()))
}

pub async fn delete(
    State(st): State<AppState>,
    PathParams((p, w)): PathParams<(String, String)>,
) -> ApiResult<StatusCode> {
    st.catalog.delete(&workflow_path(&p, &w)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    /// For `duplicate`: the new workflow's code.
    code: Option<String>,
}

/// `validate`, `publish`, `duplicate`, `pause`, `resume`.
pub async fn action(
    State(st): State<AppState>,
    Caller(actor): Caller,
    PathParams((p, w, action)): PathParams<(String, String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let path = workflow_path(&p, &w);
    let record = st.catalog.get(&path).await?;
    let body: ActionBody = optional_json(&body)?;
    let engine = &st.engine;
    let updated = match action.as_str() {
        "validate" => {
            let errors = st
                .catalog
                .problems(&path, &record.draft, &engine.registry, &engine.projects())
                .await?;
            return Ok(Json(json!({"valid": errors.is_empty(), "errors": errors})).into_response());
        }
        "publish" => {
            st.catalog
                .publish(&path, &actor, &engine.registry, &engine.projects())
                .await?
        }
        "duplicate" => {
            let code = body
                .code
                .ok_or_else(|| ApiError::bad_request("send {\"code\": \"NEW_CODE\"}"))?;
            let copy = st.catalog.duplicate(&path, &code).await?;
            return Ok((StatusCode::CREATED, Json(copy.summary())).into_response());
        }
        "pause" => st.catalog.set_paused(&path, true).await?,
        "resume" => st.catalog.set_paused(&path, false).await?,
        "history" => {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
                "history is read with GET",
            ));
        }
        other => {
            return Err(ApiError::not_found(format!(
                "no workflow action `{other}`: POST validate, publish, duplicate, pause or resume; GET history"
            )));
        }
    };
    Ok(Json(updated.summary()).into_response())
}

/// The workflow's runs, newest first.
pub async fn history(
    State(st): State<AppState>,
    PathParams((p, w, action)): PathParams<(String, String, String)>,
    uri: Uri,
    Params(page): Params<RunListing>,
) -> ApiResult<Response> {
    if action != "history" {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
            format!("`{action}` takes POST"),
        ));
    }
    let path = st.catalog.get(&workflow_path(&p, &w)).await?.path;
    let query = RunQuery {
        workflow: Some(path),
        ..RunQuery::default()
    };
    listing(
        &st,
        &uri,
        query,
        page.limit,
        page.cursor,
        |limit, cursor| RunListing {
            limit: Some(limit),
            cursor: Some(cursor),
        },
    )
    .await
}
