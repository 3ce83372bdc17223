//! One error type for every handler: each variant maps to exactly one status and a JSON body
//! `{"error": "<code>", "message": "<for people>"}`. Internal causes are logged, never sent.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::db::DbError;
use crate::jobs::EnqueueError;

/// The body of every error answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A machine-readable code, e.g. `invalid_range`, `unauthorized`, `database_busy`.
    #[schema(example = "invalid_range")]
    pub error: String,
    /// A sentence for people; fixed text, never an internal cause.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Any token problem. The body never says which (that would help a forger); the reason goes
    /// to the debug log.
    #[error("invalid or expired token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NothingToSync(String),
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("this endpoint does not take that method")]
    MethodNotAllowed,
    #[error("the job queue is full; retry shortly")]
    QueueFull,
    #[error("the database is unavailable; retry shortly")]
    DatabaseUnavailable(String),
    #[error("the database is busy; retry shortly")]
    DatabaseBusy(String),
    #[error("too many manual syncs for this seller; retry after {retry_after_secs}s")]
    RateLimited { retry_after_secs: u64 },
    #[error(
        "this seller already has {active} manual sync jobs queued or running and may have at \
         most {limit} (jobs.max_active_per_seller); retry when some have finished"
    )]
    TooManyActiveJobs { active: i64, limit: usize },
    #[error("something went wrong on our side")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// The `error` code of the body (and of `/health`'s 503s).
    pub(crate) fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::BadRequest { code, .. } => code,
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::NotFound(_) => "not_found",
            ApiError::NothingToSync(_) => "nothing_to_sync",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::QueueFull => "queue_full",
            ApiError::DatabaseUnavailable(_) => "database_unavailable",
            ApiError::DatabaseBusy(_) => "database_busy",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::TooManyActiveJobs { .. } => "too_many_active_jobs",
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// Seconds a client should wait before retrying, for the answers that have a `Retry-After`
    /// (every route's and `/health`'s).
    pub(crate) fn retry_after(&self) -> Option<String> {
        match self {
            ApiError::QueueFull | ApiError::DatabaseUnavailable(_) => {
                Some(RETRY_AFTER_SECS.to_string())
            }
            ApiError::DatabaseBusy(_) => Some(BUSY_RETRY_AFTER_SECS.to_string()),
            ApiError::RateLimited { retry_after_secs } => Some(retry_after_secs.to_string()),
            ApiError::TooManyActiveJobs { .. } => Some(ACTIVE_JOBS_RETRY_AFTER_SECS.to_string()),
            _ => None,
        }
    }
}

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "5";
/// A busy database clears in moments (a lock released, a connection returned).
const BUSY_RETRY_AFTER_SECS: &str = "1";
/// A seller at `jobs.max_active_per_seller` waits for its own jobs to finish: a few jobs' time.
const ACTIVE_JOBS_RETRY_AFTER_SECS: &str = "30";

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::NothingToSync(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::QueueFull | ApiError::DatabaseUnavailable(_) | ApiError::DatabaseBusy(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::RateLimited { .. } | ApiError::TooManyActiveJobs { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => tracing::error!(error = %cause, "request failed"),
            ApiError::DatabaseUnavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable")
            }
            ApiError::DatabaseBusy(cause) => tracing::warn!(error = %cause, "database busy"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthorized) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Some(wait) = self.retry_after() {
            response.insert_header((header::RETRY_AFTER, wait));
        }
        let mut response =
            response.json(json!({ "error": self.code(), "message": self.to_string() }));
        response.extensions_mut().insert(ErrorCode(self.code()));
        response
    }
}

/// The `error` code of an answer, left on the response for the metrics middleware, which counts
/// answers by code (`ads_stats_http_errors_total`) without reading bodies.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(cause) => ApiError::DatabaseUnavailable(cause),
            DbError::Busy(cause) => ApiError::DatabaseBusy(cause),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        ApiError::from(DbError::from(e))
    }
}

impl From<EnqueueError> for ApiError {
    fn from(e: EnqueueError) -> Self {
        match e {
            EnqueueError::AtCapacity => ApiError::QueueFull,
            EnqueueError::TooManyActiveJobs { active, limit } => {
                ApiError::TooManyActiveJobs { active, limit }
            }
            EnqueueError::Db(db) => db.into(),
        }
    }
}

/// Query strings that do not fit a route's parameters (unknown or repeated names) answer 400
/// `invalid_query` in the usual shape instead of actix's plain-text default.
pub fn query_error(
    error: actix_web::error::QueryPayloadError,
    _: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::bad_request(
        "invalid_query",
        format!("the query string is not accepted: {error}"),
    )
    .into()
}

pub async fn not_found() -> HttpResponse {
    ApiError::NotFound("no such endpoint".into()).error_response()
}

/// 405 with the `Allow` header RFC 9110 asks for, naming what the resource does take.
pub fn method_not_allowed(allow: String) -> actix_web::Route {
    actix_web::web::to(move || {
        let allow = allow.clone();
        async move {
            let mut response = ApiError::MethodNotAllowed.error_response();
            if let Ok(value) = header::HeaderValue::from_str(&allow) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            response
        }
    })
}
