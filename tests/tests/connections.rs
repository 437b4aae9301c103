//! Connections a client opens and then holds: a request head sent slowly
//! (slowloris) is cut off after the header timeout, a kept-alive connection
//! with no next request after the idle timeout, and one address cannot hold
//! more than its share of connections. A display's event stream is a
//! response in progress, so it outlives the idle timeout.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::{Backend, TestApp, on_both_databases, spawn_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn app(backend: Backend, configure: impl FnOnce(&mut api::Settings)) -> TestApp {
    let mut config = api::Settings::for_database(&backend.fresh().await);
    configure(&mut config);
    spawn_with(config).await
}

async fn connect(app: &TestApp) -> TcpStream {
    let address = app.address.trim_start_matches("http://");
    TcpStream::connect(address).await.unwrap()
}

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: herald\r\n\r\n";

/// Sends `GET /health` on `stream` and reads its whole (small) response.
async fn health(stream: &mut TcpStream) -> String {
    stream.write_all(HEALTH).await.unwrap();
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    while !response.ends_with(b"}") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("a response within 5 s")
            .unwrap();
        assert!(n > 0, "closed before the response was complete");
        response.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8(response).unwrap()
}

/// How long until the server closes `stream` (reading nothing more), at
/// most `within`; `None` when it is still open then.
async fn closed_after(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((started + within).into(), stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

async fn a_request_head_sent_slowly_is_cut_off_after_the_header_timeout(backend: Backend) {
    let app = app(backend, |c| {
        c.http.header_read_timeout_seconds = 1;
        c.http.idle_timeout_seconds = 60;
    })
    .await;
    let mut slow = connect(&app).await;
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: herald\r\n")
        .await
        .unwrap();
    // A header line every 200 ms keeps bytes flowing, never ending the head.
    let started = Instant::now();
    let closed = loop {
        if slow.write_all(b"X-Drip: 1\r\n").await.is_err() {
            break started.elapsed();
        }
        if let Some(after) = closed_after(&mut slow, Duration::from_millis(200)).await {
            break started.elapsed().max(after);
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a dripping request head is still open after 5 s"
        );
    };
    assert!(closed >= Duration::from_millis(800), "{closed:?}");

    // Nothing sent at all: a new connection gets the header timeout too.
    let mut silent = connect(&app).await;
    let closed = closed_after(&mut silent, Duration::from_secs(5)).await;
    assert!(
        closed.is_some(),
        "a silent connection is still open after 5 s"
    );
}

async fn a_kept_alive_connection_without_a_next_request_is_closed_after_the_idle_timeout(
    backend: Backend,
) {
    let app = app(backend, |c| {
        c.http.header_read_timeout_seconds = 30;
        c.http.idle_timeout_seconds = 1;
    })
    .await;
    let mut idle = connect(&app).await;
    let first = health(&mut idle).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // Kept alive: a second request on it is served.
    let second = health(&mut idle).await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    let closed = closed_after(&mut idle, Duration::from_secs(5))
        .await
        .expect("an idle connection is closed within 5 s");
    assert!(closed >= Duration::from_millis(800), "{closed:?}");
}

async fn connections_beyond_the_per_address_cap_are_refused_while_the_others_work(
    backend: Backend,
) {
    let app = app(backend, |c| c.http.max_connections_per_ip = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&app).await;
        assert!(health(&mut stream).await.starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
    let mut over = connect(&app).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), over.read_to_end(&mut answer))
        .await
        .expect("the connection over the cap is closed at once");
    assert!(read.is_ok() || answer.is_empty());
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("\"RATE_LIMITED\""), "{answer}");

    // The connections within the cap still work.
    for stream in &mut held {
        assert!(health(stream).await.starts_with("HTTP/1.1 200"));
    }
    // One closed: its place is free again.
    drop(held.pop());
    let mut again = None;
    for _ in 0..50 {
        let mut stream = connect(&app).await;
        stream.write_all(HEALTH).await.unwrap();
        let mut head = [0u8; 12];
        if stream.read_exact(&mut head).await.is_ok() && head.starts_with(b"HTTP/1.1 200") {
            again = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        again.is_some(),
        "a freed place is given to a new connection"
    );
}

async fn a_display_event_stream_stays_open_past_the_idle_timeout(backend: Backend) {
    let app = app(backend, |c| {
        c.http.header_read_timeout_seconds = 1;
        c.http.idle_timeout_seconds = 1;
    })
    .await;
    let (token, _) = app.sign_up("Signs", "owner@signs.example.org").await;
    let device: Value = app
        .client
        .post(format!("{}/display/v1/register", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paired = app
        .gql(
            Some(&token),
            "mutation($i: PairDisplayInput!) { pairDisplay(input: $i) { id } }",
            json!({"i": {"code": device["pairingCode"], "name": "Lobby", "timeZone": "Europe/Berlin"}}),
        )
        .await;
    assert!(paired["errors"].is_null(), "{paired}");
    let secret = device["deviceSecret"].as_str().unwrap();
    let mut events = app
        .client
        .get(format!("{}/display/v1/events", app.address))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let hello = events.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&hello).contains("hello"));

    // Three idle timeouts without a byte on the stream (keep-alives come
    // every 15 s) …
    let quiet = tokio::time::timeout(Duration::from_secs(3), events.chunk()).await;
    assert!(quiet.is_err(), "the stream ended or sent: {quiet:?}");
    // … and it still carries a push.
    let started = app
        .gql(
            Some(&token),
            "mutation { startEmergency(input: {message: \"Fire drill\", severity: HIGH}) { id } }",
            json!({}),
        )
        .await;
    assert!(started["errors"].is_null(), "{started}");
    let push = tokio::time::timeout(Duration::from_secs(5), events.chunk())
        .await
        .expect("a push within 5 s")
        .unwrap()
        .expect("the stream is still open");
    assert!(
        String::from_utf8_lossy(&push).contains("event:"),
        "{push:?}"
    );
}

on_both_databases!(
    a_request_head_sent_slowly_is_cut_off_after_the_header_timeout,
    a_kept_alive_connection_without_a_next_request_is_closed_after_the_idle_timeout,
    connections_beyond_the_per_address_cap_are_refused_while_the_others_work,
    a_display_event_stream_stays_open_past_the_idle_timeout,
);
