//! `/ready` tells a load balancer the truth: not ready while the read
//! models are still catching up on what happened while the process was down.

use std::time::{Duration, Instant};

use domain::metadata::{Actor, EventMetadata};
use domain::user::UserCommand;
use projections::Scope;
use serde_json::Value;
use test_support::{Backend, TestApp, on_both_databases, spawn_app};
use uuid::Uuid;

async fn ready(app: &TestApp) -> (u16, Value) {
    let response = app
        .client
        .get(format!("{}/ready", app.address))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Every projection's lease, held by a live process elsewhere: nothing
/// here may advance the read models until it is given up.
async fn hold_every_lease_elsewhere(app: &TestApp) {
    sqlx::query("UPDATE projection_checkpoints SET lease_owner = 'elsewhere', lease_until = $1")
        .bind(i64::MAX)
        .execute(&app.state.db.any)
        .await
        .unwrap();
}

/// Appends events (new users) without waiting for the read models.
async fn append_users(app: &TestApp, n: usize) {
    let state = &app.state;
    for _ in 0..n {
        let user_id = Uuid::now_v7();
        let scope = Scope::User(user_id);
        let meta = EventMetadata::new(
            Uuid::now_v7(),
            Actor::User(user_id),
            Uuid::now_v7(),
            chrono::Utc::now(),
        );
        let command = UserCommand::Register {
            email: state
                .keyring
                .seal(&scope, "someone@example.org")
                .await
                .unwrap(),
            password_hash: state.keyring.seal(&scope, "hash").await.unwrap(),
            email_verified: false,
            replaces_unfinished: false,
        };
        state
            .users
            .execute(&user_id.to_string(), command, &meta)
            .await
            .unwrap();
    }
}

async fn ready_waits_until_the_read_models_caught_up_after_a_start(backend: Backend) {
    let url = backend.fresh().await;
    let first = spawn_app(&url).await;
    first.sign_up("Before", "owner@before.example.org").await;
    hold_every_lease_elsewhere(&first).await;
    append_users(&first, 5).await;
    first.stop().await;

    let second = spawn_app(&url).await;
    let (status, body) = ready(&second).await;
    assert_eq!(status, 503, "not ready while behind the log: {body}");
    assert_eq!(body["status"], "catching up", "{body}");

    sqlx::query("UPDATE projection_checkpoints SET lease_owner = NULL, lease_until = 0")
        .execute(&second.state.db.any)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = ready(&second).await;
        if status == 200 {
            assert_eq!(body["status"], "ready", "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

on_both_databases!(ready_waits_until_the_read_models_caught_up_after_a_start);
