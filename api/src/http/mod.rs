//! What every HTTP route shares: the routes' state, the request's
//! correlation id, REST error bodies and the REST caller, health, readiness
//! and Prometheus metrics, and the middleware every request passes (latency
//! metrics, JSON bodies for bare error statuses). `client` reads the
//! caller's address and user agent; `hardening` sets security headers and
//! CORS; `server` accepts connections and closes the ones a client holds
//! without using them. The GraphQL endpoint is `crate::schema`.

pub mod client;
pub mod hardening;
pub mod idempotency;
pub mod server;

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::identity::auth::{Caller, Principal};
use crate::state::AppState;

/// Readiness fails when a projection is this many events behind.
pub const MAX_READY_LAG: i64 = 10_000;

/// `/ready` answers within this even while the database does not.
pub const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// State of the HTTP routes.
#[derive(Clone)]
pub struct Http {
    pub state: Arc<AppState>,
    pub metrics: PrometheusHandle,
    /// Whether `X-Forwarded-For` names the client (`HERALD_TRUST_PROXY`).
    pub trust_proxy: bool,
    /// Largest request body (`HERALD_MAX_BODY_BYTES`); for a GraphQL upload,
    /// largest operation (query and variables).
    pub max_body_bytes: usize,
    /// `POST /display/v1/register` per IP and minute.
    pub display_registrations_per_minute: u32,
}

/// The request's correlation id (its `x-request-id` when that is a UUID),
/// carried into every event's metadata.
#[derive(Debug, Clone, Copy)]
pub struct Correlation(pub Uuid);

/// The request's correlation id: its `x-request-id` when that is a UUID.
pub fn correlation(headers: &HeaderMap) -> Uuid {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok())
        .unwrap_or_else(Uuid::now_v7)
}

/// `GET /health`: the process is up.
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /ready`: the database answers, the read models have caught up on
/// the log as it was when the process started, and they are within lag.
/// Answers within [`READY_TIMEOUT`] even when the database does not.
pub async fn ready(State(http): State<Http>) -> Response {
    let unavailable = |database: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "database": database})),
        )
            .into_response()
    };
    let state = &http.state;
    let checks = async {
        state.db.ping().await?;
        let caught_up = state.projectors.caught_up().await?;
        let lag = state.projectors.lag().await?;
        Ok::<_, projections::StoreError>((caught_up, lag))
    };
    let (status, body) = match tokio::time::timeout(READY_TIMEOUT, checks).await {
        Err(_) => return unavailable("timeout"),
        Ok(Err(_)) => return unavailable("unreachable"),
        Ok(Ok((false, lag))) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "catching up", "database": "ok", "projectorLag": lag}),
        ),
        Ok(Ok((true, lag))) if lag > MAX_READY_LAG => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "lagging", "database": "ok", "projectorLag": lag}),
        ),
        Ok(Ok((true, lag))) => (
            StatusCode::OK,
            json!({"status": "ready", "database": "ok", "projectorLag": lag}),
        ),
    };
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(http): State<Http>) -> Response {
    let _ = http.state.projectors.lag().await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        http.metrics.render(),
    )
        .into_response()
}

/// Records request latency per route, and turns bare error statuses from
/// the body-limit and routing layers into JSON bodies.
pub async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    let status = response.status();
    metrics::histogram!("herald_http_request_duration_seconds", "method" => method, "route" => route, "status" => status.as_str().to_string())
        .record(started.elapsed().as_secs_f64());
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let message = status.canonical_reason().unwrap_or("error");
        let mut response = error_response(status, status_code(status), message);
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The unread body is still on the wire: close the connection, and
            // say so, so that a client does not reuse it for its next request
            // (it would find it shut: `IncompleteMessage`).
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        return response;
    }
    response
}

/// The error code of a bare HTTP error status (one no handler explained).
pub fn status_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::URI_TOO_LONG => "URI_TOO_LONG",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        s if s.is_server_error() => "INTERNAL",
        _ => "BAD_REQUEST",
    }
}

/// The JSON error body every REST error has: `{"error": {code, message}}`.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// A JSON error body for the REST routes: `{"error": {code, message, field}}`.
pub fn rest_error(e: &ApiError) -> Response {
    let status = e.status();
    let mut body = json!({"code": e.code(), "message": e.message()});
    if let ApiError::Validation { field, .. } = e {
        body["field"] = json!(field);
    }
    let retry_after = e.retry_after();
    if let Some(seconds) = retry_after {
        body["retryAfter"] = json!(seconds);
    }
    let mut response = (status, Json(json!({ "error": body }))).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The caller of a REST route, allowed to perform `action`; otherwise the
/// error response to send (401, 403 or 503).
pub async fn rest_principal(
    http: &Http,
    headers: &HeaderMap,
    action: domain::access::Action,
) -> Result<Principal, Response> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("invalid"));
    let principal = match http.state.sessions.authenticate(auth).await {
        Ok(Caller::Authenticated(p)) => p,
        Ok(Caller::Invalid) => {
            return Err(rest_error(&ApiError::Unauthenticated(
                "the access token is invalid or has expired",
            )));
        }
        Ok(Caller::Anonymous) => {
            return Err(rest_error(&ApiError::Unauthenticated(
                "sign in and send Authorization: Bearer <accessToken>",
            )));
        }
        Err(e) => {
            tracing::error!(error = ?e, "session lookup failed");
            return Err(rest_error(&e));
        }
    };
    if let Err(e) = principal.permit(action) {
        return Err(rest_error(&e));
    }
    Ok(principal)
}
