//! HTTP hardening seen from a client: security headers on every kind of
//! response, HSTS only behind TLS, CORS limited to the configured origins,
//! `/graphql` taking JSON or multipart only (and queries only by GET), the
//! `Authorization` scheme in any case, and JSON bodies on the errors the
//! server answers before any route runs (a URI too long, a chunked body too
//! large). (Body size and GraphQL cost limits are tested in api.rs.)

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use test_support::{Backend, TestApp, error_code, spawn_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(!csp.contains("unpkg") && !csp.contains("https:"), "{csp}");
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
            "authorization, content-type, idempotency-key",
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
        allowed_headers.contains("authorization")
            && allowed_headers.contains("content-type")
            && allowed_headers.contains("idempotency-key"),
        "a browser client may send an Idempotency-Key: {allowed_headers}"
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

/// Sends `request` as raw bytes and reads the answer until the server
/// closes the connection: (status line, headers, body).
async fn raw(app: &TestApp, request: &[u8]) -> (String, String, String) {
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the server answers and closes within 10 s");
    let answer = String::from_utf8_lossy(&answer).to_string();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.into(), headers.to_ascii_lowercase(), body.into())
}

fn code_of(body: &str) -> Value {
    serde_json::from_str::<Value>(body).unwrap_or(Value::Null)["error"]["code"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_takes_json_or_multipart_posts_and_queries_by_get_only() {
    let app = app(|_| {}).await;
    let url = format!("{}/graphql", app.address);
    let sign_up = json!({"query": "mutation { signUp(input: {organizationName: \"Forged\", email: \"x@forged.example.org\", password: \"correct horse battery\"}) { accessToken } }"}).to_string();
    let events = app.event_count().await;
    // What a cross-origin form or `fetch` can send without a preflight.
    for content_type in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = app.client.post(&url).body(sign_up.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 415, "{content_type:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "UNSUPPORTED_MEDIA_TYPE",
            "{content_type:?}: {body}"
        );
    }
    assert_eq!(app.event_count().await, events, "nothing was executed");

    let json = app
        .client
        .post(&url)
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"query": "{ __typename }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 200);

    // A query by GET runs; a mutation by GET does not.
    let query = app
        .client
        .get(&url)
        .query(&[("query", "{ __typename }")])
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), 200);
    let body: Value = query.json().await.unwrap();
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
    let mutation = app
        .client
        .get(&url)
        .query(&[("query", "mutation { logOut }")])
        .send()
        .await
        .unwrap();
    assert_eq!(mutation.status(), 405);
    assert_eq!(header(mutation.headers(), "allow"), Some("POST"));
    let body: Value = mutation.json().await.unwrap();
    assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_scheme_is_read_in_any_case() {
    let app = app(|_| {}).await;
    let (token, _) = app.sign_up("Cases", "owner@cases.example.org").await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let me: Value = app
            .client
            .post(format!("{}/graphql", app.address))
            .header("authorization", format!("{scheme} {token}"))
            .json(&json!({"query": "{ me { role } }"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["data"]["me"]["role"], "OWNER", "{scheme}: {me}");
        let export = app
            .client
            .get(format!("{}/api/v1/audit/export", app.address))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(export.status(), 200, "{scheme}");
    }
    // Another scheme, or the scheme glued to the token, is still refused.
    for value in [format!("Basic {token}"), format!("Bearer{token}")] {
        let me: Value = app
            .client
            .post(format!("{}/graphql", app.address))
            .header("authorization", value.as_str())
            .json(&json!({"query": "{ me { role } }"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(error_code(&me), Some("UNAUTHENTICATED"), "{value}: {me}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uri_too_long_gets_a_json_414() {
    let app = app(|_| {}).await;
    let request = format!(
        "GET /health?q={} HTTP/1.1\r\nHost: herald\r\n\r\n",
        "a".repeat(100_000)
    );
    let (status, headers, body) = raw(&app, request.as_bytes()).await;
    assert!(status.starts_with("HTTP/1.1 414"), "{status}");
    assert!(
        headers.contains("content-type: application/json"),
        "{headers}"
    );
    assert!(
        headers.contains("x-content-type-options: nosniff"),
        "{headers}"
    );
    assert_eq!(code_of(&body), "URI_TOO_LONG", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_chunked_body_gets_a_json_413() {
    let app = app(|c| c.http.max_body_bytes = 4096).await;
    let chunk = "a".repeat(1000);
    let mut body = String::from("{\"query\": \"{ __typename }\", \"x\": \"");
    for _ in 0..10 {
        body.push_str(&chunk);
    }
    body.push_str("\"}");
    for (path, content_type) in [
        ("/graphql", "application/json"),
        ("/verify-email", "application/x-www-form-urlencoded"),
    ] {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: herald\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        for piece in body.as_bytes().chunks(1000) {
            request.push_str(&format!("{:x}\r\n", piece.len()));
            request.push_str(std::str::from_utf8(piece).unwrap());
            request.push_str("\r\n");
        }
        request.push_str("0\r\n\r\n");
        let (status, headers, body) = raw(&app, request.as_bytes()).await;
        assert!(
            status.starts_with("HTTP/1.1 413"),
            "{path}: {status} {body}"
        );
        assert!(
            headers.contains("content-type: application/json"),
            "{path}: {headers}"
        );
        assert_eq!(code_of(&body), "PAYLOAD_TOO_LARGE", "{path}: {body}");
    }
}

/// The introspection query of graphql-js (`getIntrospectionQuery()`), which
/// Schemathesis, GraphiQL and code generators send: its `TypeRef` fragment
/// nests `ofType` eight levels deep, 14 fields in all.
const INTROSPECTION_QUERY: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description args { ...InputValue } type { ...TypeRef }
    isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name description type { ...TypeRef } defaultValue
}
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    } } } } } } } }
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standard_introspection_query_passes_the_depth_limit_and_nothing_else_does() {
    let app = app(|_| {}).await;
    let body = app.gql(None, INTROSPECTION_QUERY, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    let types = body["data"]["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "Query"), "{body}");

    // Data fields beside `__schema` get the ordinary limit.
    let (token, _) = app.sign_up("Deep", "owner@deep.example.org").await;
    let nested = "posts(first: 1) { edges { node { campaign { ".repeat(3);
    let closed = " } } } }".repeat(3);
    let mixed = format!("{{ __schema {{ queryType {{ name }} }} {nested}id{closed} }}");
    let body = app.gql(Some(&token), &mixed, json!({})).await;
    assert_eq!(error_code(&body), Some("VALIDATION"), "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{body}"
    );
    // So does introspection nested past even its own, higher limit.
    let deep_type = format!(
        "{{ __type(name: \"Query\") {{ {}name{} }} }}",
        "ofType { ".repeat(30),
        " }".repeat(30)
    );
    let body = app.gql(None, &deep_type, json!({})).await;
    assert_eq!(error_code(&body), Some("VALIDATION"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_loads_pinned_assets_from_herald_itself() {
    let app = app(|_| {}).await;
    let page = app
        .client
        .get(format!("{}/graphql", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("unpkg") && !page.contains("https://"),
        "{page}"
    );
    let assets: Vec<&str> = page
        .split(['"', '\''])
        .filter(|s| s.starts_with("/graphql/assets/"))
        .collect();
    assert!(assets.len() >= 4, "{page}");
    for asset in assets {
        let response = app
            .client
            .get(format!("{}{asset}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        let content_type = header(response.headers(), "content-type").unwrap();
        let expected = if asset.ends_with(".css") {
            "text/css"
        } else {
            "text/javascript"
        };
        assert!(
            content_type.starts_with(expected),
            "{asset}: {content_type}"
        );
        let versioned = asset.contains(|c: char| c.is_ascii_digit());
        if versioned {
            assert_eq!(
                header(response.headers(), "cache-control"),
                Some("public, max-age=31536000, immutable"),
                "{asset}"
            );
        }
        assert!(!response.bytes().await.unwrap().is_empty(), "{asset}");
    }
    let missing = app
        .client
        .get(format!("{}/graphql/assets/../../Cargo.toml", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
