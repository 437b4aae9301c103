//! The Bluesky (AT Protocol) adapter: handle resolution, app-password sessions,
//! blob upload, posts at caller-chosen record keys, and engagement counts.
//!
//! Exactly-once publishing rests on two facts: every entry of a post has a
//! deterministic record key (`domain::rkey`), and creating a record at a key
//! that already exists fails. So [`Client::ensure_post`] creates, and when the
//! outcome is unknown (a timeout, a reset connection, any 5xx — the PDS answers
//! an existing key with a plain `500 InternalServerError`) reads the key back
//! with `getRecord` to learn whether the post is there. The publisher does the
//! same through [`crate::platform`], with [`Client::create_post`] and
//! [`Client::get_post`].
//!
//! Requests go through atrium's generated XRPC client over a small transport of
//! our own (`Transport`), because atrium drops response headers and a `429`
//! is only useful with the `ratelimit-reset` / `retry-after` it came with. The
//! headers of the responses of one call are kept in a task-local, so concurrent
//! calls on one [`Client`] never see each other's limits.
//!
//! Errors are [`BlueskyError`]s: a kind that tells the caller what to do
//! (retry, wait, ask the user to reconnect, give up) and whether the request
//! may have taken effect. Their messages never hold a password, a token or the
//! session JSON.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use atrium_api::agent::atp_agent::store::AtpSessionStore;
use atrium_api::agent::atp_agent::{AtpSession, CredentialSession};
use atrium_api::agent::{AuthorizationProvider, CloneWithProxy};
use atrium_api::app::bsky::embed::{defs::AspectRatioData, images};
use atrium_api::app::bsky::feed::{get_posts, post};
use atrium_api::app::bsky::richtext::facet;
use atrium_api::client::AtpServiceClient;
use atrium_api::com::atproto::identity::resolve_handle;
use atrium_api::com::atproto::repo::{
    create_record, delete_record, get_record, list_records, strong_ref, upload_blob,
};
use atrium_api::did_doc::DidDocument;
use atrium_api::record::KnownRecord;
use atrium_api::types::string::{self as at, AtIdentifier, Datetime, Did, Handle, Language, Nsid};
use atrium_api::types::{BlobRef, LimitedNonZeroU8, TryIntoUnknown, Union};
use atrium_api::xrpc::error::{Error as XrpcError, XrpcErrorKind};
use atrium_api::xrpc::http::{self, HeaderMap, Method};
use atrium_api::xrpc::types::AuthorizationToken;
use atrium_api::xrpc::{HttpClient, InputDataOrBytes, OutputDataOrBytes, XrpcClient, XrpcRequest};
use atrium_common::store::Store;
use chrono::{DateTime, TimeDelta, Utc};
use domain::text::{Facet, FacetFeature};
use serde::{Deserialize, Serialize};

/// Longest a single HTTP request may take, connection to last byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait after a `429` that named no time.
const DEFAULT_RATE_LIMIT_WAIT: TimeDelta = TimeDelta::seconds(60);
/// The collection of Bluesky posts.
const POST_COLLECTION: &str = "app.bsky.feed.post";
/// The service id of the AppView in `atproto-proxy` headers.
const APPVIEW_SERVICE: &str = "bsky_appview";
/// `app.bsky.feed.getPosts` takes at most this many URIs.
const GET_POSTS_BATCH: usize = 25;

/// A `reqwest` client suited to this module: rustls, the request timeout, a
/// user agent. Callers may pass their own; every request also carries
/// [`REQUEST_TIMEOUT`].
pub fn http_client() -> Result<reqwest::Client, BlueskyError> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| BlueskyError::invalid(format!("could not build the HTTP client: {e}")))
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// What the caller should do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Try again later (5xx, timeouts, connection problems).
    Transient,
    /// Too many requests: wait until `retry_after`.
    RateLimited,
    /// The credentials or the session are no longer valid: the user must
    /// reconnect the account.
    Auth,
    /// The request itself is wrong (bad record, unknown handle, too large):
    /// retrying the same request will not help.
    Invalid,
}

/// A failed Bluesky operation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct BlueskyError {
    pub kind: ErrorKind,
    /// What happened, for logs and users. Never holds a secret.
    pub message: String,
    /// For [`ErrorKind::RateLimited`]: when to try again.
    pub retry_after: Option<DateTime<Utc>>,
    /// the request may have taken effect (timeouts, connection reset after send, 5xx)
    pub ambiguous: bool,
}

impl BlueskyError {
    /// An error of `kind` that is not ambiguous.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
            ambiguous: false,
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    fn transient(message: impl Into<String>, ambiguous: bool) -> Self {
        Self {
            ambiguous,
            ..Self::new(ErrorKind::Transient, message)
        }
    }
}

/// The rate-limit headers of one response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// `ratelimit-remaining`: requests left in the window.
    pub remaining: Option<u64>,
    /// `ratelimit-reset`: when the window resets.
    pub reset: Option<DateTime<Utc>>,
    /// `retry-after`: when the server wants to hear from us again.
    pub retry_after: Option<DateTime<Utc>>,
}

impl RateLimit {
    /// Reads the headers. `ratelimit-reset` is Unix seconds at Bluesky; small
    /// values are taken as seconds from `now`, as the IETF draft has it.
    /// `retry-after` is seconds or an HTTP date.
    pub fn from_headers(headers: &HeaderMap, now: DateTime<Utc>) -> Self {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let seconds_after = |secs: i64| now.checked_add_signed(TimeDelta::try_seconds(secs)?);
        let reset = text("ratelimit-reset")
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|v| {
                if v >= 1_000_000_000 {
                    DateTime::from_timestamp(v, 0)
                } else {
                    seconds_after(v)
                }
            });
        let retry_after = text("retry-after").and_then(|v| match v.parse::<i64>() {
            Ok(secs) => seconds_after(secs),
            Err(_) => DateTime::parse_from_rfc2822(v)
                .ok()
                .map(|d| d.with_timezone(&Utc)),
        });
        Self {
            remaining: text("ratelimit-remaining").and_then(|v| v.parse().ok()),
            reset,
            retry_after,
        }
    }

    /// When to try again after a `429`: `retry-after`, else the reset of the
    /// window, else a minute from now; never earlier than a second from now.
    pub fn retry_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let at = self
            .retry_after
            .or(self.reset)
            .unwrap_or(now + DEFAULT_RATE_LIMIT_WAIT);
        at.max(now + TimeDelta::seconds(1))
    }
}

/// Error codes that mean the session or the credentials are not (or no
/// longer) good.
const AUTH_CODES: &[&str] = &[
    "AuthenticationRequired",
    "AuthMissing",
    "ExpiredToken",
    "InvalidToken",
    "AccountTakedown",
    "AccountDeactivated",
    "AuthFactorTokenRequired",
];

/// Classifies an XRPC error response: `status`, the `error` code and
/// `message` of its body, and the rate-limit headers it came with.
pub fn classify_response(
    op: &str,
    status: u16,
    code: Option<&str>,
    message: Option<&str>,
    limits: &RateLimit,
    now: DateTime<Utc>,
) -> BlueskyError {
    let mut text = format!("{op}: HTTP {status}");
    for part in [code, message].into_iter().flatten() {
        text.push_str(if text.ends_with(|c: char| c.is_ascii_digit()) {
            " "
        } else {
            ": "
        });
        text.push_str(part);
    }
    if status == 429 || code == Some("RateLimitExceeded") {
        return BlueskyError {
            retry_after: Some(limits.retry_at(now)),
            ..BlueskyError::new(ErrorKind::RateLimited, text)
        };
    }
    if status == 401 || status == 403 || code.is_some_and(|c| AUTH_CODES.contains(&c)) {
        return BlueskyError::new(ErrorKind::Auth, text);
    }
    match status {
        408 | 500..=599 => BlueskyError::transient(text, true),
        400..=499 => BlueskyError::invalid(text),
        _ => BlueskyError::transient(text, true),
    }
}

/// Classifies a failure to get any response. A connection that could not be
/// made is not ambiguous: nothing was sent.
fn classify_transport(op: &str, error: &(dyn std::error::Error + 'static)) -> BlueskyError {
    let mut text = format!("{op}: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    match error.downcast_ref::<reqwest::Error>() {
        Some(e) if e.is_connect() => BlueskyError::transient(text, false),
        Some(e) if e.is_builder() => BlueskyError::invalid(text),
        _ => BlueskyError::transient(text, true),
    }
}

/// The `error` code and `message` of an XRPC error body, whether atrium
/// parsed it as one of the method's declared errors or not.
fn error_body<E: Serialize>(kind: Option<&XrpcErrorKind<E>>) -> (Option<String>, Option<String>) {
    match kind {
        Some(XrpcErrorKind::Undefined(body)) => (body.error.clone(), body.message.clone()),
        Some(XrpcErrorKind::Custom(custom)) => {
            // Declared errors serialize as {"error": name, "message": text}.
            let value = serde_json::to_value(custom).unwrap_or_default();
            let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(String::from);
            (field("error"), field("message"))
        }
        None => (None, None),
    }
}

/// Classifies an atrium error.
fn classify<E: fmt::Debug + Serialize>(
    op: &str,
    error: &XrpcError<E>,
    limits: &RateLimit,
    now: DateTime<Utc>,
) -> BlueskyError {
    match error {
        XrpcError::XrpcResponse(response) => {
            let (code, message) = error_body(response.error.as_ref());
            classify_response(
                op,
                response.status.as_u16(),
                code.as_deref(),
                message.as_deref(),
                limits,
                now,
            )
        }
        XrpcError::Authentication(_) => BlueskyError::new(
            ErrorKind::Auth,
            format!("{op}: the server asked to authenticate again"),
        ),
        XrpcError::HttpClient(e) => classify_transport(op, e.as_ref()),
        // Only the shape of the failure: the text could quote the body, and
        // a session's body holds tokens.
        XrpcError::SerdeJson(e) => BlueskyError::transient(
            format!(
                "{op}: unreadable JSON ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
            true,
        ),
        XrpcError::HttpRequest(e) => {
            BlueskyError::invalid(format!("{op}: could not build the request: {e}"))
        }
        XrpcError::SerdeHtmlForm(e) => {
            BlueskyError::invalid(format!("{op}: could not encode the parameters: {e}"))
        }
        XrpcError::UnexpectedResponseType => {
            BlueskyError::transient(format!("{op}: the response was not JSON"), true)
        }
    }
}

/// The XRPC error code of an error response, if it is one.
fn error_code<E: fmt::Debug + Serialize>(error: &XrpcError<E>) -> Option<String> {
    match error {
        XrpcError::XrpcResponse(response) => error_body(response.error.as_ref()).0,
        _ => None,
    }
}

tokio::task_local! {
    /// Rate-limit headers of the latest response within one [`observe`] scope.
    static LIMITS: RefCell<RateLimit>;
}

/// Runs `call`, returning its result and the rate-limit headers of the last
/// response it got (atrium may send more than one request: a refresh, a retry).
async fn observe<T>(call: impl Future<Output = T>) -> (T, RateLimit) {
    LIMITS
        .scope(RefCell::new(RateLimit::default()), async {
            let out = call.await;
            (out, LIMITS.with(|limits| limits.take()))
        })
        .await
}

/// Runs an atrium call and classifies its error.
async fn call<T, E: fmt::Debug + Serialize>(
    op: &str,
    request: impl Future<Output = Result<T, XrpcError<E>>>,
) -> Result<T, BlueskyError> {
    let (result, limits) = observe(request).await;
    result.map_err(|e| classify(op, &e, &limits, Utc::now()))
}

// ---------------------------------------------------------------------------
// Transport and session store
// ---------------------------------------------------------------------------

/// atrium's HTTP and XRPC client over `reqwest`, keeping the rate-limit
/// headers atrium would drop.
#[derive(Clone)]
struct Transport {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
}

impl Transport {
    fn new(http: reqwest::Client, base: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            timeout: REQUEST_TIMEOUT,
        }
    }
}

impl HttpClient for Transport {
    async fn send_http(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, Box<dyn std::error::Error + Send + Sync + 'static>> {
        let (parts, body) = request.into_parts();
        let response = self
            .http
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .timeout(self.timeout)
            .send()
            .await?;
        let limits = RateLimit::from_headers(response.headers(), Utc::now());
        // Outside an `observe` scope there is nobody to tell.
        let _ = LIMITS.try_with(|cell| *cell.borrow_mut() = limits);
        let mut builder = http::Response::builder().status(response.status());
        if let Some(headers) = builder.headers_mut() {
            *headers = response.headers().clone();
        }
        let body = response.bytes().await?;
        Ok(builder.body(body.to_vec())?)
    }
}

impl XrpcClient for Transport {
    fn base_uri(&self) -> String {
        self.base.clone()
    }
}

/// The one session of a [`Client`]. atrium writes the refreshed session here
/// and clears it when a refresh fails; a plain mutex lets [`Client::resume`]
/// fill it without awaiting.
#[derive(Clone, Default)]
struct SessionStore(Arc<Mutex<Option<AtpSession>>>);

impl SessionStore {
    fn current(&self) -> Option<AtpSession> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn put(&self, session: Option<AtpSession>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = session;
    }
}

impl Store<(), AtpSession> for SessionStore {
    type Error = std::convert::Infallible;

    async fn get(&self, _: &()) -> Result<Option<AtpSession>, Self::Error> {
        Ok(self.current())
    }
    async fn set(&self, _: (), session: AtpSession) -> Result<(), Self::Error> {
        self.put(Some(session));
        Ok(())
    }
    async fn del(&self, _: &()) -> Result<(), Self::Error> {
        self.put(None);
        Ok(())
    }
    async fn clear(&self) -> Result<(), Self::Error> {
        self.put(None);
        Ok(())
    }
}

impl AuthorizationProvider for SessionStore {
    async fn authorization_token(&self, is_refresh: bool) -> Option<AuthorizationToken> {
        self.current().map(|session| {
            AuthorizationToken::Bearer(if is_refresh {
                session.data.refresh_jwt
            } else {
                session.data.access_jwt
            })
        })
    }
}

impl AtpSessionStore for SessionStore {}

type Session = CredentialSession<SessionStore, Transport>;

/// A shared handle on the session, so the generated API and direct
/// `send_xrpc` calls use one session (and one refresh).
struct Shared(Arc<Session>);

impl HttpClient for Shared {
    async fn send_http(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, Box<dyn std::error::Error + Send + Sync + 'static>> {
        self.0.send_http(request).await
    }
}

impl XrpcClient for Shared {
    fn base_uri(&self) -> String {
        self.0.base_uri()
    }

    async fn send_xrpc<P, I, O, E>(
        &self,
        request: &XrpcRequest<P, I>,
    ) -> Result<OutputDataOrBytes<O>, XrpcError<E>>
    where
        P: Serialize + Send + Sync,
        I: Serialize + Send + Sync,
        O: serde::de::DeserializeOwned + Send + Sync,
        E: serde::de::DeserializeOwned + Send + Sync + fmt::Debug,
    {
        self.0.send_xrpc(request).await
    }
}

// ---------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------

/// A reference to one version of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrongRef {
    /// `at://did/app.bsky.feed.post/rkey`
    pub uri: String,
    pub cid: String,
}

/// A Bluesky account and where it lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub did: String,
    pub handle: String,
    /// Base URL of the account's PDS, without a trailing slash.
    pub pds: String,
}

/// An image of a post, uploaded before with [`Client::upload_blob`].
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// The blob ref as returned by `upload_blob`.
    pub blob: serde_json::Value,
    pub alt: String,
    /// Pixel size, for the aspect ratio; 0 leaves the ratio out.
    pub width: u32,
    pub height: u32,
}

/// Where a reply goes in its thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The first post of the thread.
    pub root: StrongRef,
    /// The post replied to.
    pub parent: StrongRef,
}

/// One post to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct PostRecord {
    pub text: String,
    /// BCP-47 language tags.
    pub langs: Vec<String>,
    /// The facets found in `text` (mentions by handle). They are not
    /// published as they are: [`Client::resolve_mentions`] turns them into the
    /// [`OutFacet`]s that [`Client::create_post`] takes.
    pub facets: Vec<Facet>,
    pub created_at: DateTime<Utc>,
    pub reply: Option<Reply>,
    /// At most 4.
    pub images: Vec<Image>,
}

/// A facet as published: mentions carry the DID. Offsets are UTF-8 bytes of
/// the text, end exclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutFacet {
    Link {
        start: usize,
        end: usize,
        uri: String,
    },
    Mention {
        start: usize,
        end: usize,
        did: String,
    },
    Tag {
        start: usize,
        end: usize,
        tag: String,
    },
}

/// Where engagement counts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appview {
    /// Through the account's PDS, which forwards to the AppView with this DID
    /// (`atproto-proxy: {did}#bsky_appview`), as Bluesky's own apps do.
    Proxy { did: String },
    /// Straight to an AppView's public API at this URL.
    Direct { url: String },
}

/// Engagement of one post.
pub use crate::platform::Counts;

// ---------------------------------------------------------------------------
// Handle resolution
// ---------------------------------------------------------------------------

/// GETs a JSON document, classifying failures like XRPC calls.
async fn get_json(
    http: &reqwest::Client,
    op: &str,
    url: &str,
    query: &[(&str, &str)],
) -> Result<serde_json::Value, BlueskyError> {
    let response = http
        .get(url)
        .query(query)
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| classify_transport(op, &e))?;
    let status = response.status();
    if !status.is_success() {
        let limits = RateLimit::from_headers(response.headers(), Utc::now());
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let field = |name: &str| body.get(name).and_then(|v| v.as_str());
        return Err(classify_response(
            op,
            status.as_u16(),
            field("error"),
            field("message"),
            &limits,
            Utc::now(),
        ));
    }
    response
        .json()
        .await
        .map_err(|e| classify_transport(op, &e))
}

/// `com.atproto.identity.resolveHandle` at `service`.
async fn resolve_handle_at(
    http: &reqwest::Client,
    service: &str,
    handle: &str,
) -> Result<String, BlueskyError> {
    let url = format!(
        "{}/xrpc/{}",
        service.trim_end_matches('/'),
        resolve_handle::NSID
    );
    let body = get_json(
        http,
        &format!("resolveHandle {handle}"),
        &url,
        &[("handle", handle)],
    )
    .await?;
    match body.get("did").and_then(|v| v.as_str()) {
        Some(did) if Did::new(did.to_string()).is_ok() => Ok(did.to_string()),
        _ => Err(BlueskyError::transient(
            format!("resolveHandle {handle}: the answer held no DID"),
            false,
        )),
    }
}

/// The DID published at `https://{handle}/.well-known/atproto-did`, if any.
async fn well_known_did(http: &reqwest::Client, handle: &str) -> Option<String> {
    let response = http
        .get(format!("https://{handle}/.well-known/atproto-did"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?;
    let text = response.text().await.ok()?;
    let did = text.trim();
    Did::new(did.to_string()).ok().map(|_| did.to_string())
}

/// The PDS endpoint named in the DID document of `did`.
async fn pds_of(http: &reqwest::Client, did: &str, plc_url: &str) -> Result<String, BlueskyError> {
    let url = if did.starts_with("did:plc:") {
        format!("{}/{did}", plc_url.trim_end_matches('/'))
    } else if let Some(host) = did.strip_prefix("did:web:") {
        if host.contains(':') {
            return Err(BlueskyError::invalid(format!(
                "{did}: did:web with a path is not supported"
            )));
        }
        format!(
            "https://{}/.well-known/did.json",
            host.replace("%3A", ":").replace("%3a", ":")
        )
    } else {
        return Err(BlueskyError::invalid(format!(
            "{did}: unsupported DID method"
        )));
    };
    let op = format!("DID document of {did}");
    let document: DidDocument = serde_json::from_value(get_json(http, &op, &url, &[]).await?)
        .map_err(|e| BlueskyError::invalid(format!("{op}: not a DID document: {e}")))?;
    document
        .get_pds_endpoint()
        .map(|pds| pds.trim_end_matches('/').to_string())
        .ok_or_else(|| BlueskyError::invalid(format!("{op}: names no #atproto_pds service")))
}

/// Resolves a handle to DID + PDS endpoint. With `service_url`: ask that server's
/// `com.atproto.identity.resolveHandle` and use it as the PDS. Without: try
/// `https://{handle}/.well-known/atproto-did`, then `resolveHandle` at
/// `default_service` (config, e.g. `https://bsky.social`), then find the PDS in
/// the DID document (did:plc via `{plc_url}/{did}`, e.g. `https://plc.directory`;
/// did:web via `https://{host}/.well-known/did.json`; service id `#atproto_pds`).
///
/// The handle may come with a leading `@` and in any case. The DID document's
/// `alsoKnownAs` is not checked: the account proves itself by logging in.
pub async fn resolve(
    http: &reqwest::Client,
    handle: &str,
    service_url: Option<&str>,
    default_service: &str,
    plc_url: &str,
) -> Result<Account, BlueskyError> {
    let handle = handle.trim().trim_start_matches('@').to_ascii_lowercase();
    Handle::new(handle.clone())
        .map_err(|e| BlueskyError::invalid(format!("{handle:?} is not a handle: {e}")))?;
    if let Some(service) = service_url {
        let did = resolve_handle_at(http, service, &handle).await?;
        return Ok(Account {
            did,
            handle,
            pds: service.trim_end_matches('/').to_string(),
        });
    }
    let did = match well_known_did(http, &handle).await {
        Some(did) => did,
        None => resolve_handle_at(http, default_service, &handle).await?,
    };
    let pds = pds_of(http, &did, plc_url).await?;
    Ok(Account { did, handle, pds })
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

/// A logged-in account. One per connection; cheap to keep in a cache, and
/// shareable between tasks. Access tokens are refreshed automatically; read
/// [`Client::session_json`] after calls to persist the refreshed session.
pub struct Client {
    http: reqwest::Client,
    session: Arc<Session>,
    api: AtpServiceClient<Shared>,
    store: SessionStore,
    did: Did,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("did", &self.did.as_str())
            .field("pds", &self.session.base_uri())
            .finish_non_exhaustive()
    }
}

fn record_key(rkey: &str) -> Result<at::RecordKey, BlueskyError> {
    at::RecordKey::new(rkey.to_string())
        .map_err(|e| BlueskyError::invalid(format!("{rkey:?} is not a record key: {e}")))
}

fn nsid(value: &str) -> Nsid {
    // A constant of this module, valid by construction.
    Nsid::new(value.to_string()).unwrap_or_else(|e| panic!("{value} is not an NSID: {e}"))
}

fn cid(value: &str) -> Result<at::Cid, BlueskyError> {
    at::Cid::from_str(value)
        .map_err(|e| BlueskyError::invalid(format!("{value:?} is not a CID: {e}")))
}

fn strong_ref(r: &StrongRef) -> Result<strong_ref::Main, BlueskyError> {
    Ok(strong_ref::MainData {
        uri: r.uri.clone(),
        cid: cid(&r.cid)?,
    }
    .into())
}

fn out_facet(facet: &OutFacet) -> Result<facet::Main, BlueskyError> {
    let (start, end, feature) = match facet {
        OutFacet::Link { start, end, uri } => (
            start,
            end,
            facet::MainFeaturesItem::Link(Box::new(facet::LinkData { uri: uri.clone() }.into())),
        ),
        OutFacet::Mention { start, end, did } => {
            let did = Did::new(did.clone())
                .map_err(|e| BlueskyError::invalid(format!("{did:?} is not a DID: {e}")))?;
            (
                start,
                end,
                facet::MainFeaturesItem::Mention(Box::new(facet::MentionData { did }.into())),
            )
        }
        OutFacet::Tag { start, end, tag } => (
            start,
            end,
            facet::MainFeaturesItem::Tag(Box::new(facet::TagData { tag: tag.clone() }.into())),
        ),
    };
    Ok(facet::MainData {
        features: vec![Union::Refs(feature)],
        index: facet::ByteSliceData {
            byte_start: *start,
            byte_end: *end,
        }
        .into(),
    }
    .into())
}

fn image(image: &Image) -> Result<images::Image, BlueskyError> {
    let blob: BlobRef = serde_json::from_value(image.blob.clone())
        .map_err(|e| BlueskyError::invalid(format!("not a blob ref: {e}")))?;
    let aspect_ratio = match (
        std::num::NonZeroU64::new(image.width.into()),
        std::num::NonZeroU64::new(image.height.into()),
    ) {
        (Some(width), Some(height)) => Some(AspectRatioData { width, height }.into()),
        _ => None,
    };
    Ok(images::ImageData {
        alt: image.alt.clone(),
        aspect_ratio,
        image: blob,
    }
    .into())
}

/// The `app.bsky.feed.post` record of `post` with `facets`.
fn post_record(post: &PostRecord, facets: &[OutFacet]) -> Result<post::RecordData, BlueskyError> {
    let langs = post
        .langs
        .iter()
        .map(|l| {
            Language::new(l.clone())
                .map_err(|e| BlueskyError::invalid(format!("{l:?} is not a language tag: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let facets = facets
        .iter()
        .map(out_facet)
        .collect::<Result<Vec<_>, _>>()?;
    let images = post
        .images
        .iter()
        .map(image)
        .collect::<Result<Vec<_>, _>>()?;
    let reply = match &post.reply {
        Some(reply) => Some(
            post::ReplyRefData {
                root: strong_ref(&reply.root)?,
                parent: strong_ref(&reply.parent)?,
            }
            .into(),
        ),
        None => None,
    };
    Ok(post::RecordData {
        created_at: Datetime::new(post.created_at.fixed_offset()),
        embed: (!images.is_empty()).then(|| {
            Union::Refs(post::RecordEmbedRefs::AppBskyEmbedImagesMain(Box::new(
                images::MainData { images }.into(),
            )))
        }),
        entities: None,
        facets: (!facets.is_empty()).then_some(facets),
        labels: None,
        langs: (!langs.is_empty()).then_some(langs),
        reply,
        tags: None,
        text: post.text.clone(),
    })
}

impl Client {
    fn from_session(
        http: reqwest::Client,
        session: Session,
        store: SessionStore,
        did: Did,
    ) -> Self {
        let session = Arc::new(session);
        Self {
            api: AtpServiceClient::new(Shared(session.clone())),
            http,
            session,
            store,
            did,
        }
    }

    /// Logs in with an app password (a real session: verifies the credentials).
    /// `identifier` is the handle, the DID or the e-mail address.
    pub async fn login(
        http: reqwest::Client,
        pds: &str,
        identifier: &str,
        app_password: &str,
    ) -> Result<Self, BlueskyError> {
        let store = SessionStore::default();
        let session = CredentialSession::new(Transport::new(http.clone(), pds), store.clone());
        let created = call("createSession", session.login(identifier, app_password)).await?;
        let did = created.data.did.clone();
        Ok(Self::from_session(http, session, store, did))
    }

    /// Resumes a cached session (JSON from `session_json`), no network call.
    /// Requests go to the PDS named in the session's DID document, else `pds`.
    pub fn resume(
        http: reqwest::Client,
        pds: &str,
        session_json: &str,
    ) -> Result<Self, BlueskyError> {
        // The parser's message could quote the input: keep it out.
        let saved: AtpSession = serde_json::from_str(session_json).map_err(|_| {
            BlueskyError::new(ErrorKind::Auth, "the saved Bluesky session is unreadable")
        })?;
        let endpoint = saved
            .data
            .did_doc
            .as_ref()
            .and_then(|doc| serde_json::to_value(doc).ok())
            .and_then(|doc| serde_json::from_value::<DidDocument>(doc).ok())
            .and_then(|doc| doc.get_pds_endpoint())
            .unwrap_or_else(|| pds.to_string());
        let did = saved.data.did.clone();
        let store = SessionStore::default();
        store.put(Some(saved));
        let session =
            CredentialSession::new(Transport::new(http.clone(), &endpoint), store.clone());
        Ok(Self::from_session(http, session, store, did))
    }

    /// The current session (after any automatic refresh) as JSON, for the caller to encrypt and persist; None once the session was cleared (refresh failed).
    pub async fn session_json(&self) -> Option<String> {
        self.store
            .current()
            .and_then(|session| serde_json::to_string(&session).ok())
    }

    /// The account's DID.
    pub fn did(&self) -> &str {
        self.did.as_str()
    }

    /// Uploads an image (or other blob) and returns its blob ref, to put in
    /// an [`Image`]. The PDS keeps unreferenced blobs only for a while: use it
    /// in a post soon.
    pub async fn upload_blob(
        &self,
        bytes: Vec<u8>,
        mime: &str,
    ) -> Result<serde_json::Value, BlueskyError> {
        let request = XrpcRequest::<(), Vec<u8>> {
            method: Method::POST,
            nsid: upload_blob::NSID.into(),
            parameters: None,
            input: Some(InputDataOrBytes::Bytes(bytes)),
            encoding: Some(mime.to_string()),
        };
        let output = call(
            "uploadBlob",
            self.session
                .send_xrpc::<_, _, upload_blob::Output, upload_blob::Error>(&request),
        )
        .await?;
        match output {
            OutputDataOrBytes::Data(output) => serde_json::to_value(&output.data.blob)
                .map_err(|e| BlueskyError::transient(format!("uploadBlob: {e}"), true)),
            OutputDataOrBytes::Bytes(_) => Err(BlueskyError::transient(
                "uploadBlob: the response was not JSON",
                true,
            )),
        }
    }

    /// createRecord in app.bsky.feed.post at `rkey` (a TID string), validate: true.
    ///
    /// Publishes `facets` (resolved with [`Client::resolve_mentions`]), not
    /// `post.facets`. If a record already exists at `rkey` the PDS answers
    /// `500`: an ambiguous error; [`Client::ensure_post`] sorts that out.
    pub async fn create_post(
        &self,
        rkey: &str,
        post: &PostRecord,
        facets: &[OutFacet],
    ) -> Result<StrongRef, BlueskyError> {
        let record = KnownRecord::from(post_record(post, facets)?)
            .try_into_unknown()
            .map_err(|e| BlueskyError::invalid(format!("createRecord: {e}")))?;
        let input = create_record::InputData {
            collection: nsid(POST_COLLECTION),
            record,
            repo: AtIdentifier::Did(self.did.clone()),
            rkey: Some(record_key(rkey)?),
            swap_commit: None,
            validate: Some(true),
        };
        let output = call(
            "createRecord",
            self.api
                .service
                .com
                .atproto
                .repo
                .create_record(input.into()),
        )
        .await?;
        Ok(StrongRef {
            uri: output.data.uri,
            cid: output.data.cid.as_ref().to_string(),
        })
    }

    /// getRecord at `rkey`: Some(uri,cid) if it exists, None if RecordNotFound.
    pub async fn get_post(&self, rkey: &str) -> Result<Option<StrongRef>, BlueskyError> {
        let params = get_record::ParametersData {
            cid: None,
            collection: nsid(POST_COLLECTION),
            repo: AtIdentifier::Did(self.did.clone()),
            rkey: record_key(rkey)?,
        };
        let (result, limits) =
            observe(self.api.service.com.atproto.repo.get_record(params.into())).await;
        match result {
            Ok(output) => match output.data.cid {
                Some(cid) => Ok(Some(StrongRef {
                    uri: output.data.uri,
                    cid: cid.as_ref().to_string(),
                })),
                None => Err(BlueskyError::transient(
                    "getRecord: the answer held no CID",
                    false,
                )),
            },
            Err(e) if error_code(&e).as_deref() == Some("RecordNotFound") => Ok(None),
            Err(e) => Err(classify("getRecord", &e, &limits, Utc::now())),
        }
    }

    /// Creates unless it already exists: create; on an ambiguous error read the key; if present return it (already published), else return the error. This is the exactly-once primitive.
    ///
    /// A record found at the key is returned as it is, whatever it says: keys
    /// are derived from the post, so it is this post's earlier attempt. When
    /// the key is absent the error stays ambiguous — the create may still
    /// land — and calling `ensure_post` again later is safe.
    pub async fn ensure_post(
        &self,
        rkey: &str,
        post: &PostRecord,
        facets: &[OutFacet],
    ) -> Result<StrongRef, BlueskyError> {
        match self.create_post(rkey, post, facets).await {
            Err(error) if error.ambiguous => match self.get_post(rkey).await {
                Ok(Some(existing)) => Ok(existing),
                Ok(None) => Err(error),
                Err(read) => Err(BlueskyError {
                    message: format!("{}; reading the key back failed too: {read}", error.message),
                    ..error
                }),
            },
            result => result,
        }
    }

    /// deleteRecord at `rkey`; deleting a missing record succeeds.
    pub async fn delete_post(&self, rkey: &str) -> Result<(), BlueskyError> {
        let input = delete_record::InputData {
            collection: nsid(POST_COLLECTION),
            repo: AtIdentifier::Did(self.did.clone()),
            rkey: record_key(rkey)?,
            swap_commit: None,
            swap_record: None,
        };
        call(
            "deleteRecord",
            self.api
                .service
                .com
                .atproto
                .repo
                .delete_record(input.into()),
        )
        .await?;
        Ok(())
    }

    /// All post record keys in the repo (paging listRecords), for tests and audits.
    pub async fn list_post_rkeys(&self) -> Result<Vec<String>, BlueskyError> {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let params = list_records::ParametersData {
                collection: nsid(POST_COLLECTION),
                cursor: cursor.take(),
                limit: LimitedNonZeroU8::<100>::try_from(100).ok(),
                repo: AtIdentifier::Did(self.did.clone()),
                reverse: None,
            };
            let page = call(
                "listRecords",
                self.api
                    .service
                    .com
                    .atproto
                    .repo
                    .list_records(params.into()),
            )
            .await?;
            let before = keys.len();
            keys.extend(page.data.records.iter().filter_map(|record| {
                record
                    .uri
                    .rsplit_once('/')
                    .map(|(_, rkey)| rkey.to_string())
            }));
            match page.data.cursor {
                Some(next) if keys.len() > before => cursor = Some(next),
                _ => return Ok(keys),
            }
        }
    }

    /// Resolves the mention handles of `facets` to DIDs with
    /// `com.atproto.identity.resolveHandle` at the session's PDS. Links and
    /// tags pass through. A handle that does not resolve loses its facet (the
    /// text stays, as plain text) and yields a warning.
    pub async fn resolve_mentions(&self, facets: &[Facet]) -> (Vec<OutFacet>, Vec<String>) {
        let mut resolved: HashMap<String, Option<String>> = HashMap::new();
        let mut out = Vec::with_capacity(facets.len());
        let mut warnings = Vec::new();
        for f in facets {
            let (start, end) = (f.index.byte_start, f.index.byte_end);
            match &f.feature {
                FacetFeature::Link { uri } => out.push(OutFacet::Link {
                    start,
                    end,
                    uri: uri.clone(),
                }),
                FacetFeature::Tag { tag } => out.push(OutFacet::Tag {
                    start,
                    end,
                    tag: tag.clone(),
                }),
                FacetFeature::Mention { handle } => {
                    if !resolved.contains_key(handle) {
                        let did = match self.resolve_handle(handle).await {
                            Ok(did) => Some(did),
                            Err(e) => {
                                warnings.push(format!(
                                    "@{handle} could not be resolved ({e}); published as plain text"
                                ));
                                None
                            }
                        };
                        resolved.insert(handle.clone(), did);
                    }
                    if let Some(Some(did)) = resolved.get(handle) {
                        out.push(OutFacet::Mention {
                            start,
                            end,
                            did: did.clone(),
                        });
                    }
                }
            }
        }
        (out, warnings)
    }

    async fn resolve_handle(&self, handle: &str) -> Result<String, BlueskyError> {
        let handle = Handle::new(handle.to_string())
            .map_err(|e| BlueskyError::invalid(format!("{handle:?} is not a handle: {e}")))?;
        let output = call(
            "resolveHandle",
            self.api
                .service
                .com
                .atproto
                .identity
                .resolve_handle(resolve_handle::ParametersData { handle }.into()),
        )
        .await?;
        Ok(output.data.did.as_str().to_string())
    }

    /// Like/repost/reply/quote counts via app.bsky.feed.getPosts, batched 25
    /// URIs per call, through the PDS proxy or straight at an AppView.
    /// Posts the AppView does not know (deleted, not indexed yet) are left
    /// out; the others come in the order of `uris`.
    pub async fn engagement(
        &self,
        uris: &[String],
        appview: &Appview,
    ) -> Result<Vec<Counts>, BlueskyError> {
        let mut counts = Vec::with_capacity(uris.len());
        for batch in uris.chunks(GET_POSTS_BATCH) {
            let params: get_posts::Parameters = get_posts::ParametersData {
                uris: batch.to_vec(),
            }
            .into();
            let output = match appview {
                Appview::Proxy { did } => {
                    let did = Did::new(did.clone())
                        .map_err(|e| BlueskyError::invalid(format!("AppView DID {did:?}: {e}")))?;
                    let api =
                        AtpServiceClient::new(self.session.clone_with_proxy(did, APPVIEW_SERVICE));
                    call("getPosts", api.service.app.bsky.feed.get_posts(params)).await?
                }
                Appview::Direct { url } => {
                    let api = AtpServiceClient::new(Transport::new(self.http.clone(), url));
                    call("getPosts", api.service.app.bsky.feed.get_posts(params)).await?
                }
            };
            counts.extend(output.data.posts.into_iter().map(|post| Counts {
                likes: post.like_count.unwrap_or(0),
                reposts: post.repost_count.unwrap_or(0),
                replies: post.reply_count.unwrap_or(0),
                quotes: post.quote_count.unwrap_or(0),
                uri: post.data.uri,
            }));
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::{StatusCode, Uri};
    use axum::response::{IntoResponse, Response};
    use serde_json::json;

    use super::*;

    const DID: &str = "did:plc:6bavrr5753eme7i66vjxwgze";
    const CID: &str = "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm";

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    /// A fake XRPC server on 127.0.0.1: `respond` gets the path of each
    /// request. Returns its base URL.
    async fn serve(respond: impl Fn(&str) -> Response + Send + Sync + 'static) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let respond = Arc::new(respond);
        let app = axum::Router::new().fallback(move |uri: Uri| {
            let respond = respond.clone();
            async move { respond(uri.path()) }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn xrpc_error(status: StatusCode, code: &str, message: &str) -> Response {
        (
            status,
            axum::Json(json!({"error": code, "message": message})),
        )
            .into_response()
    }

    /// A client on a made-up session (no network needed to resume).
    fn resumed(base: &str) -> Client {
        let session = json!({
            "accessJwt": "access-token-value",
            "refreshJwt": "refresh-token-value",
            "did": DID,
            "handle": "alice.test",
        });
        Client::resume(http_client().unwrap(), base, &session.to_string()).unwrap()
    }

    #[test]
    fn rate_limit_headers_are_read_in_every_form() {
        let now = at("2030-01-01T00:00:00Z");
        let limits = RateLimit::from_headers(
            &headers(&[
                ("ratelimit-remaining", "0"),
                ("ratelimit-reset", &(now.timestamp() + 300).to_string()),
                ("retry-after", "30"),
            ]),
            now,
        );
        assert_eq!(limits.remaining, Some(0));
        assert_eq!(limits.reset, Some(at("2030-01-01T00:05:00Z")));
        assert_eq!(limits.retry_after, Some(at("2030-01-01T00:00:30Z")));
        assert_eq!(
            limits.retry_at(now),
            at("2030-01-01T00:00:30Z"),
            "retry-after wins"
        );

        let limits = RateLimit::from_headers(
            &headers(&[
                ("ratelimit-reset", "90"),
                ("retry-after", "Tue, 01 Jan 2030 00:02:00 GMT"),
            ]),
            now,
        );
        assert_eq!(
            limits.reset,
            Some(at("2030-01-01T00:01:30Z")),
            "delta seconds"
        );
        assert_eq!(
            limits.retry_after,
            Some(at("2030-01-01T00:02:00Z")),
            "HTTP date"
        );

        let limits = RateLimit::from_headers(&headers(&[("ratelimit-reset", "90")]), now);
        assert_eq!(
            limits.retry_at(now),
            at("2030-01-01T00:01:30Z"),
            "else the reset"
        );

        let limits = RateLimit::from_headers(
            &headers(&[("ratelimit-remaining", "lots"), ("retry-after", "soon")]),
            now,
        );
        assert_eq!(limits, RateLimit::default(), "garbage is ignored");
        assert_eq!(limits.retry_at(now), now + TimeDelta::seconds(60));
        let past = RateLimit {
            reset: Some(now - TimeDelta::hours(1)),
            ..RateLimit::default()
        };
        assert_eq!(past.retry_at(now), now + TimeDelta::seconds(1));
    }

    #[test]
    fn responses_are_classified_by_status_and_code() {
        let now = at("2030-01-01T00:00:00Z");
        let none = RateLimit::default();
        let kind = |status, code: Option<&str>| {
            let e = classify_response("op", status, code, Some("m"), &none, now);
            (e.kind, e.ambiguous)
        };
        use ErrorKind::*;
        assert_eq!(kind(429, None), (RateLimited, false));
        assert_eq!(kind(400, Some("RateLimitExceeded")), (RateLimited, false));
        assert_eq!(kind(401, Some("AuthenticationRequired")), (Auth, false));
        assert_eq!(kind(401, Some("AuthMissing")), (Auth, false));
        assert_eq!(kind(400, Some("ExpiredToken")), (Auth, false));
        assert_eq!(kind(400, Some("InvalidToken")), (Auth, false));
        assert_eq!(kind(400, Some("AccountTakedown")), (Auth, false));
        assert_eq!(kind(403, None), (Auth, false));
        assert_eq!(kind(400, Some("InvalidRequest")), (Invalid, false));
        assert_eq!(kind(400, Some("InvalidRecord")), (Invalid, false));
        assert_eq!(kind(413, Some("BlobTooLarge")), (Invalid, false));
        assert_eq!(kind(500, Some("InternalServerError")), (Transient, true));
        assert_eq!(kind(502, None), (Transient, true));
        assert_eq!(kind(504, None), (Transient, true));
        assert_eq!(kind(408, None), (Transient, true));

        let e = classify_response(
            "createRecord",
            400,
            Some("InvalidRecord"),
            Some("bad"),
            &none,
            now,
        );
        assert_eq!(e.message, "createRecord: HTTP 400 InvalidRecord: bad");
        let e = classify_response("getPosts", 502, None, None, &none, now);
        assert_eq!(e.message, "getPosts: HTTP 502");
        let e = classify_response("x", 429, None, None, &none, now);
        assert_eq!(e.retry_after, Some(now + TimeDelta::seconds(60)));
    }

    #[tokio::test]
    async fn a_429_is_rate_limited_until_the_time_the_server_names() {
        let reset = Utc::now().timestamp() + 120;
        let base = serve(move |_| {
            let mut response = xrpc_error(
                StatusCode::TOO_MANY_REQUESTS,
                "RateLimitExceeded",
                "Rate Limit Exceeded",
            );
            let h = response.headers_mut();
            h.insert("ratelimit-limit", "30".parse().unwrap());
            h.insert("ratelimit-remaining", "0".parse().unwrap());
            h.insert("ratelimit-reset", reset.to_string().parse().unwrap());
            response
        })
        .await;
        let err = Client::login(
            http_client().unwrap(),
            &base,
            "alice.test",
            "app-pass-secret",
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::RateLimited, "{err:?}");
        assert_eq!(err.retry_after.map(|t| t.timestamp()), Some(reset));
        assert!(!err.ambiguous);
        assert!(!err.message.contains("app-pass-secret"));

        // retry-after alone, on an authenticated call.
        let base = serve(|_| {
            let mut response = StatusCode::TOO_MANY_REQUESTS.into_response();
            response
                .headers_mut()
                .insert("retry-after", "7".parse().unwrap());
            response
        })
        .await;
        let before = Utc::now();
        let err = resumed(&base)
            .delete_post("3ke6kg42cm222")
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::RateLimited, "{err:?}");
        let wait = err.retry_after.unwrap() - before;
        assert!(
            wait >= TimeDelta::seconds(6) && wait <= TimeDelta::seconds(8),
            "{wait}"
        );
    }

    #[tokio::test]
    async fn ensure_post_reads_the_key_back_after_an_ambiguous_failure() {
        let uri = format!("at://{DID}/app.bsky.feed.post/3ke6kg42cm222");
        let creates = Arc::new(AtomicUsize::new(0));
        let seen = creates.clone();
        let existing = uri.clone();
        let base = serve(move |path| match path {
            "/xrpc/com.atproto.repo.createRecord" => {
                seen.fetch_add(1, Ordering::SeqCst);
                xrpc_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "Internal Server Error",
                )
            }
            "/xrpc/com.atproto.repo.getRecord" => {
                axum::Json(json!({"uri": existing, "cid": CID, "value": {}})).into_response()
            }
            _ => StatusCode::NOT_FOUND.into_response(),
        })
        .await;
        let post = PostRecord {
            text: "hello".into(),
            langs: vec![],
            facets: vec![],
            created_at: Utc::now(),
            reply: None,
            images: vec![],
        };
        let client = resumed(&base);
        let err = client
            .create_post("3ke6kg42cm222", &post, &[])
            .await
            .unwrap_err();
        assert_eq!((err.kind, err.ambiguous), (ErrorKind::Transient, true));
        let found = client
            .ensure_post("3ke6kg42cm222", &post, &[])
            .await
            .unwrap();
        assert_eq!(
            found,
            StrongRef {
                uri,
                cid: CID.into()
            }
        );
        assert_eq!(creates.load(Ordering::SeqCst), 2);

        // Nothing at the key: the create's error stands, still ambiguous.
        let base = serve(|path| match path {
            "/xrpc/com.atproto.repo.getRecord" => xrpc_error(
                StatusCode::BAD_REQUEST,
                "RecordNotFound",
                "Could not locate record",
            ),
            _ => StatusCode::BAD_GATEWAY.into_response(),
        })
        .await;
        let client = resumed(&base);
        assert_eq!(client.get_post("3ke6kg42cm222").await.unwrap(), None);
        let err = client
            .ensure_post("3ke6kg42cm222", &post, &[])
            .await
            .unwrap_err();
        assert_eq!((err.kind, err.ambiguous), (ErrorKind::Transient, true));
        assert_eq!(err.message, "createRecord: HTTP 502");

        // A refused request is not read back: it cannot have been applied.
        let base = serve(|_| xrpc_error(StatusCode::BAD_REQUEST, "InvalidRequest", "nope")).await;
        let err = resumed(&base)
            .ensure_post("3ke6kg42cm222", &post, &[])
            .await
            .unwrap_err();
        assert_eq!((err.kind, err.ambiguous), (ErrorKind::Invalid, false));
    }

    #[tokio::test]
    async fn a_refused_connection_is_not_ambiguous_but_a_timeout_is() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let err = resumed(&closed)
            .delete_post("3ke6kg42cm222")
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind, err.ambiguous),
            (ErrorKind::Transient, false),
            "{err:?}"
        );
        assert!(!err.message.contains("access-token-value"));

        // A server that accepts and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let transport = Transport {
            timeout: Duration::from_millis(300),
            ..Transport::new(http_client().unwrap(), &silent)
        };
        let api = AtpServiceClient::new(transport);
        let err = call(
            "describeServer",
            api.service.com.atproto.server.describe_server(),
        )
        .await
        .unwrap_err();
        assert_eq!(
            (err.kind, err.ambiguous),
            (ErrorKind::Transient, true),
            "{err:?}"
        );
    }

    #[test]
    fn debug_output_holds_no_tokens() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let client = resumed("http://127.0.0.1:9");
        let debug = format!("{client:?}");
        assert!(debug.contains(DID), "{debug}");
        assert!(!debug.contains("access-token-value") && !debug.contains("refresh-token-value"));
    }
}
