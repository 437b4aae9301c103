//! Media: uploading images (type sniffed from the bytes, Bluesky's limits),
//! using them with alt text in a thread that is published to the real local
//! Bluesky network, and refusing to delete an image a post uses.

use std::time::Duration;

use chrono::Utc;
use herald_tests::peer::peer;
use herald_tests::{TestApp, error_code, fresh_sqlite, png, spawn_with};
use serde_json::{Value, json};
use uuid::Uuid;

async fn app() -> TestApp {
    let mut config = api::Config::new(&fresh_sqlite());
    config.publish_lease_seconds = 3;
    spawn_with(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_and_nothing_is_stored() {
    let app = app().await;
    let (token, _) = app.sign_up("Media Ltd", "editor@media.example.org").await;
    let before = app.event_count().await;

    let (status, body) = app
        .upload(Some(&token), "notes.png", b"%PDF-1.7 not an image")
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "VALIDATION");
    assert_eq!(body["error"]["field"], "file");

    // A real PNG, padded past Bluesky's 1,000,000 bytes.
    let mut big = png(4, 3);
    big.resize(1_000_001, 0);
    let (status, body) = app.upload(Some(&token), "big.png", &big).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1000000"),
        "{body}"
    );

    let (status, _) = app.upload(None, "a.png", &png(4, 3)).await;
    assert_eq!(status, 401);
    let viewer = app
        .add_member(&token, "viewer@media.example.org", "VIEWER")
        .await
        .0;
    let before_viewer = app.event_count().await;
    let (status, body) = app.upload(Some(&viewer), "a.png", &png(4, 3)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(app.event_count().await, before_viewer);
    assert!(before_viewer > before, "the invitation appended events");
    let list = app
        .gql(Some(&token), "{ mediaAssets { id } }", json!({}))
        .await;
    assert_eq!(list["data"]["mediaAssets"], json!([]), "{list}");
}

async fn create_post(app: &TestApp, token: &str, input: Value) -> Value {
    app.gql(
        Some(token),
        "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }",
        json!({ "i": input }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_with_images_and_alt_text_is_published_with_its_aspect_ratios() {
    let peer = peer();
    let app = app().await;
    let (token, _) = app
        .sign_up("Pictures Ltd", "editor@pictures.example.org")
        .await;
    let campaign = app.create_campaign(&token, "Pictures").await;
    let body = app
        .gql(
            Some(&token),
            "mutation($i: ConnectBlueskyInput!) { connectBluesky(input: $i) { id } }",
            json!({"i": {"handle": peer.alice.handle, "appPassword": peer.alice.app_password, "serviceUrl": peer.pds}}),
        )
        .await;
    let connection = body["data"]["connectBluesky"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let (status, wide) = app.upload(Some(&token), "wide.png", &png(40, 20)).await;
    assert_eq!(status, 201, "{wide}");
    assert_eq!(wide["mime"], "image/png");
    assert_eq!(
        (wide["width"].as_i64(), wide["height"].as_i64()),
        (Some(40), Some(20))
    );
    let (_, tall) = app.upload(Some(&token), "tall.png", &png(10, 30)).await;
    let (wide, tall) = (wide["id"].as_str().unwrap(), tall["id"].as_str().unwrap());

    // Bad input first: a fifth image, an unknown asset.
    let five: Vec<Value> = (0..5)
        .map(|_| json!({"assetId": wide, "alt": "x"}))
        .collect();
    let before = app.event_count().await;
    let body = create_post(
        &app,
        &token,
        json!({"campaignId": campaign, "connectionId": connection, "entries": [{"text": "five", "media": five}]}),
    )
    .await;
    assert_eq!(error_code(&body), Some("VALIDATION"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "entries.0.media");
    let body = create_post(
        &app,
        &token,
        json!({"campaignId": campaign, "connectionId": connection, "entries": [{"text": "ghost", "media": [{"assetId": Uuid::new_v4(), "alt": "x"}]}]}),
    )
    .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    assert_eq!(app.event_count().await, before);

    let marker = Uuid::new_v4().simple().to_string();
    let body = create_post(
        &app,
        &token,
        json!({"campaignId": campaign, "connectionId": connection, "entries": [
            {"text": format!("pictures {marker}"), "media": [
                {"assetId": wide, "alt": "A wide test pattern"},
                {"assetId": tall, "alt": "A tall test pattern"}]},
            {"text": "and one more", "media": [{"assetId": wide, "alt": "Again, wide"}]}]}),
    )
    .await;
    let post = body["data"]["createPost"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_string();
    // An image in use cannot be deleted.
    let body = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { deleteMedia(id: $id) { id } }",
            json!({"id": tall}),
        )
        .await;
    assert_eq!(error_code(&body), Some("CONFLICT"), "{body}");

    let body = app
        .gql(
            Some(&token),
            "mutation($i: SchedulePostInput!) { schedulePost(input: $i) { status } }",
            json!({"i": {"postId": post, "at": Utc::now() + chrono::Duration::seconds(2)}}),
        )
        .await;
    assert_eq!(body["data"]["schedulePost"]["status"], "PENDING", "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let published = loop {
        let body = app
            .gql(
                Some(&token),
                "query($id: ID!) { post(id: $id) { status lastError published { uri } } }",
                json!({"id": post}),
            )
            .await;
        if body["data"]["post"]["status"] == "DONE" {
            break body["data"]["post"]["published"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not published: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let rkey = |i: usize| {
        published[i]["uri"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string()
    };
    let (_, _, first) = peer
        .post(&peer.alice.did, &rkey(0))
        .await
        .expect("entry 0 on the PDS");
    let images = first["embed"]["images"]
        .as_array()
        .expect("an images embed");
    assert_eq!(first["embed"]["$type"], "app.bsky.embed.images");
    assert_eq!(images.len(), 2);
    assert_eq!(images[0]["alt"], "A wide test pattern");
    assert_eq!(images[0]["aspectRatio"], json!({"width": 40, "height": 20}));
    assert_eq!(images[1]["alt"], "A tall test pattern");
    assert_eq!(images[1]["aspectRatio"], json!({"width": 10, "height": 30}));
    assert_eq!(images[0]["image"]["mimeType"], "image/png");
    let (_, _, second) = peer
        .post(&peer.alice.did, &rkey(1))
        .await
        .expect("entry 1 on the PDS");
    assert_eq!(second["embed"]["images"][0]["alt"], "Again, wide");

    // Once the post is gone, its images may go too.
    let body = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { deletePost(id: $id) { id } }",
            json!({"id": post}),
        )
        .await;
    assert!(error_code(&body).is_none(), "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let body = app
            .gql(
                Some(&token),
                "mutation($id: ID!) { deleteMedia(id: $id) { id } }",
                json!({"id": tall}),
            )
            .await;
        if error_code(&body).is_none() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let list = app
        .gql(Some(&token), "{ mediaAssets { id } }", json!({}))
        .await;
    assert_eq!(
        list["data"]["mediaAssets"].as_array().unwrap().len(),
        1,
        "{list}"
    );
}
