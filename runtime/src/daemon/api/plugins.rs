//! `/plugins`: the plugins loaded (built-in and installed), and installing one into the
//! running daemon.

use super::AppState;
use super::errors::{ApiError, ApiResult, Body, PathParams};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

pub async fn list(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    let list: Vec<Value> = st
        .engine
        .registry
        .all()
        .iter()
        .map(|p| p.summary())
        .collect();
    Ok(Json(Value::Array(list)))
}

/// A step plugin's `with:` schema and outputs, for editors that complete `with:` keys.
pub async fn describe(
    State(st): State<AppState>,
    PathParams(name): PathParams<String>,
) -> ApiResult<Json<Value>> {
    use crate::plugins::DescribeError;
    match st.engine.registry.describe(&name).await {
        Ok(info) => Ok(Json(info)),
        Err(DescribeError::NotFound(detail)) => Err(ApiError::not_found(detail)),
        Err(DescribeError::Failed(detail)) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "plugin failed",
            detail,
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallBody {
    /// A plugin folder (plugin.toml and its component) on the daemon's machine.
    dir: std::path::PathBuf,
}

/// Installs a plugin from a directory on the daemon's host; runs started afterwards can use it.
pub async fn install(
    State(st): State<AppState>,
    Body(body): Body<InstallBody>,
) -> ApiResult<Response> {
    let engine = st.engine.clone();
    let data = st.data.clone();
    let installed = tokio::task::spawn_blocking(move || engine.registry.install(&body.dir, &data))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                format!("the install task failed: {e}"),
            )
        })?
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid plugin", e))?;
    Ok((StatusCode::CREATED, Json(installed.summary())).into_response())
}
