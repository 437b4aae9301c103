//! The GraphQL schema, assembled from the features' queries and mutations,
//! and its HTTP endpoint `/graphql` (GraphiQL on `GET`; JSON or, for
//! uploads, multipart on `POST`). Resolvers are thin: extract, authorize,
//! build a command, execute it with metadata, read the result from a read
//! model.

use std::net::SocketAddr;
use std::sync::Arc;

use async_graphql::http::GraphiQLSource;
use async_graphql::{EmptySubscription, MergedObject, ParseRequestError, Schema, ServerError};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use http_body_util::Limited;
use serde_json::json;

use crate::audit::graphql::AuditQuery;
use crate::graphql::once_per_request::OncePerRequest;
use crate::graphql::uploads::forges_upload;
use crate::http::client::ClientInfo;
use crate::http::hardening::GRAPHIQL_CSP;
use crate::http::{Correlation, Http, correlation};
use crate::identity::graphql::{AccountMutation, AccountQuery, MemberMutation, MemberQuery};
use crate::media::MAX_UPLOAD_BYTES;
use crate::media::graphql::{MediaMutation, MediaQuery};
use crate::publishing::graphql::{
    AnalyticsQuery, CampaignMutation, CampaignQuery, ConnectionMutation, ConnectionQuery,
    PostMutation, PostQuery,
};
use crate::signage::graphql::{SignageMutation, SignageQuery};
use crate::state::AppState;

/// Deepest query accepted.
pub const MAX_DEPTH: usize = 10;
/// Largest query complexity accepted: each field counts 1, and a page of a
/// connection counts its page size times the cost of one item.
pub const MAX_COMPLEXITY: usize = 10_000;

/// Herald's schema type.
pub type HeraldSchema = Schema<Query, Mutation, EmptySubscription>;

/// Root query.
#[derive(MergedObject, Default)]
pub struct Query(
    AccountQuery,
    MemberQuery,
    CampaignQuery,
    ConnectionQuery,
    MediaQuery,
    PostQuery,
    AuditQuery,
    AnalyticsQuery,
    SignageQuery,
);

/// Root mutation.
#[derive(MergedObject, Default)]
pub struct Mutation(
    AccountMutation,
    MemberMutation,
    CampaignMutation,
    ConnectionMutation,
    MediaMutation,
    PostMutation,
    SignageMutation,
);

/// Builds the schema with its limits (depth, complexity, and one sign-up,
/// log-in or invitation acceptance per request).
pub fn schema(state: Arc<AppState>) -> HeraldSchema {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .data(state)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .extension(OncePerRequest)
        .finish()
}

/// State of `/graphql`: the routes' state and the schema.
#[derive(Clone)]
pub struct Endpoint {
    pub http: Http,
    pub schema: HeraldSchema,
}

/// `GET /graphql`: GraphiQL, with a CSP that lets its page load (the
/// hardening layer's API policy would block its scripts).
pub async fn graphiql() -> impl IntoResponse {
    (
        [(header::CONTENT_SECURITY_POLICY, GRAPHIQL_CSP)],
        Html(GraphiQLSource::build().endpoint("/graphql").finish()),
    )
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
    State(endpoint): State<Endpoint>,
    request: Request,
    next: Next,
) -> Response {
    let limit = if is_multipart(request.headers()) {
        MAX_UPLOAD_BYTES
    } else {
        endpoint.http.max_body_bytes
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
    State(endpoint): State<Endpoint>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    request: GraphQLRequest<BadGraphQLBody>,
) -> Response {
    let mut request = request.into_inner();
    // A multipart body may be as large as an upload, but the operation in
    // it gets no more room than a JSON body has.
    if is_multipart(&headers) {
        let variables = serde_json::to_vec(&request.variables).map_or(0, |v| v.len());
        if request.query.len() + variables > endpoint.http.max_body_bytes {
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        }
    }
    if forges_upload(&mut request) {
        let error = ServerError::new(
            "an upload must be sent as a file of a multipart request",
            None,
        );
        return finish(async_graphql::Response::from_errors(vec![error]));
    }
    let auth = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("invalid"));
    let caller = match endpoint.http.state.sessions.authenticate(auth).await {
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
            endpoint.http.trust_proxy,
        ));
    finish(endpoint.schema.execute(request).await)
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
