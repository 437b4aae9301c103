//! The display client of `herald bench displays` against the real event
//! stream of the display API (so the bench measures what players hear).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::routing::get;
use bench::displays::{Progress, listen};
use projections::push::{Hub, PushMessage, PushTarget};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};
use uuid::Uuid;

/// The bench's display reads what the real event stream sends over real
/// HTTP/1.1 (chunked), keep-alives and other events included.
#[tokio::test]
async fn a_bench_display_hears_hello_and_the_emergency_over_http() {
    let hub = Hub::new();
    let tenant = Uuid::new_v4();
    let app = Router::new().route(
        "/display/v1/events",
        get({
            let hub = hub.clone();
            move || async move {
                api::signage::sse::sse_response(hub.subscribe(tenant, Uuid::new_v4(), (None, None)))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (progress, mut reports) = mpsc::unbounded_channel();
    let (stop, stopped) = watch::channel(false);
    let display = tokio::spawn(async move {
        listen(
            address,
            "hds_x",
            Arc::new(Semaphore::new(1)),
            &progress,
            stopped,
        )
        .await
    });
    assert!(matches!(reports.recv().await, Some(Progress::Hello)));
    let push = |event: &str, data: Value| PushMessage {
        tenant_id: tenant,
        target: PushTarget::Tenant,
        event: event.into(),
        data,
        regroup: None,
    };
    assert_eq!(
        hub.deliver(&push("command", json!({"command": "reload"}))),
        1
    );
    assert_eq!(
        hub.deliver(&push("manifest-changed", json!({"emergency": null}))),
        1
    );
    let before = Instant::now();
    let emergency = json!({"emergency": {"id": "e", "message": "bench", "severity": "HIGH"}});
    assert_eq!(hub.deliver(&push("manifest-changed", emergency)), 1);
    match reports.recv().await {
        Some(Progress::Pushed(at)) => assert!(at >= before),
        _ => panic!("the emergency was not heard"),
    }
    stop.send_replace(true);
    display.await.unwrap().unwrap();
}
