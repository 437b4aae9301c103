//! Media: uploading images over REST and GraphQL (type sniffed from the
//! bytes, Bluesky's limits), using them with alt text in a thread that is
//! published to the real local Bluesky network, campaigns that require alt
//! text, refusing to delete an image a post uses, decoding every upload
//! (a header that lies about the size or the format is refused) and storing
//! a sanitised display name instead of the client's path.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use test_support::peer::peer;
use test_support::{
    Backend, FormPart, TestApp, UPLOAD_MEDIA, error_code, fresh_sqlite, gif, jpeg,
    on_both_databases, png, png_claiming, spawn_with,
};
use uuid::Uuid;

on_both_databases!(
    images_whose_bytes_lie_are_refused_and_nothing_is_stored,
    genuine_png_jpeg_and_gif_images_upload,
    file_names_are_stored_as_sanitised_display_names,
);

async fn app() -> TestApp {
    app_and_media_dir().await.0
}

/// An app and the directory its object store keeps files in.
async fn app_and_media_dir() -> (TestApp, PathBuf) {
    app_on(&fresh_sqlite()).await
}

/// An app on `database_url` and the directory its object store keeps files in.
async fn app_on(database_url: &str) -> (TestApp, PathBuf) {
    let mut config = api::Settings::for_database(database_url);
    config.publishing.lease_seconds = 3;
    let media = config.data_dir.join("media");
    (spawn_with(config).await, media)
}

async fn images_whose_bytes_lie_are_refused_and_nothing_is_stored(backend: Backend) {
    let (app, media) = app_on(&backend.fresh().await).await;
    let (token, _) = app
        .sign_up("Forgery Ltd", "editor@forgery.example.org")
        .await;
    let before = app.event_count().await;

    let mut truncated = png(40, 20);
    truncated.truncate(truncated.len() - 200);
    let lies: [(&str, Vec<u8>); 5] = [
        // 2³¹−1 pixels per side, claimed by a well-formed header.
        ("huge.png", png_claiming(i32::MAX as u32, i32::MAX as u32)),
        // Within each side's limit, but 400 megapixels in all.
        ("wide.png", png_claiming(16_000, 25_000)),
        // A GIF signature in front of a web page.
        (
            "page.gif",
            b"GIF89a<html><body><script>alert(document.cookie)</script></body></html>".to_vec(),
        ),
        // A real PNG with its image data cut off.
        ("cut.png", truncated),
        // A JPEG start-of-image marker and nothing of a JPEG after it.
        (
            "fake.jpg",
            b"\xFF\xD8\xFF\xE0<?php system($_GET['c']); ?>".to_vec(),
        ),
    ];
    for (name, bytes) in &lies {
        let (status, body) = app.upload(Some(&token), name, bytes).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert_eq!(body["error"]["code"], "VALIDATION", "{name}: {body}");
        assert_eq!(body["error"]["field"], "file", "{name}: {body}");
        let (status, body) = app.upload_graphql(Some(&token), name, bytes).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(error_code(&body), Some("VALIDATION"), "{name}: {body}");
        assert!(body["data"]["uploadMedia"].is_null(), "{name}: {body}");
    }
    let (_, body) = app.upload(Some(&token), "huge.png", &lies[0].1).await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("16384"), "the limit is named: {body}");

    assert_eq!(app.event_count().await, before, "nothing recorded");
    assert_eq!(files_in(&media), 0, "nothing stored");
    let list = app
        .gql(Some(&token), "{ mediaAssets { id } }", json!({}))
        .await;
    assert_eq!(list["data"]["mediaAssets"], json!([]), "{list}");
}

async fn genuine_png_jpeg_and_gif_images_upload(backend: Backend) {
    let (app, media) = app_on(&backend.fresh().await).await;
    let (token, _) = app
        .sign_up("Genuine Ltd", "editor@genuine.example.org")
        .await;
    let images = [
        ("a.png", png(40, 20), "image/png", (40, 20)),
        ("b.jpg", jpeg(32, 24), "image/jpeg", (32, 24)),
        ("c.gif", gif(16, 8), "image/gif", (16, 8)),
    ];
    for (name, bytes, mime, (width, height)) in &images {
        let (status, body) = app.upload(Some(&token), name, bytes).await;
        assert_eq!(status, 201, "{name}: {body}");
        assert_eq!(body["mime"], *mime, "{body}");
        assert_eq!(body["size"], bytes.len(), "{body}");
        assert_eq!(
            (body["width"].as_u64(), body["height"].as_u64()),
            (Some(*width), Some(*height))
        );
        assert_eq!(body["filename"], *name);
    }
    let (status, body) = app.upload_graphql(Some(&token), "d.jpg", &jpeg(9, 7)).await;
    assert_eq!(status, 200, "{body}");
    assert!(error_code(&body).is_none(), "{body}");
    assert_eq!(body["data"]["uploadMedia"]["mime"], "image/jpeg", "{body}");
    assert_eq!(files_in(&media), 4);
}

async fn file_names_are_stored_as_sanitised_display_names(backend: Backend) {
    let (app, _) = app_on(&backend.fresh().await).await;
    let (token, _) = app.sign_up("Names Ltd", "editor@names.example.org").await;
    let long = format!("{}.png", "é".repeat(10_000));
    let cases = [
        ("../../../../x.png".to_string(), "x.png".to_string()),
        ("/etc/cron.d/x.png".to_string(), "x.png".to_string()),
        ("reports/2024/q1.png".to_string(), "q1.png".to_string()),
        ("..".to_string(), "image".to_string()),
        ("  ".to_string(), "image".to_string()),
        // Cut to 255 characters (two bytes each here), on a character boundary.
        (long, "é".repeat(255)),
    ];
    for (sent, stored) in &cases {
        let (status, body) = app.upload(Some(&token), sent, &png(4, 3)).await;
        assert_eq!(status, 201, "{sent}: {body}");
        assert_eq!(body["filename"], *stored, "REST answer for {sent:.40}");
        let id = body["id"].as_str().unwrap();
        let read = app
            .gql(
                Some(&token),
                "query($id: ID!) { mediaAsset(id: $id) { filename } }",
                json!({"id": id}),
            )
            .await;
        assert_eq!(read["data"]["mediaAsset"]["filename"], *stored, "{read}");
    }
    let (_, body) = app
        .upload_graphql(Some(&token), "../../../../y.png", &png(4, 3))
        .await;
    assert_eq!(body["data"]["uploadMedia"]["filename"], "y.png", "{body}");
}

/// Number of files under `dir` (none when it does not exist).
fn files_in(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { files_in(&p) } else { 1 })
        .sum()
}

/// Sends the head of a POST to `/graphql` that declares `length` bytes of
/// multipart body, and a few bytes of it; returns the status line of the
/// answer, which must come without the rest of the body.
fn declare_multipart_body(address: &str, token: &str, length: u64) -> String {
    let address = address.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {length}\r\n\r\n\
         --b\r\nContent-Disposition: form-data; name=\"0\"; filename=\"huge.png\"\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&png(4, 3)).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream
            .read(&mut buf)
            .expect("an answer before the body is complete");
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or_default().to_string()
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
    let connection = app.connect_bluesky(&token, &peer).await;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_media_records_an_image_as_the_rest_route_does() {
    let (app, media) = app_and_media_dir().await;
    let (token, _) = app
        .sign_up("Gallery Ltd", "editor@gallery.example.org")
        .await;
    let image = png(40, 20);

    let (status, body) = app.upload_graphql(Some(&token), "wide.png", &image).await;
    assert_eq!(status, 200, "{body}");
    assert!(error_code(&body).is_none(), "{body}");
    let asset = &body["data"]["uploadMedia"];
    assert_eq!(asset["mime"], "image/png");
    assert_eq!(asset["size"], image.len());
    assert_eq!(
        (asset["width"].as_i64(), asset["height"].as_i64()),
        (Some(40), Some(20))
    );
    assert_eq!(asset["filename"], "wide.png");
    assert!(asset["createdAt"].is_string(), "{body}");
    let id = asset["id"].as_str().unwrap().to_string();
    assert_eq!(files_in(&media), 1);

    // The REST route judges the same bytes the same way.
    let (status, rest) = app.upload(Some(&token), "wide.png", &image).await;
    assert_eq!(status, 201, "{rest}");
    for field in ["mime", "size", "width", "height", "filename"] {
        assert_eq!(rest[field], asset[field], "{field}");
    }

    // It is listed and can be used in a post.
    let body = app
        .gql(
            Some(&token),
            "query($id: ID!) { mediaAsset(id: $id) { id filename } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(body["data"]["mediaAsset"]["filename"], "wide.png", "{body}");
    let campaign = app.create_campaign(&token, "Gallery").await;
    let body = create_post(
        &app,
        &token,
        json!({"campaignId": campaign, "entries": [{"text": "Look", "media": [{"assetId": id, "alt": "A test pattern"}]}]}),
    )
    .await;
    assert!(body["data"]["createPost"]["id"].is_string(), "{body}");

    // Same permission as the REST route: editors yes, viewers and strangers no.
    let viewer = app
        .add_member(&token, "viewer@gallery.example.org", "VIEWER")
        .await
        .0;
    let before = app.event_count().await;
    let (_, body) = app.upload_graphql(Some(&viewer), "a.png", &image).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    let (_, body) = app.upload_graphql(None, "a.png", &image).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");
    assert_eq!(app.event_count().await, before);
    assert_eq!(files_in(&media), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_graphql_uploads_are_refused_and_nothing_is_stored() {
    let (app, media) = app_and_media_dir().await;
    let (token, _) = app.sign_up("Media Ltd", "editor@media.example.org").await;
    let before = app.event_count().await;
    let refused = |body: &Value, field: &str| {
        assert!(body["data"].is_null(), "{body}");
        assert_eq!(error_code(body), Some("VALIDATION"), "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    };

    let (_, body) = app
        .upload_graphql(Some(&token), "notes.png", b"%PDF-1.7 not an image")
        .await;
    refused(&body, "file");

    // A real PNG, padded past Bluesky's 1,000,000 bytes; and one past the
    // body limit of other GraphQL requests (1 MiB), which uploads do not
    // have: both get the REST route's error.
    for size in [1_000_001, 3_000_000] {
        let mut big = png(4, 3);
        big.resize(size, 0);
        let (status, body) = app.upload_graphql(Some(&token), "big.png", &big).await;
        assert_eq!(status, 200, "{body}");
        refused(&body, "file");
        let (_, rest) = app.upload(Some(&token), "big.png", &big).await;
        assert_eq!(body["errors"][0]["message"], rest["error"]["message"]);
        assert!(
            rest["error"]["message"]
                .as_str()
                .unwrap()
                .contains("1000000"),
            "{rest}"
        );
    }

    // No file: the variable left null, or a map naming a part that is not there.
    let (_, body) = app
        .gql_multipart(Some(&token), UPLOAD_MEDIA, json!({"file": null}), &[])
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION"), "{body}");
    assert!(body["data"].is_null(), "{body}");
    let operations = json!({"query": UPLOAD_MEDIA, "variables": {"file": null}}).to_string();
    let (status, body) = app
        .post_form(
            "/graphql",
            Some(&token),
            &[
                FormPart {
                    name: "operations",
                    filename: None,
                    bytes: operations.as_bytes(),
                },
                FormPart {
                    name: "map",
                    filename: None,
                    bytes: br#"{"0": ["variables.file"]}"#,
                },
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "BAD_REQUEST", "{body}");
    assert_eq!(body["error"]["field"], "map", "{body}");

    // A plain JSON request cannot point at an upload it did not send.
    for forged in ["#__graphql_file__:0", "#__graphql_file__:x"] {
        let body = app
            .gql(Some(&token), UPLOAD_MEDIA, json!({"file": forged}))
            .await;
        assert_eq!(error_code(&body), Some("VALIDATION"), "{body}");
        let inline = format!("mutation {{ uploadMedia(file: \"{forged}\") {{ id }} }}");
        let body = app.gql(Some(&token), &inline, json!({})).await;
        assert_eq!(error_code(&body), Some("VALIDATION"), "{body}");
    }

    // The operation itself has the limit of any GraphQL request.
    let padded = format!("{}{UPLOAD_MEDIA}", " ".repeat(1024 * 1024 + 1));
    let (status, body) = app
        .gql_multipart(
            Some(&token),
            &padded,
            json!({"file": null}),
            &[("variables.file", "a.png", &png(4, 3))],
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE", "{body}");

    // A body far over the upload limit is refused from its declared length,
    // before it is sent.
    let answer = tokio::task::spawn_blocking({
        let (address, token) = (app.address.clone(), token.clone());
        move || declare_multipart_body(&address, &token, 100 * 1024 * 1024)
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    assert_eq!(app.event_count().await, before);
    assert_eq!(files_in(&media), 0);
    let list = app
        .gql(Some(&token), "{ mediaAssets { id } }", json!({}))
        .await;
    assert_eq!(list["data"]["mediaAssets"], json!([]), "{list}");
}

/// A JSON body barely over the limit is read before the 413: answering
/// first would close the connection on a client still writing, which then
/// sees a broken pipe instead of the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_barely_over_the_limit_is_read_before_the_413() {
    let app = app().await;
    let (token, _) = app.sign_up("Media Ltd", "editor@media.example.org").await;
    let before = app.event_count().await;
    let (early, answer) = tokio::task::spawn_blocking({
        let (address, token) = (app.address.clone(), token.clone());
        move || {
            let address = address.trim_start_matches("http://").to_string();
            let body = format!("{{\"query\": \"{}\"}}", "x".repeat(1 << 20));
            let mut stream = std::net::TcpStream::connect(&address).unwrap();
            let head = format!(
                "POST /graphql HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&body.as_bytes()[..1000]).unwrap();
            // While the body is still coming, no answer.
            stream
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let mut buf = [0; 1024];
            let early = match stream.read(&mut buf) {
                Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).to_string()),
                Err(_) => None,
            };
            stream.write_all(&body.as_bytes()[1000..]).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut answer = Vec::new();
            while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).expect("an answer");
                if n == 0 {
                    break;
                }
                answer.extend_from_slice(&buf[..n]);
            }
            (early, String::from_utf8_lossy(&answer).to_string())
        }
    })
    .await
    .unwrap();
    assert_eq!(early, None, "answered before the body was sent");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(app.event_count().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_that_requires_alt_text_refuses_images_without_it() {
    let app = app().await;
    let (token, _) = app.sign_up("Alt Ltd", "editor@alt.example.org").await;
    let (_, image) = app.upload_graphql(Some(&token), "a.png", &png(4, 3)).await;
    let image = image["data"]["uploadMedia"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{image}"))
        .to_string();
    let settings = |name: &str, required: Option<bool>| {
        let mut input = json!({"name": name, "timeZone": "Europe/Berlin", "startsOn": "2026-01-01", "endsOn": "2030-12-31"});
        if let Some(required) = required {
            input["altTextRequired"] = json!(required);
        }
        input
    };
    let body = app
        .gql(
            Some(&token),
            "mutation($i: CampaignInput!) { createCampaign(input: $i) { id altTextRequired } }",
            json!({"i": settings("Accessible", Some(true))}),
        )
        .await;
    assert_eq!(
        body["data"]["createCampaign"]["altTextRequired"], true,
        "{body}"
    );
    let strict = body["data"]["createCampaign"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let lax = app.create_campaign(&token, "Relaxed").await;
    let body = app
        .gql(
            Some(&token),
            "query($id: ID!) { campaign(id: $id) { altTextRequired } }",
            json!({"id": lax}),
        )
        .await;
    assert_eq!(body["data"]["campaign"]["altTextRequired"], false, "{body}");

    let entry = |text: &str, alt: Option<&str>| {
        let mut media = json!({"assetId": image});
        if let Some(alt) = alt {
            media["alt"] = json!(alt);
        }
        json!({"text": text, "media": [media]})
    };
    let before = app.event_count().await;
    for alt in [Some(""), Some("  \t"), None] {
        let body = create_post(
            &app,
            &token,
            json!({"campaignId": strict, "entries": [entry("Look", alt)]}),
        )
        .await;
        assert_eq!(error_code(&body), Some("VALIDATION"), "{body}");
        assert_eq!(
            body["errors"][0]["extensions"]["field"],
            "entries.0.media.0.alt"
        );
    }
    assert_eq!(app.event_count().await, before);

    let body = create_post(
        &app,
        &token,
        json!({"campaignId": strict, "entries": [entry("Look", Some("A test pattern"))]}),
    )
    .await;
    let post = body["data"]["createPost"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_string();
    let update = "mutation($i: UpdatePostInput!) { updatePost(input: $i) { id entries { text } } }";
    let before = app.event_count().await;
    let body = app
        .gql(
            Some(&token),
            update,
            json!({"i": {"postId": post, "entries": [entry("one", Some("Described")), entry("two", Some(""))]}}),
        )
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION"), "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["field"],
        "entries.1.media.0.alt"
    );
    assert_eq!(app.event_count().await, before);

    // Without the setting, an image may go without alt text ...
    let body = create_post(
        &app,
        &token,
        json!({"campaignId": lax, "entries": [entry("Look", None)]}),
    )
    .await;
    let relaxed = body["data"]["createPost"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_string();
    // ... until the campaign turns it on: later edits follow it.
    let body = app
        .gql(
            Some(&token),
            "mutation($id: ID!, $i: CampaignInput!) { updateCampaign(id: $id, input: $i) { altTextRequired } }",
            json!({"id": lax, "i": settings("Relaxed", Some(true))}),
        )
        .await;
    assert_eq!(
        body["data"]["updateCampaign"]["altTextRequired"], true,
        "{body}"
    );
    let body = app
        .gql(
            Some(&token),
            update,
            json!({"i": {"postId": relaxed, "entries": [entry("Look again", Some(" "))]}}),
        )
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION"), "{body}");
    let body = app
        .gql(Some(&token), update, json!({"i": {"postId": relaxed, "entries": [entry("Look again", Some("Now described"))]}}))
        .await;
    assert_eq!(
        body["data"]["updatePost"]["entries"][0]["text"], "Look again",
        "{body}"
    );
}
