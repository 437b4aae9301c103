//! A mutation answers once the read models its answer reads show the
//! change, and waits for no other; queries of the read models that follow
//! at their own pace (the audit log) still show the caller's own writes.

use std::time::{Duration, Instant};

use serde_json::json;
use test_support::{Backend, TestApp, on_both_databases, spawn_app};

/// The lease of `projection`, held by a live process elsewhere: nothing
/// here may advance it until it is given back.
async fn hold_lease_elsewhere(app: &TestApp, projection: &str) {
    let held = sqlx::query(
        "UPDATE projection_checkpoints SET lease_owner = 'elsewhere', lease_until = $1 WHERE name = $2",
    )
    .bind(i64::MAX)
    .bind(projection)
    .execute(&app.state.db.any)
    .await
    .unwrap();
    assert_eq!(held.rows_affected(), 1, "{projection} has a checkpoint row");
}

async fn give_lease_back(db: &sqlx::AnyPool, projection: &str) {
    sqlx::query(
        "UPDATE projection_checkpoints SET lease_owner = NULL, lease_until = 0 WHERE name = $1",
    )
    .bind(projection)
    .execute(db)
    .await
    .unwrap();
}

async fn a_mutation_waits_only_for_the_read_models_its_answer_reads(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    let (token, _) = app.sign_up("Acme", "ada@example.org").await;
    let campaign = app.create_campaign(&token, "Spring").await;
    app.settled().await;
    hold_lease_elsewhere(&app, "audit").await;
    hold_lease_elsewhere(&app, "analytics").await;

    // Before, every mutation waited for every projection: this one would
    // have answered only after the 15 s wait gave up.
    let started = Instant::now();
    let post = app.create_post(&token, &campaign, "Hello, spring").await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "createPost waited for read models it does not read: {took:?}"
    );
    let body = app
        .gql(
            Some(&token),
            "query($id: ID!) { post(id: $id) { id entries { text } } }",
            json!({"id": post}),
        )
        .await;
    assert_eq!(
        body["data"]["post"]["entries"][0]["text"], "Hello, spring",
        "the answer's read model shows the post: {body}"
    );

    // The audit log is behind, but its query waits for the caller's writes.
    let release = {
        let db = app.state.db.any.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            give_lease_back(&db, "audit").await;
        })
    };
    let body = app
        .gql(
            Some(&token),
            "query { auditLog(filter: {action: \"PostCreated\"}, first: 10) { edges { node { action target } } } }",
            json!({}),
        )
        .await;
    release.await.unwrap();
    let edges = body["data"]["auditLog"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(
        edges.len(),
        1,
        "the caller's post is in its audit log: {body}"
    );
    assert!(
        edges[0]["node"]["target"]
            .as_str()
            .is_some_and(|t| t.contains(post.as_str())),
        "{body}"
    );
    give_lease_back(&app.state.db.any, "analytics").await;
}

on_both_databases!(a_mutation_waits_only_for_the_read_models_its_answer_reads);
