//! Publishing to the real local Bluesky network: connecting an account,
//! a scheduled thread appearing once with its thread structure, a post
//! cancelled a second before its time never appearing, recurrence, and a
//! connection whose credentials stop working.

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use serde_json::{Value, json};
use test_support::peer::{Peer, peer};
use test_support::{Backend, TestApp, error_code, on_both_databases, spawn_with};
use uuid::Uuid;

on_both_databases!(
    a_scheduled_thread_appears_once_on_time_as_a_thread,
    a_post_cancelled_a_second_before_its_time_never_appears,
);

async fn app(backend: Backend) -> TestApp {
    let mut config = api::Settings::for_database(&backend.fresh().await);
    config.publishing.lease_seconds = 3;
    config.publishing.retry_base_ms = 200;
    spawn_with(config).await
}

/// Connects `account` (by handle, at the peer's PDS); returns the connection id.
async fn connect(
    app: &TestApp,
    token: &str,
    peer: &Peer,
    handle: &str,
    app_password: &str,
) -> Value {
    app.gql(
        Some(token),
        "mutation($i: ConnectBlueskyInput!) { connectBluesky(input: $i) { id handle did status reason serviceUrl } }",
        json!({"i": {"handle": handle, "appPassword": app_password, "serviceUrl": peer.pds}}),
    )
    .await
}

async fn create_post(
    app: &TestApp,
    token: &str,
    campaign: &str,
    connection: &str,
    texts: &[&str],
) -> String {
    let entries: Vec<Value> = texts
        .iter()
        .map(|t| json!({"text": t, "langs": ["en"]}))
        .collect();
    let body = app
        .gql(
            Some(token),
            "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }",
            json!({"i": {"campaignId": campaign, "connectionId": connection, "entries": entries}}),
        )
        .await;
    body["data"]["createPost"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("createPost failed: {body}"))
        .to_string()
}

async fn schedule(app: &TestApp, token: &str, post: &str, at: DateTime<Utc>, rule: Option<&str>) {
    let body = app
        .gql(
            Some(token),
            "mutation($i: SchedulePostInput!) { schedulePost(input: $i) { status } }",
            json!({"i": {"postId": post, "at": at, "recurrence": rule}}),
        )
        .await;
    assert_eq!(body["data"]["schedulePost"]["status"], "PENDING", "{body}");
}

const POST_FIELDS: &str =
    "id status attempts lastError nextRetryAt nextRunAt published { index uri cid url warnings }";

async fn post(app: &TestApp, token: &str, id: &str) -> Value {
    let body = app
        .gql(
            Some(token),
            &format!("query($id: ID!) {{ post(id: $id) {{ {POST_FIELDS} }} }}"),
            json!({"id": id}),
        )
        .await;
    body["data"]["post"].clone()
}

/// Polls until the post satisfies `done`, or panics after `timeout`.
async fn wait_for(
    app: &TestApp,
    token: &str,
    id: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let p = post(app, token, id).await;
        if done(&p) {
            return p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out; post is {p}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rkey_of(uri: &str) -> &str {
    uri.rsplit('/').next().unwrap()
}

async fn a_scheduled_thread_appears_once_on_time_as_a_thread(backend: Backend) {
    let peer = peer();
    let app = app(backend).await;
    let (token, _) = app.sign_up("Thread Ltd", "editor@thread.example.org").await;
    let campaign = app.create_campaign(&token, "Launch").await;
    let connection = connect(
        &app,
        &token,
        &peer,
        &peer.alice.handle,
        &peer.alice.app_password,
    )
    .await;
    assert_eq!(
        connection["data"]["connectBluesky"]["status"], "ACTIVE",
        "{connection}"
    );
    assert_eq!(
        connection["data"]["connectBluesky"]["did"],
        peer.alice.did.as_str()
    );
    let connection = connection["data"]["connectBluesky"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let marker = Uuid::new_v4().simple().to_string();
    let first = format!(
        "Launch day {marker} with @{} and @nobody-{marker}.test https://example.com/launch #herald",
        peer.bob.handle
    );
    let texts = [first.as_str(), "second entry", "third entry"];
    let id = create_post(&app, &token, &campaign, &connection, &texts).await;
    let due = Utc::now() + chrono::Duration::seconds(3);
    schedule(&app, &token, &id, due, None).await;

    let done = wait_for(&app, &token, &id, Duration::from_secs(30), |p| {
        p["status"] == "DONE"
    })
    .await;
    let published = done["published"].as_array().unwrap().clone();
    assert_eq!(published.len(), 3, "{done}");
    assert_eq!(done["attempts"], 1);
    assert!(done["lastError"].is_null());

    // On the PDS: three records, in thread order, replying root/parent.
    let mut refs = Vec::new();
    for (i, entry) in published.iter().enumerate() {
        assert_eq!(entry["index"], i);
        let uri = entry["uri"].as_str().unwrap();
        assert!(uri.starts_with(&format!("at://{}/app.bsky.feed.post/", peer.alice.did)));
        assert_eq!(
            entry["url"].as_str().unwrap(),
            format!(
                "https://bsky.app/profile/{}/post/{}",
                peer.alice.did,
                rkey_of(uri)
            )
        );
        let (stored_uri, cid, record) = peer
            .post(&peer.alice.did, rkey_of(uri))
            .await
            .unwrap_or_else(|| panic!("entry {i} is not on the PDS"));
        assert_eq!(stored_uri, uri);
        assert_eq!(cid, entry["cid"].as_str().unwrap());
        assert_eq!(record["text"], texts[i]);
        refs.push((uri.to_string(), cid, record));
    }
    assert!(refs[0].2["reply"].is_null());
    for i in 1..3 {
        assert_eq!(refs[i].2["reply"]["root"]["uri"], refs[0].0.as_str());
        assert_eq!(refs[i].2["reply"]["root"]["cid"], refs[0].1.as_str());
        assert_eq!(refs[i].2["reply"]["parent"]["uri"], refs[i - 1].0.as_str());
        assert_eq!(refs[i].2["reply"]["parent"]["cid"], refs[i - 1].1.as_str());
    }
    // Facets: the mention carries bob's DID, resolved at publish time.
    let facets = refs[0].2["facets"].as_array().unwrap();
    let feature = |t: &str| {
        facets
            .iter()
            .flat_map(|f| f["features"].as_array().unwrap().iter())
            .find(|f| f["$type"] == t)
            .cloned()
    };
    assert_eq!(
        feature("app.bsky.richtext.facet#mention").unwrap()["did"],
        peer.bob.did.as_str()
    );
    assert_eq!(
        feature("app.bsky.richtext.facet#link").unwrap()["uri"],
        "https://example.com/launch"
    );
    assert_eq!(
        feature("app.bsky.richtext.facet#tag").unwrap()["tag"],
        "herald"
    );
    // The unresolvable mention went out as plain text, with a warning.
    let mentions = facets
        .iter()
        .flat_map(|f| f["features"].as_array().unwrap().iter())
        .filter(|f| f["$type"] == "app.bsky.richtext.facet#mention")
        .count();
    assert_eq!(mentions, 1);
    let warnings = published[0]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{done}");
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .contains(&format!("nobody-{marker}.test"))
    );
    assert_eq!(published[1]["warnings"], json!([]));
    // Published once: exactly one record in the repository carries the marker.
    let copies = peer
        .posts(&peer.alice.did)
        .await
        .into_iter()
        .filter(|(_, r)| r["text"].as_str().unwrap_or_default().contains(&marker))
        .count();
    assert_eq!(copies, 1);
    // On time: not before it was due.
    let created_at: DateTime<Utc> = refs[0].2["createdAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(created_at.timestamp_millis(), due.timestamp_millis());

    // The connection lists as ACTIVE.
    let list = app
        .gql(
            Some(&token),
            "{ connections { id handle status } }",
            json!({}),
        )
        .await;
    assert_eq!(list["data"]["connections"][0]["status"], "ACTIVE", "{list}");

    // deletePublishedPost removes every entry from the PDS.
    let body = app
        .gql(
            Some(&token),
            &format!("mutation($id: ID!) {{ deletePublishedPost(id: $id) {{ {POST_FIELDS} }} }}"),
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        body["data"]["deletePublishedPost"]["published"],
        json!([]),
        "{body}"
    );
    for (uri, _, _) in &refs {
        assert!(
            peer.post(&peer.alice.did, rkey_of(uri)).await.is_none(),
            "{uri} still exists"
        );
    }
}

async fn a_post_cancelled_a_second_before_its_time_never_appears(backend: Backend) {
    let peer = peer();
    let app = app(backend).await;
    let (token, _) = app.sign_up("Cancel Ltd", "editor@cancel.example.org").await;
    let campaign = app.create_campaign(&token, "Oops").await;
    let connection = connect(
        &app,
        &token,
        &peer,
        &peer.alice.handle,
        &peer.alice.app_password,
    )
    .await;
    let connection = connection["data"]["connectBluesky"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let marker = Uuid::new_v4().simple().to_string();
    let id = create_post(
        &app,
        &token,
        &campaign,
        &connection,
        &[&format!("never {marker}")],
    )
    .await;
    let due = Utc::now() + chrono::Duration::seconds(2);
    schedule(&app, &token, &id, due, None).await;
    tokio::time::sleep_until(
        tokio::time::Instant::now()
            + (due - Utc::now() - chrono::Duration::seconds(1))
                .to_std()
                .unwrap(),
    )
    .await;
    let body = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { cancelPost(id: $id) { status } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(body["data"]["cancelPost"]["status"], "CANCELLED", "{body}");
    // Well past its time, nothing was published.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let p = post(&app, &token, &id).await;
    assert_eq!(p["status"], "CANCELLED");
    assert_eq!(p["published"], json!([]));
    let rkey = domain::rkey::record_key(id.parse().unwrap(), due, 0);
    assert!(peer.post(&peer.alice.did, rkey.as_str()).await.is_none());
    assert!(
        !peer
            .posts(&peer.alice.did)
            .await
            .iter()
            .any(|(_, r)| r["text"].as_str().unwrap_or_default().contains(&marker))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_or_handle_are_refused_and_nothing_is_saved() {
    let peer = peer();
    let app = app(Backend::Sqlite).await;
    let (token, _) = app.sign_up("Wrong Ltd", "editor@wrong.example.org").await;
    let before = app.event_count().await;
    let secret = "wron-gpas-swor-d123";
    let body = connect(&app, &token, &peer, &peer.alice.handle, secret).await;
    assert_eq!(error_code(&body), Some("VALIDATION"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "appPassword");
    assert!(!body.to_string().contains(secret));
    let body = connect(
        &app,
        &token,
        &peer,
        "nobody-here.test",
        &peer.alice.app_password,
    )
    .await;
    assert_eq!(error_code(&body), Some("VALIDATION"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "handle");
    let body = connect(
        &app,
        &token,
        &peer,
        "not a handle",
        &peer.alice.app_password,
    )
    .await;
    assert_eq!(error_code(&body), Some("VALIDATION"), "{body}");
    assert_eq!(app.event_count().await, before, "nothing is stored");
    let list = app
        .gql(Some(&token), "{ connections { id } }", json!({}))
        .await;
    assert_eq!(list["data"]["connections"], json!([]));

    // A connection of another tenant behaves as if it did not exist.
    let (other, _) = app.sign_up("Other Ltd", "editor@other.example.org").await;
    let theirs = connect(
        &app,
        &other,
        &peer,
        &peer.alice.handle,
        &peer.alice.app_password,
    )
    .await;
    let theirs = theirs["data"]["connectBluesky"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let campaign = app.create_campaign(&token, "Mine").await;
    let before = app.event_count().await;
    let body = app
        .gql(
            Some(&token),
            "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }",
            json!({"i": {"campaignId": campaign, "connectionId": theirs, "entries": [{"text": "hi"}]}}),
        )
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    assert_eq!(app.event_count().await, before);
    // Credentials are sealed: the app password is nowhere in the database.
    let rows: Vec<(String,)> = sqlx::query_as("SELECT CAST(payload AS TEXT) FROM events")
        .fetch_all(&app.state.db.any)
        .await
        .unwrap();
    assert!(
        rows.iter()
            .all(|(p,)| !p.contains(&peer.alice.app_password))
    );
    let sessions: Vec<(String,)> = sqlx::query_as("SELECT session FROM connection_sessions")
        .fetch_all(&app.state.db.any)
        .await
        .unwrap();
    assert!(!sessions.is_empty());
    assert!(
        sessions
            .iter()
            .all(|(s,)| !s.contains("accessJwt") && !s.contains(&peer.alice.did))
    );

    // A disconnected connection takes no new posts.
    let body = app
        .gql(
            Some(&other),
            "mutation($id: ID!) { disconnectConnection(id: $id) { status } }",
            json!({"id": theirs}),
        )
        .await;
    assert_eq!(
        body["data"]["disconnectConnection"]["status"], "REVOKED",
        "{body}"
    );
    let their_campaign = app.create_campaign(&other, "Theirs").await;
    let before = app.event_count().await;
    let body = app
        .gql(
            Some(&other),
            "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }",
            json!({"i": {"campaignId": their_campaign, "connectionId": theirs, "entries": [{"text": "hi"}]}}),
        )
        .await;
    assert_eq!(error_code(&body), Some("CONFLICT"), "{body}");
    assert_eq!(
        body["errors"][0]["message"], "the connection was disconnected",
        "{body}"
    );
    assert_eq!(app.event_count().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_credentials_degrade_the_connection_and_its_posts_wait_without_spending_attempts() {
    let peer = peer();
    let app = app(Backend::Sqlite).await;
    let (token, _) = app
        .sign_up("Degraded Ltd", "editor@degraded.example.org")
        .await;
    let campaign = app.create_campaign(&token, "Waits").await;
    let name = format!("herald-{}", Uuid::new_v4().simple());
    let password = peer.create_app_password(&peer.bob, &name).await;
    let body = connect(&app, &token, &peer, &peer.bob.handle, &password).await;
    let connection = body["data"]["connectBluesky"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The app password is revoked. The session Herald cached would still
    // work until its access token expires (hours): drop it, as expiry would.
    peer.revoke_app_password(&peer.bob, &name).await;
    app.state.accounts.forget(connection.parse().unwrap()).await;
    let marker = Uuid::new_v4().simple().to_string();
    let id = create_post(
        &app,
        &token,
        &campaign,
        &connection,
        &[&format!("waits {marker}")],
    )
    .await;
    schedule(
        &app,
        &token,
        &id,
        Utc::now() + chrono::Duration::seconds(2),
        None,
    )
    .await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let degraded = loop {
        let list = app
            .gql(
                Some(&token),
                "{ connections { id status reason } }",
                json!({}),
            )
            .await;
        let c = list["data"]["connections"][0].clone();
        if c["status"] == "DEGRADED" {
            break c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never degraded: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!degraded["reason"].as_str().unwrap().is_empty());
    // The post waits, PENDING, without spending its attempts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting = post(&app, &token, &id).await;
    assert_eq!(waiting["status"], "PENDING", "{waiting}");
    assert_eq!(waiting["attempts"], 0, "{waiting}");
    assert!(waiting["lastError"].as_str().unwrap().starts_with("AUTH"));

    // Reconnecting with a working app password publishes it.
    let fresh = peer
        .create_app_password(&peer.bob, &format!("{name}-2"))
        .await;
    let body = connect(&app, &token, &peer, &peer.bob.handle, &fresh).await;
    assert_eq!(body["data"]["connectBluesky"]["status"], "ACTIVE", "{body}");
    let done = wait_for(&app, &token, &id, Duration::from_secs(30), |p| {
        p["status"] == "DONE"
    })
    .await;
    let uri = done["published"][0]["uri"].as_str().unwrap();
    assert!(peer.post(&peer.bob.did, rkey_of(uri)).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recurring_post_publishes_its_occurrence_and_waits_for_the_next() {
    let peer = peer();
    let app = app(Backend::Postgres).await;
    let (token, _) = app.sign_up("Daily Ltd", "editor@daily.example.org").await;
    let campaign = app.create_campaign(&token, "Daily").await;
    let body = connect(
        &app,
        &token,
        &peer,
        &peer.alice.handle,
        &peer.alice.app_password,
    )
    .await;
    let connection = body["data"]["connectBluesky"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let id = create_post(&app, &token, &campaign, &connection, &["every day"]).await;
    // Whole seconds: RRULE times have no fractions.
    let due = Utc::now().with_nanosecond(0).unwrap() + chrono::Duration::seconds(3);
    schedule(&app, &token, &id, due, Some("FREQ=DAILY")).await;
    let next = wait_for(&app, &token, &id, Duration::from_secs(30), |p| {
        p["published"].as_array().is_some_and(|a| a.len() == 1) && p["status"] == "PENDING"
    })
    .await;
    let next_run: DateTime<Utc> = next["nextRunAt"].as_str().unwrap().parse().unwrap();
    // The next day at the same local time (Europe/Berlin; no DST change here
    // unless the test runs on one, where the local time is what stays).
    let local = |t: DateTime<Utc>| t.with_timezone(&chrono_tz::Europe::Berlin).time();
    assert_eq!(local(next_run), local(due));
    assert!(next_run - due >= chrono::Duration::hours(23));
}
