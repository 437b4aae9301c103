//! The GraphQL schema, assembled from the features' queries and mutations,
//! and its HTTP endpoint `/graphql`: `POST` with a JSON body or, for
//! uploads, `multipart/form-data` (any other body type is what a
//! cross-origin form could send, so it is refused); `GET` runs a query given
//! as `?query=` (never a mutation) and otherwise serves GraphiQL
//! (`graphiql`, its assets embedded). Resolvers are thin: extract,
//! authorize, build a command, execute it with metadata, read the result
//! from a read model.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_graphql::parser::types::OperationType;
use async_graphql::{EmptySubscription, MergedObject, ParseRequestError, Schema, ServerError};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde_json::json;

pub mod graphiql;

use crate::audit::graphql::AuditQuery;
use crate::graphql::guard::InputGuard;
use crate::graphql::once_per_request::OncePerRequest;
use crate::graphql::uploads::forges_upload;
use crate::http::client::ClientInfo;
use crate::http::{Correlation, Http, correlation, error_response};
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

/// Deepest introspection-only query accepted (one whose top-level fields
/// are all `__schema`, `__type` or `__typename`). The standard
/// introspection query of graphql-js and graphql-core nests `ofType` eight
/// or nine levels, 14–15 in all: over [`MAX_DEPTH`], yet it reads only the
/// schema, whatever its depth.
pub const INTROSPECTION_MAX_DEPTH: usize = 20;

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
    build(state, MAX_DEPTH)
}

/// The same schema with the depth limit of introspection-only queries,
/// which [`execute`] sends there.
pub fn introspection_schema(state: Arc<AppState>) -> HeraldSchema {
    build(state, INTROSPECTION_MAX_DEPTH)
}

fn build(state: Arc<AppState>, max_depth: usize) -> HeraldSchema {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .data(state)
        .limit_depth(max_depth)
        .limit_complexity(MAX_COMPLEXITY)
        .extension(OncePerRequest)
        .extension(InputGuard)
        .finish()
}

/// Whether `query` only introspects: every operation's top-level fields
/// (through fragments too) are `__schema`, `__type` or `__typename`, so no
/// resolver of Herald's own runs, however deep it goes.
fn introspects_only(query: &str) -> bool {
    use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

    fn only_meta(document: &ExecutableDocument, set: &SelectionSet, hops: usize) -> bool {
        // Fragments spread in fragments: a cycle is invalid anyway.
        hops < 8
            && set.items.iter().all(|item| match &item.node {
                Selection::Field(field) => field.node.name.node.starts_with("__"),
                Selection::InlineFragment(inline) => {
                    only_meta(document, &inline.node.selection_set.node, hops + 1)
                }
                Selection::FragmentSpread(spread) => document
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .is_some_and(|f| only_meta(document, &f.node.selection_set.node, hops + 1)),
            })
    }

    // Cheap first: most queries do not mention the schema at all.
    if !query.contains("__schema") && !query.contains("__type") {
        return false;
    }
    async_graphql::parser::parse_query(query).is_ok_and(|document| {
        document.operations.iter().all(|(_, operation)| {
            operation.node.ty == OperationType::Query
                && only_meta(&document, &operation.node.selection_set.node, 0)
        })
    })
}

/// State of `/graphql`: the routes' state and the schema, built twice:
/// with the ordinary limits, and with the introspection depth limit.
#[derive(Clone)]
pub struct Endpoint {
    pub http: Http,
    pub schema: HeraldSchema,
    pub introspection: HeraldSchema,
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

/// Whether a `POST /graphql` body type is one Herald reads: JSON, or
/// `multipart/form-data` for uploads. A browser sends `text/plain`, form
/// encodings or no type across origins without asking (no CORS preflight),
/// so accepting them would let any web page run mutations with a
/// visitor's credentials.
fn is_graphql_body(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.eq_ignore_ascii_case("multipart/form-data")
}

/// A body declared at most this far over the limit is read before the 413
/// (see [`LINGER`]); anything larger is refused unread.
const LINGER_BYTES: usize = 64 * 1024;
/// How long reading such a body may take before the 413 goes out anyway.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// What every `/graphql` request passes first: a `POST` body of another
/// type is refused (415), and the body limit: a multipart request (an
/// upload) may be as large as `POST /api/v1/media` takes, any other body
/// `HERALD_MAX_BODY_BYTES`. A body that declares a larger length is refused
/// before any of it is read (unless barely larger, see [`LINGER_BYTES`]);
/// one that turns out larger (chunked) is cut off there and answered 413
/// too, whatever the reader made of the cut.
pub async fn graphql_guard(
    State(endpoint): State<Endpoint>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() == Method::POST && !is_graphql_body(request.headers()) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "send the request as application/json (multipart/form-data for uploads)",
        );
    }
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
    if let Some(declared) = declared.filter(|n| *n > limit as u64) {
        if declared <= (limit + LINGER_BYTES) as u64 {
            // Barely over: read it first (briefly). Closing on a client
            // that is still writing makes it see a broken pipe instead of
            // this answer. A body far over the limit is not read at all.
            let _ = tokio::time::timeout(LINGER, request.into_body().collect()).await;
        }
        // `observe` gives it a JSON body and closes the connection.
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let over = Arc::new(AtomicBool::new(false));
    let body = {
        let over = over.clone();
        move |body| {
            Body::new(Limited::new(body, limit).map_err(move |e| {
                if e.is::<LengthLimitError>() {
                    over.store(true, Ordering::Relaxed);
                }
                e
            }))
        }
    };
    let response = next.run(request.map(body)).await;
    if over.load(Ordering::Relaxed) {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    response
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

/// `GET /graphql`: with a `query` parameter, runs it unless it is a
/// mutation (405: a link or an image tag must not change anything);
/// without, GraphiQL.
pub async fn graphql_get(
    State(endpoint): State<Endpoint>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = uri.query().unwrap_or_default();
    if !query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("query"))
    {
        return graphiql::page();
    }
    let request = match async_graphql::http::parse_query_string(query) {
        Ok(request) => request,
        Err(e) => return BadGraphQLBody(e).into_response(),
    };
    let changes = async_graphql::parser::parse_query(&request.query).is_ok_and(|document| {
        document
            .operations
            .iter()
            .any(|(_, operation)| operation.node.ty != OperationType::Query)
    });
    if changes {
        let mut response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "a mutation must be sent by POST",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    execute(&endpoint, peer, &headers, request).await
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
    execute(&endpoint, peer, &headers, request).await
}

/// Runs a GraphQL request as its caller, with the request's correlation id
/// and client.
async fn execute(
    endpoint: &Endpoint,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: &HeaderMap,
    request: async_graphql::Request,
) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("invalid"));
    let caller = match endpoint.http.state.sessions.authenticate(auth).await {
        Ok(caller) => caller,
        Err(error) => {
            tracing::error!(error = ?error, "session lookup failed");
            return crate::http::rest_error(&error);
        }
    };
    let request = request
        .data(caller)
        .data(Correlation(correlation(headers)))
        .data(ClientInfo::from_request(
            peer.map(|Extension(ConnectInfo(addr))| addr),
            headers,
            endpoint.http.trust_proxy,
        ));
    let schema = if introspects_only(&request.query) {
        &endpoint.introspection
    } else {
        &endpoint.schema
    };
    finish(schema.execute(request).await)
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
    // Nothing answered because something Herald depends on (its database)
    // did not: a 503 with Retry-After, so proxies and clients back off.
    let retry_after = response.data == async_graphql::Value::Null
        && response.errors.iter().any(|e| {
            e.extensions
                .as_ref()
                .and_then(|x| x.get("code"))
                .is_some_and(|c| *c == async_graphql::Value::from("UNAVAILABLE"))
        });
    let mut http = GraphQLResponse::from(response).into_response();
    if retry_after {
        *http.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        http.headers_mut().insert(
            header::RETRY_AFTER,
            axum::http::HeaderValue::from(crate::error::DATABASE_RETRY_AFTER_SECS),
        );
    }
    http
}
