//! A database outage under load, as a client sees it: `/ready` says so
//! within a second, a write answers 503 UNAVAILABLE with `retryAfter` (not
//! INTERNAL), and a retry with the same `Idempotency-Key` once the database
//! is back makes the write exactly once.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use serde_json::{Value, json};
use test_support::spawn_app;

const CREATE: &str = "mutation($i: CampaignInput!) { createCampaign(input: $i) { id } }";

async fn create(
    api: &test_support::TestApp,
    token: &str,
    key: &str,
) -> (u16, Option<String>, Value) {
    let response = api
        .client
        .post(format!("{}/graphql", api.address))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({"query": CREATE, "variables": {"i": {"name": "During", "timeZone": "UTC", "startsOn": "2026-01-01", "endsOn": "2030-12-31"}}}))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_answers_unavailable_fast_and_a_keyed_retry_writes_once() {
    let cluster = Cluster::create();
    let app = spawn_app(&cluster.url()).await;
    let (token, _) = app.sign_up("Outage Ltd", "owner@outage.example.org").await;
    app.create_campaign(&token, "before").await;

    cluster.ctl("stop");
    let asked = Instant::now();
    let ready = app
        .client
        .get(format!("{}/ready", app.address))
        .send()
        .await
        .unwrap();
    let took = asked.elapsed();
    assert_eq!(ready.status().as_u16(), 503);
    assert!(took < Duration::from_millis(1500), "/ready took {took:?}");
    let health = app
        .client
        .get(format!("{}/health", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200, "/health is liveness only");

    let (status, retry_after, body) = create(&app, &token, "outage-1").await;
    assert_eq!(status, 503, "{body}");
    assert!(retry_after.is_some(), "Retry-After is sent: {body}");
    let error = &body["errors"][0]["extensions"];
    let error = if error.is_null() {
        &body["error"]
    } else {
        error
    };
    assert_eq!(error["code"], "UNAVAILABLE", "{body}");
    assert!(error["retryAfter"].is_u64(), "{body}");

    cluster.ctl("start");
    let deadline = Instant::now() + Duration::from_secs(60);
    let created = loop {
        let (status, _, body) = create(&app, &token, "outage-1").await;
        if status == 200 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "never recovered: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        created["data"]["createCampaign"]["id"].is_string(),
        "{created}"
    );
    let (again_status, _, again) = create(&app, &token, "outage-1").await;
    assert_eq!(again_status, 200);
    assert_eq!(again, created, "the key answers as the first success did");
    let list = app
        .gql(
            Some(&token),
            "{ campaigns(first: 10) { edges { node { name } } } }",
            json!({}),
        )
        .await;
    let names: Vec<&str> = list["data"]["campaigns"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.iter().filter(|n| **n == "During").count(),
        1,
        "{list}"
    );
    app.stop().await;
}
