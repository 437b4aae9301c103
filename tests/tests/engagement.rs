//! Engagement analytics against the real local Bluesky network: a published
//! post is liked and replied to by another account, the collector samples
//! the counts from the peer's AppView, and `postEngagement` /
//! `campaignEngagement` show them; rebuilding the `analytics` read model from
//! the log yields the same series.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use test_support::peer::{Peer, peer};
use test_support::{Backend, TestApp, error_code, on_both_databases, spawn_with};

on_both_databases!(
    likes_and_replies_show_up_in_the_series_and_survive_a_replay,
    bad_ranges_and_foreign_ids_are_refused,
);

async fn app(backend: Backend, peer: &Peer) -> TestApp {
    let mut config = api::Settings::for_database(&backend.fresh().await);
    config.publishing.lease_seconds = 3;
    config.publishing.retry_base_ms = 200;
    config.bluesky.engagement_interval_seconds = 1;
    config.bluesky.appview_url = Some(peer.appview().to_string());
    spawn_with(config).await
}

/// Creates a one-entry post for `connection` and schedules it 2 s ahead.
async fn publish(app: &TestApp, token: &str, campaign: &str, connection: &str) -> String {
    let body = app
        .gql(
            Some(token),
            "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }",
            json!({"i": {"campaignId": campaign, "connectionId": connection,
                         "entries": [{"text": "Engagement, please", "langs": ["en"]}]}}),
        )
        .await;
    let post = body["data"]["createPost"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("createPost failed: {body}"))
        .to_string();
    let at = Utc::now() + chrono::Duration::seconds(2);
    let body = app
        .gql(
            Some(token),
            "mutation($i: SchedulePostInput!) { schedulePost(input: $i) { status } }",
            json!({"i": {"postId": post, "at": at}}),
        )
        .await;
    assert_eq!(body["data"]["schedulePost"]["status"], "PENDING", "{body}");
    post
}

/// Polls `post` until it is DONE; returns its first published entry's
/// (uri, cid).
async fn wait_until_published(app: &TestApp, token: &str, post: &str) -> (String, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let body = app
            .gql(
                Some(token),
                "query($id: ID!) { post(id: $id) { status lastError published { uri cid } } }",
                json!({"id": post}),
            )
            .await;
        let p = &body["data"]["post"];
        if p["status"] == "DONE" {
            let entry = &p["published"][0];
            return (
                entry["uri"].as_str().unwrap().to_string(),
                entry["cid"].as_str().unwrap().to_string(),
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not published in time: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const POINT: &str = "at likes reposts replies quotes";

async fn series(
    app: &TestApp,
    token: &str,
    query: &str,
    id_arg: &str,
    id: &str,
    (from, to, interval): (DateTime<Utc>, DateTime<Utc>, i64),
) -> Value {
    app.gql(
        Some(token),
        &format!(
            "query($id: ID!, $from: DateTime!, $to: DateTime!, $interval: Int!) {{
               {query}({id_arg}: $id, from: $from, to: $to, interval: $interval) {{ {POINT} }} }}"
        ),
        json!({"id": id, "from": from, "to": to, "interval": interval}),
    )
    .await
}

async fn likes_and_replies_show_up_in_the_series_and_survive_a_replay(backend: Backend) {
    let peer = peer();
    let app = app(backend, &peer).await;
    let (token, _) = app.sign_up("Engage Ltd", "editor@engage.example.org").await;
    let campaign = app.create_campaign(&token, "Launch").await;
    let connection = app.connect_bluesky(&token, &peer).await;
    let post = publish(&app, &token, &campaign, &connection).await;
    let (uri, cid) = wait_until_published(&app, &token, &post).await;

    peer.like(&peer.bob, &uri, &cid).await;
    peer.reply(&peer.bob, &uri, &cid, "Here you go").await;

    // An hour on either side, in minutes.
    let now = Utc::now();
    let from = now - chrono::Duration::hours(1);
    let to = now + chrono::Duration::hours(1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let points = loop {
        let body = series(
            &app,
            &token,
            "postEngagement",
            "postId",
            &post,
            (from, to, 60),
        )
        .await;
        let points = body["data"]["postEngagement"]
            .as_array()
            .unwrap_or_else(|| panic!("postEngagement: {body}"))
            .clone();
        assert_eq!(points.len(), 120, "one point per minute");
        let last = &points[points.len() - 1];
        if last["likes"] == 1 && last["replies"] == 1 {
            break points;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "engagement not sampled in time: {last}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let last = &points[points.len() - 1];
    assert_eq!(last["reposts"], 0);
    assert_eq!(last["quotes"], 0);
    // Before the post existed, the series is zero.
    assert_eq!(points[0]["likes"], 0);
    let first: DateTime<Utc> = points[0]["at"].as_str().unwrap().parse().unwrap();
    assert_eq!(first.timestamp_micros(), from.timestamp_micros());

    let body = series(
        &app,
        &token,
        "campaignEngagement",
        "campaignId",
        &campaign,
        (from, to, 60),
    )
    .await;
    assert_eq!(
        body["data"]["campaignEngagement"],
        Value::Array(points.clone()),
        "the campaign sums its only post: {body}"
    );

    // Samples are events: rebuilding the read model gives the same series.
    let before = app.state.analytics.snapshot().await.unwrap();
    assert!(!before.is_empty());
    app.state
        .projectors
        .replay(Some("analytics"), Duration::from_secs(5), |_, _, _| {})
        .await
        .unwrap();
    let after = app.state.analytics.snapshot().await.unwrap();
    assert_eq!(after, before, "replayed samples equal the live ones");
    let body = series(
        &app,
        &token,
        "postEngagement",
        "postId",
        &post,
        (from, to, 60),
    )
    .await;
    assert_eq!(body["data"]["postEngagement"], Value::Array(points));
}

async fn bad_ranges_and_foreign_ids_are_refused(backend: Backend) {
    let peer = peer();
    let app = app(backend, &peer).await;
    let (token, _) = app.sign_up("Range Ltd", "editor@range.example.org").await;
    let (other, _) = app.sign_up("Other Ltd", "editor@other.example.org").await;
    let campaign = app.create_campaign(&token, "Launch").await;
    let post = app.create_post(&token, &campaign, "draft").await;
    let now = Utc::now();
    let hour = chrono::Duration::hours(1);
    let field = |body: &Value| body["errors"][0]["extensions"]["field"].clone();
    for (from, to, interval, bad) in [
        (now, now, 60, "to"),
        (now, now - hour, 60, "to"),
        (now - hour, now, 59, "interval"),
        (now - hour, now, 31 * 24 * 3600 + 1, "interval"),
        // 1,001 minutes.
        (now - chrono::Duration::minutes(1001), now, 60, "interval"),
    ] {
        let body = series(
            &app,
            &token,
            "postEngagement",
            "postId",
            &post,
            (from, to, interval),
        )
        .await;
        assert_eq!(error_code(&body), Some("VALIDATION"), "{body}");
        assert_eq!(field(&body), bad, "{body}");
    }
    // A draft has no samples: a flat zero line.
    let body = series(
        &app,
        &token,
        "postEngagement",
        "postId",
        &post,
        (now - hour, now, 600),
    )
    .await;
    let points = body["data"]["postEngagement"].as_array().unwrap();
    assert_eq!(points.len(), 6);
    assert!(points.iter().all(|p| p["likes"] == 0), "{body}");
    // Another tenant's ids do not exist for this one.
    for (query, arg, id) in [
        ("postEngagement", "postId", &post),
        ("campaignEngagement", "campaignId", &campaign),
    ] {
        let body = series(&app, &other, query, arg, id, (now - hour, now, 60)).await;
        assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    }
}
