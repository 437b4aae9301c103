//! HTTP hardening: security headers on every response and the CORS
//! allow-list. (The request size limit is in `app`, the GraphQL cost limit in
//! `graphql`.)
//!
//! The API serves JSON only, so its Content-Security-Policy forbids
//! everything; a handler that serves a page (GraphiQL, the display player)
//! sets its own policy, and the layer only fills in headers a response does
//! not have yet.

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::settings::HttpSettings;

/// CSP of every API response: nothing may load, nothing may frame it.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// CSP of the GraphiQL page: scripts, styles and requests from this origin
/// only (its assets are embedded in the binary). Styles also inline: the
/// page's dialogs inject a `<style>` element; its fonts and icons are
/// `data:` URLs in its stylesheet.
pub const GRAPHIQL_CSP: &str = "default-src 'none'; \
    script-src 'self'; \
    style-src 'self' 'unsafe-inline'; \
    font-src data:; img-src 'self' data:; \
    connect-src 'self'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// CSP of the display player (`/display`): its own script and stylesheet,
/// requests to this origin (the display API, including the event stream),
/// and images from `blob:` URLs, which is how it shows media fetched with
/// its `Authorization` header. Nothing inline, nothing from elsewhere.
pub const PLAYER_CSP: &str = "default-src 'none'; \
    script-src 'self'; style-src 'self'; img-src 'self' blob:; \
    connect-src 'self'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// HSTS for two years, subdomains included (sent only behind TLS).
pub const HSTS: &str = "max-age=63072000; includeSubDomains";

/// What the security-header layer needs to know about the deployment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy {
    /// Clients reach Herald over https (`HERALD_PUBLIC_URL`): always send HSTS.
    pub https: bool,
    /// A reverse proxy sets `X-Forwarded-Proto`, so it can be believed.
    pub trust_proxy: bool,
}

impl Policy {
    /// The policy of `settings`.
    pub fn new(settings: &HttpSettings) -> Self {
        Self {
            https: settings
                .public_url
                .as_deref()
                .is_some_and(|u| u.trim().to_ascii_lowercase().starts_with("https://")),
            trust_proxy: settings.trust_proxy,
        }
    }

    /// Whether this request reached Herald over TLS.
    fn behind_tls(&self, headers: &HeaderMap) -> bool {
        self.https
            || (self.trust_proxy
                && headers
                    .get("x-forwarded-proto")
                    .and_then(|v| v.to_str().ok())
                    // A chain of proxies appends: the first is the client's.
                    .and_then(|v| v.split(',').next())
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("https")))
    }
}

/// Middleware adding the security headers to every response, errors included.
pub async fn security_headers(
    State(policy): State<Policy>,
    request: Request,
    next: Next,
) -> Response {
    let tls = policy.behind_tls(request.headers());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let defaults = [
        (header::CONTENT_SECURITY_POLICY, API_CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    response
}

/// CORS for the configured origins: GET, POST and preflights with the
/// `Authorization` and `Content-Type` headers. Origins not listed (all of
/// them when the list is empty) get no `Access-Control-Allow-Origin`, so
/// browsers keep other sites out. Tokens travel in `Authorization`, not in
/// cookies, so credentials mode stays off.
pub fn cors(origins: &[String]) -> CorsLayer {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .map(|o| o.trim().trim_end_matches('/'))
        .filter(|o| !o.is_empty())
        .filter_map(|o| match HeaderValue::from_str(o) {
            // An allow-list means listing origins; tower-http also refuses
            // `*` in a list.
            Ok(value) if o != "*" => Some(value),
            _ => {
                tracing::warn!(
                    origin = o,
                    "ignoring a CORS origin: list exact origins such as https://app.example.org"
                );
                None
            }
        })
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static(super::idempotency::HEADER),
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
            HeaderName::from_static(super::idempotency::REPLAYED),
        ])
        .max_age(std::time::Duration::from_secs(600))
}
