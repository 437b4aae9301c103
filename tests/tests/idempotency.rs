//! `Idempotency-Key`: a write sent again with the same key is carried out
//! once, whether its first answer arrived or was lost.

use serde_json::{Value, json};
use test_support::{Backend, FormPart, TestApp, on_both_databases, png, spawn_app};

const CREATE: &str = "mutation($i: CampaignInput!) { createCampaign(input: $i) { id name } }";

fn campaign(name: &str) -> Value {
    json!({"i": {"name": name, "timeZone": "Europe/Berlin", "startsOn": "2026-01-01", "endsOn": "2030-12-31"}})
}

/// Sends `query` with `key`; returns status, `Idempotent-Replayed`, body.
async fn keyed(
    app: &TestApp,
    token: &str,
    key: &str,
    query: &str,
    variables: Value,
) -> (u16, bool, Value) {
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    (status, replayed, response.json().await.unwrap())
}

async fn campaigns(app: &TestApp, token: &str) -> Vec<String> {
    let body = app
        .gql(
            Some(token),
            "{ campaigns(first: 50) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    body["data"]["campaigns"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_string())
        .collect()
}

async fn a_repeated_key_returns_the_first_outcome(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    let (token, _) = app.sign_up("Keyed", "owner@keyed.example.org").await;

    let (status, replayed, first) = keyed(&app, &token, "k-1", CREATE, campaign("Spring")).await;
    assert_eq!((status, replayed), (200, false), "{first}");
    let id = first["data"]["createCampaign"]["id"].as_str().unwrap();
    let (status, replayed, again) = keyed(&app, &token, "k-1", CREATE, campaign("Spring")).await;
    assert_eq!((status, replayed), (200, true), "{again}");
    assert_eq!(again, first, "the same answer");
    assert_eq!(campaigns(&app, &token).await, vec![id.to_string()]);

    // Another body under the key is refused, and changes nothing.
    let (status, _, other) = keyed(&app, &token, "k-1", CREATE, campaign("Autumn")).await;
    assert_eq!(status, 409, "{other}");
    assert_eq!(other["error"]["code"], "CONFLICT", "{other}");
    assert_eq!(campaigns(&app, &token).await.len(), 1);

    // Keys belong to their tenant: another organisation's same key is its own.
    let (other_token, _) = app.sign_up("Other", "owner@other.example.org").await;
    let (status, replayed, theirs) =
        keyed(&app, &other_token, "k-1", CREATE, campaign("Spring")).await;
    assert_eq!((status, replayed), (200, false), "{theirs}");
    assert_ne!(
        theirs["data"]["createCampaign"]["id"],
        first["data"]["createCampaign"]["id"]
    );

    // A refusal is an outcome too: repeated, not run again.
    let bad = json!({"i": {"name": "", "timeZone": "Europe/Berlin", "startsOn": "2026-01-01", "endsOn": "2030-12-31"}});
    let (_, _, refused) = keyed(&app, &token, "k-2", CREATE, bad.clone()).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "VALIDATION",
        "{refused}"
    );
    let (_, replayed, _) = keyed(&app, &token, "k-2", CREATE, bad).await;
    assert!(replayed);

    // Queries are not keyed; a malformed key is refused.
    let (status, replayed, _) = keyed(&app, &token, "k-1", "{ me { email } }", json!({})).await;
    assert_eq!((status, replayed), (200, false));
    let (status, _, body) = keyed(&app, &token, "has space", CREATE, campaign("X")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "Idempotency-Key", "{body}");
}

/// The first attempt committed but its answer was lost (the database went
/// away before it could be kept): the retry runs again, and finds what the
/// first attempt made instead of making it twice.
async fn a_retry_after_a_lost_answer_makes_nothing_twice(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    let (token, _) = app.sign_up("Lost", "owner@lost.example.org").await;
    let (_, _, first) = keyed(&app, &token, "lost-1", CREATE, campaign("Once")).await;
    let id = first["data"]["createCampaign"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    sqlx::query("UPDATE idempotency_keys SET status = NULL, content_type = NULL, body = NULL")
        .execute(&app.state.db.any)
        .await
        .unwrap();
    let events = app.event_count().await;

    let (status, replayed, again) = keyed(&app, &token, "lost-1", CREATE, campaign("Once")).await;
    assert_eq!((status, replayed), (200, false), "it ran again: {again}");
    assert_eq!(
        again["data"]["createCampaign"]["id"],
        id.as_str(),
        "{again}"
    );
    assert_eq!(app.event_count().await, events, "no event appended twice");
    assert_eq!(campaigns(&app, &token).await, vec![id]);

    // A command on an existing aggregate is not applied twice either.
    let rename = "mutation($id: ID!) { archiveCampaign(id: $id) { id status } }";
    let vars = json!({"id": again["data"]["createCampaign"]["id"]});
    let (_, _, archived) = keyed(&app, &token, "lost-2", rename, vars.clone()).await;
    assert_eq!(
        archived["data"]["archiveCampaign"]["status"], "ARCHIVED",
        "{archived}"
    );
    sqlx::query("UPDATE idempotency_keys SET status = NULL, content_type = NULL, body = NULL")
        .execute(&app.state.db.any)
        .await
        .unwrap();
    let events = app.event_count().await;
    let (_, _, again) = keyed(&app, &token, "lost-2", rename, vars).await;
    assert_eq!(
        again["data"]["archiveCampaign"]["status"], "ARCHIVED",
        "{again}"
    );
    assert_eq!(app.event_count().await, events);
}

async fn rest_writes_take_keys_too(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    let (token, _) = app.sign_up("Rest", "owner@rest.example.org").await;
    let image = png(4, 4);
    let (boundary, body) = test_support::client::form_body(&[FormPart {
        name: "file",
        filename: Some("a.png"),
        bytes: &image,
    }]);
    let send = || async {
        let response = app
            .client
            .post(format!("{}/api/v1/media", app.address))
            .bearer_auth(&token)
            .header("idempotency-key", "upload-1")
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let replayed = response.headers().get("idempotent-replayed").is_some();
        let status = response.status().as_u16();
        (status, replayed, response.json::<Value>().await.unwrap())
    };
    let (status, replayed, first) = send().await;
    assert_eq!((status, replayed), (201, false), "{first}");
    let (status, replayed, again) = send().await;
    assert_eq!((status, replayed), (201, true), "{again}");
    assert_eq!(first, again);
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM events WHERE aggregate_type = 'MediaAsset'")
            .fetch_one(&app.state.db.any)
            .await
            .unwrap();
    assert_eq!(n, 1, "one upload");
}

on_both_databases!(
    a_repeated_key_returns_the_first_outcome,
    a_retry_after_a_lost_answer_makes_nothing_twice,
    rest_writes_take_keys_too,
);
