//! HTTP hardening seen from a client: security headers on every kind of
//! response, HSTS only behind TLS, and CORS limited to the configured
//! origins. (Body size and GraphQL cost limits are tested in api.rs.)

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::json;
use test_support::{Backend, TestApp, spawn_with};

const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
const HSTS: &str = "max-age=63072000; includeSubDomains";
const ALLOWED: &str = "https://app.example.org";

async fn app(configure: impl FnOnce(&mut api::Settings)) -> TestApp {
    let mut config = api::Settings::for_database(&Backend::Sqlite.fresh().await);
    configure(&mut config);
    spawn_with(config).await
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn assert_security_headers(headers: &HeaderMap, what: &str) {
    assert_eq!(
        header(headers, "content-security-policy"),
        Some(API_CSP),
        "{what}"
    );
    assert_eq!(
        header(headers, "x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(header(headers, "x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(
        header(headers, "referrer-policy"),
        Some("no-referrer"),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let app = app(|c| c.http.max_body_bytes = 4096).await;
    let health = app
        .client
        .get(format!("{}/health", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_security_headers(health.headers(), "/health");

    let graphql = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!({"query": "{ __typename }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(graphql.status(), 200);
    assert_security_headers(graphql.headers(), "POST /graphql");

    let missing = app
        .client
        .get(format!("{}/no-such-route", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_security_headers(missing.headers(), "404");

    let too_large = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"query": "{{ __typename }}", "x": "{}"}}"#,
            "a".repeat(10_000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);
    assert_security_headers(too_large.headers(), "413");
    assert!(
        too_large
            .headers()
            .get("strict-transport-security")
            .is_none(),
        "no HSTS over plain HTTP"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_keeps_its_own_content_security_policy() {
    let app = app(|_| {}).await;
    let page = app
        .client
        .get(format!("{}/graphql", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = header(page.headers(), "content-security-policy")
        .unwrap()
        .to_string();
    assert_ne!(csp, API_CSP);
    assert!(
        csp.contains("script-src 'unsafe-inline' https://unpkg.com"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header(page.headers(), "x-frame-options"), Some("DENY"));
    assert_eq!(
        header(page.headers(), "x-content-type-options"),
        Some("nosniff")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_is_sent_only_behind_tls() {
    let plain = app(|_| {}).await;
    let forwarded = plain
        .client
        .get(format!("{}/health", plain.address))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert!(
        forwarded
            .headers()
            .get("strict-transport-security")
            .is_none(),
        "X-Forwarded-Proto is not trusted unless configured"
    );

    let public_https = app(|c| c.http.public_url = Some("https://herald.example.org".into())).await;
    let response = public_https
        .client
        .get(format!("{}/health", public_https.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(response.headers(), "strict-transport-security"),
        Some(HSTS)
    );

    let proxied = app(|c| c.http.trust_proxy = true).await;
    let via_tls = proxied
        .client
        .get(format!("{}/health", proxied.address))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(via_tls.headers(), "strict-transport-security"),
        Some(HSTS)
    );
    let via_http = proxied
        .client
        .get(format!("{}/health", proxied.address))
        .header("x-forwarded-proto", "http")
        .send()
        .await
        .unwrap();
    assert!(
        via_http
            .headers()
            .get("strict-transport-security")
            .is_none()
    );
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, format!("{}/graphql", app.address))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_from_an_allowed_origin_is_answered() {
    let app =
        app(|c| c.http.cors_origins = vec![ALLOWED.into(), "https://other.example.org".into()])
            .await;
    let response = preflight(&app, ALLOWED).await;
    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers();
    assert_eq!(
        header(headers, "access-control-allow-origin"),
        Some(ALLOWED)
    );
    let methods = header(headers, "access-control-allow-methods")
        .unwrap()
        .to_ascii_uppercase();
    assert!(
        methods.contains("POST") && methods.contains("GET"),
        "{methods}"
    );
    let allowed_headers = header(headers, "access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed_headers.contains("authorization") && allowed_headers.contains("content-type"),
        "{allowed_headers}"
    );
    assert!(headers.get("access-control-allow-credentials").is_none());
    assert_security_headers(headers, "preflight");

    let actual = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("origin", ALLOWED)
        .json(&json!({"query": "{ __typename }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(actual.headers(), "access-control-allow-origin"),
        Some(ALLOWED)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_origins_get_no_cors_access() {
    let server = app(|c| c.http.cors_origins = vec![ALLOWED.into()]).await;
    for origin in [
        "https://evil.example.org",
        "https://app.example.org.evil.example",
        "null",
    ] {
        let response = preflight(&server, origin).await;
        assert!(
            response
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "preflight from {origin}"
        );
        let actual = server
            .client
            .post(format!("{}/graphql", server.address))
            .header("origin", origin)
            .json(&json!({"query": "{ __typename }"}))
            .send()
            .await
            .unwrap();
        assert!(
            actual
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "request from {origin}"
        );
    }

    // The default: no cross-origin access at all.
    let closed = app(|_| {}).await;
    let response = preflight(&closed, ALLOWED).await;
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
