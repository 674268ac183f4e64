//! Every refusal the API gives is `{error, detail}` JSON with the right status: errors of the
//! engine, the catalog and the store map here, and extractors whose rejections would be plain
//! text are wrapped.

use crate::catalog::CatalogError;
use crate::engine::EngineError;
use crate::store::StoreError;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::json;

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

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not found", detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad request", detail)
    }

    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!("internal error: {detail:#}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
            detail.to_string(),
        )
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
            EngineError::Store(e) => return ApiError::from_store(e),
            EngineError::Internal(e) => return ApiError::internal(format!("{e:#}")),
        };
        ApiError::new(status, error, e.to_string())
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> ApiError {
        match e {
            CatalogError::NotFound(m) => ApiError::not_found(m),
            CatalogError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            CatalogError::Invalid(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid workflow", m)
            }
            CatalogError::Store(e) => ApiError::from_store(&e),
            CatalogError::Internal(m) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error", m)
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::from_store(&e)
    }
}

impl ApiError {
    fn from_store(e: &StoreError) -> ApiError {
        match e {
            StoreError::BadCursor(_) => ApiError::bad_request(e.to_string()),
            // The change did not become durable, so it was not made: try again later.
            StoreError::Backend(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable",
                format!("{e}; nothing was changed"),
            ),
            StoreError::Corrupt { .. } => ApiError::internal(e),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A JSON body whose rejections are JSON errors too.
pub struct Body<T>(pub T);

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
pub struct Params<T>(pub T);

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

/// Path parameters whose rejections (not UTF-8, missing…) are JSON errors too.
pub struct PathParams<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParams<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(PathParams(value)),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                "bad request",
                rejection.body_text(),
            )),
        }
    }
}

/// A raw body (for optional JSON), whose rejections (too large…) are JSON errors too.
pub struct RawBody(pub axum::body::Bytes);

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
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}
