//! `/files/{sha256}`: project files, uploaded by content before the `apply` that names them.

use super::AppState;
use super::errors::{ApiError, ApiResult, PathParams};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

/// Stores one project file under its SHA-256 (the body is the raw contents, at most
/// `project_files::MAX_FILE` bytes): 201 when stored, 400 when the contents do not match.
pub async fn put(
    State(st): State<AppState>,
    PathParams(sha256): PathParams<String>,
    request: Request,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(
            "the path names a file by its SHA-256: 64 hex digits",
        ));
    }
    let limit = crate::project_files::MAX_FILE as usize;
    // Read with this route's own bound, above the API's usual body limit.
    let bytes = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload too large",
                format!("a project file may have at most {limit} bytes"),
            )
        })?;
    st.catalog
        .put_file(&sha256.to_ascii_lowercase(), &bytes)
        .await
        .map_err(|e| match e {
            crate::catalog::CatalogError::Invalid(m) => ApiError::bad_request(m),
            e => e.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"sha256": sha256.to_ascii_lowercase(), "size": bytes.len()})),
    ))
}
