//! The HTTP surface besides GraphQL: health, readiness, Prometheus metrics,
//! and the middleware every request passes (auth context, request ids,
//! latency metrics, body limits, JSON errors for rejected bodies).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use async_graphql::http::GraphiQLSource;
use async_graphql::{ParseRequestError, ServerError};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use http_body_util::Limited;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use uuid::Uuid;

use crate::client::ClientInfo;
use crate::graphql::{Correlation, HeraldSchema};
use crate::state::AppState;

/// Readiness fails when a projection is this many events behind.
pub const MAX_READY_LAG: i64 = 10_000;

/// State of the HTTP routes.
#[derive(Clone)]
pub struct Http {
    pub state: Arc<AppState>,
    pub schema: HeraldSchema,
    pub metrics: PrometheusHandle,
    /// Whether `X-Forwarded-For` names the client (`HERALD_TRUST_PROXY`).
    pub trust_proxy: bool,
    /// Largest request body (`HERALD_MAX_BODY_BYTES`); for a GraphQL upload,
    /// largest operation (query and variables).
    pub max_body_bytes: usize,
    /// `POST /display/v1/register` per IP and minute.
    pub display_registrations_per_minute: u32,
}

/// `GET /graphql`: GraphiQL, with a CSP that lets its page load (the
/// hardening layer's API policy would block its scripts).
pub async fn graphiql() -> impl IntoResponse {
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            crate::hardening::GRAPHIQL_CSP,
        )],
        Html(GraphiQLSource::build().endpoint("/graphql").finish()),
    )
}

/// The request's correlation id: its `x-request-id` when that is a UUID.
pub fn correlation(headers: &HeaderMap) -> Uuid {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok())
        .unwrap_or_else(Uuid::now_v7)
}

/// Whether a body is `multipart/*`: for `/graphql`, a request by the GraphQL
/// multipart request spec (async-graphql reads any `multipart/*` so).
fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().get(..10))
        .is_some_and(|v| v.eq_ignore_ascii_case("multipart/"))
}

/// The body limit of `/graphql`: a multipart request (an upload) may be as
/// large as `POST /api/v1/media` takes, any other body
/// `HERALD_MAX_BODY_BYTES`. A body that declares a larger length is refused
/// before any of it is read; one that turns out larger is cut off there.
pub async fn graphql_body_limit(
    State(http): State<Http>,
    request: Request,
    next: Next,
) -> Response {
    let limit = if is_multipart(request.headers()) {
        crate::media::MAX_UPLOAD_BYTES
    } else {
        http.max_body_bytes
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        // `observe` gives it a JSON body and closes the connection.
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    next.run(request.map(|body| Body::new(Limited::new(body, limit))))
        .await
}

/// A `/graphql` body that is no GraphQL request: 413 when over the limit,
/// otherwise 400 `BAD_REQUEST` with a message and the part at fault
/// (async-graphql's own rejection answers with the error's debug text).
pub struct BadGraphQLBody(ParseRequestError);

impl From<ParseRequestError> for BadGraphQLBody {
    fn from(e: ParseRequestError) -> Self {
        Self(e)
    }
}

impl IntoResponse for BadGraphQLBody {
    fn into_response(self) -> Response {
        let (field, message) = match self.0 {
            ParseRequestError::PayloadTooLarge => {
                return StatusCode::PAYLOAD_TOO_LARGE.into_response();
            }
            ParseRequestError::InvalidRequest(e) => ("body", format!("not a GraphQL request: {e}")),
            ParseRequestError::MissingOperatorsPart => (
                "operations",
                "a multipart request needs an `operations` part".into(),
            ),
            ParseRequestError::MissingMapPart => {
                ("map", "a multipart request needs a `map` part".into())
            }
            ParseRequestError::InvalidFilesMap(_) => (
                "map",
                "expected a JSON object of file part names to lists of variable paths".into(),
            ),
            ParseRequestError::MissingFiles => (
                "map",
                "names a file part the request does not contain".into(),
            ),
            ParseRequestError::UnsupportedBatch => {
                ("body", "batch requests are not supported".into())
            }
            _ => (
                "body",
                "the body could not be read: malformed, cut off or over the size limit".into(),
            ),
        };
        let error = json!({"code": "BAD_REQUEST", "field": field, "message": message});
        (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response()
    }
}

/// `POST /graphql`, JSON or (for uploads) multipart.
pub async fn graphql(
    State(http): State<Http>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    request: GraphQLRequest<BadGraphQLBody>,
) -> Response {
    let mut request = request.into_inner();
    // A multipart body may be as large as an upload, but the operation in
    // it gets no more room than a JSON body has.
    if is_multipart(&headers) {
        let variables = serde_json::to_vec(&request.variables).map_or(0, |v| v.len());
        if request.query.len() + variables > http.max_body_bytes {
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        }
    }
    if crate::graphql::forges_upload(&mut request) {
        let error = ServerError::new(
            "an upload must be sent as a file of a multipart request",
            None,
        );
        return finish(async_graphql::Response::from_errors(vec![error]));
    }
    let auth = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("invalid"));
    let caller = match http.state.sessions.authenticate(auth).await {
        Ok(caller) => caller,
        Err(error) => {
            tracing::error!(error = ?error, "session lookup failed");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": {"code": "INTERNAL", "message": "try again"}})),
            )
                .into_response();
        }
    };
    let request = request
        .data(caller)
        .data(Correlation(correlation(&headers)))
        .data(ClientInfo::from_request(
            peer.map(|Extension(ConnectInfo(addr))| addr),
            &headers,
            http.trust_proxy,
        ));
    finish(http.schema.execute(request).await)
}

/// Sends a GraphQL response. Resolver errors carry their code; what
/// async-graphql rejects before any resolver runs (syntax, unknown fields,
/// bad scalars, depth and cost limits) is the request's fault.
fn finish(mut response: async_graphql::Response) -> Response {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "VALIDATION");
        }
    }
    GraphQLResponse::from(response).into_response()
}

/// `GET /health`: the process is up.
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /ready`: the database answers and projections are within lag.
pub async fn ready(State(http): State<Http>) -> Response {
    let db = http.state.db.ping().await;
    let lag = http.state.projectors.lag().await;
    match (db, lag) {
        (Ok(()), Ok(lag)) if lag <= MAX_READY_LAG => {
            Json(json!({"status": "ready", "database": "ok", "projectorLag": lag})).into_response()
        }
        (Ok(()), Ok(lag)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "lagging", "database": "ok", "projectorLag": lag})),
        )
            .into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "database": "unreachable"})),
        )
            .into_response(),
    }
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
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
            StatusCode::NOT_FOUND => "NOT_FOUND",
            StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
            s if s.is_server_error() => "INTERNAL",
            _ => "BAD_REQUEST",
        };
        let message = status.canonical_reason().unwrap_or("error");
        let mut response = (
            status,
            Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response();
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

/// A JSON error body for the REST routes: `{"error": {code, message, field}}`.
pub fn rest_error(e: &crate::error::ApiError) -> Response {
    let status = e.status();
    let mut body = json!({"code": e.code(), "message": e.message()});
    if let crate::error::ApiError::Validation { field, .. } = e {
        body["field"] = json!(field);
    }
    (status, Json(json!({ "error": body }))).into_response()
}

/// The caller of a REST route, allowed to perform `action`; otherwise the
/// error response to send (401, 403 or 503).
pub async fn rest_principal(
    http: &Http,
    headers: &HeaderMap,
    action: domain::access::Action,
) -> Result<crate::auth::Principal, Response> {
    use crate::auth::Caller;
    use crate::error::ApiError;
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
