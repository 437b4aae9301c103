//! The Bluesky adapter against a real local AT Protocol network (PLC, PDS and
//! AppView from `@atproto/dev-env`). Start it first:
//!
//!     APPVIEW=1 ../shared/peers/bluesky/peer.sh start
//!     eval "$(../shared/peers/bluesky/peer.sh env)"
//!
//! Every test uses fresh random record keys, so they run in parallel and on a
//! network that other tests use too.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use test_support::peer::{Account, Peer, peer};
use test_support::png;
use workers::bluesky::{self, Appview, Client, ErrorKind, Image, OutFacet, PostRecord, Reply};

/// The dev-env PDS signs its tokens with this secret.
const DEV_JWT_SECRET: &[u8] = b"jwt-secret";

fn http() -> reqwest::Client {
    bluesky::http_client().expect("HTTP client")
}

/// A fresh random TID record key.
fn rkey() -> String {
    domain::rkey::tid(rand::random()).as_str().to_string()
}

async fn login(peer: &Peer, account: &Account) -> Client {
    Client::login(http(), &peer.pds, &account.handle, &account.app_password)
        .await
        .expect("login")
}

fn text_post(text: &str) -> PostRecord {
    PostRecord {
        text: text.into(),
        langs: vec!["en".into()],
        facets: vec![],
        created_at: Utc::now(),
        reply: None,
        images: vec![],
    }
}

/// Polls `check` every 250 ms until it returns Some, for at most `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// An HS256 token like `token` (same header and claims) but expired a minute ago.
fn expired_copy(token: &str) -> String {
    let mut parts = token.split('.');
    let header = parts.next().unwrap();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    let now = Utc::now().timestamp();
    claims["iat"] = json!(now - 3600);
    claims["exp"] = json!(now - 60);
    let signing_input = format!(
        "{header}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(DEV_JWT_SECRET).unwrap();
    mac.update(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

#[tokio::test]
async fn resolves_handles_through_a_service_and_through_the_did_document() {
    let peer = peer();
    let account = bluesky::resolve(
        &http(),
        "@Alice.test",
        Some(&format!("{}/", peer.pds)),
        "https://bsky.invalid",
        peer.plc(),
    )
    .await
    .expect("resolve via service_url");
    assert_eq!(account.did, peer.alice.did);
    assert_eq!(account.handle, "alice.test");
    assert_eq!(account.pds, peer.pds);

    // No service: .well-known on the handle's host fails (.test has no DNS),
    // resolveHandle at the default service answers, the PLC document names the PDS.
    let account = bluesky::resolve(&http(), "bob.test", None, &peer.pds, peer.plc())
        .await
        .expect("resolve via DID document");
    assert_eq!(account.did, peer.bob.did);
    assert_eq!(account.pds, peer.pds);

    let err = bluesky::resolve(&http(), "nobody.test", Some(&peer.pds), "", peer.plc())
        .await
        .expect_err("unknown handle");
    assert_eq!(err.kind, ErrorKind::Invalid, "{err:?}");
    assert!(!err.ambiguous);
    let err = bluesky::resolve(&http(), "not a handle", None, &peer.pds, peer.plc())
        .await
        .expect_err("malformed handle");
    assert_eq!(err.kind, ErrorKind::Invalid);
}

#[tokio::test]
async fn bad_app_password_is_an_auth_error_that_does_not_repeat_it() {
    let peer = peer();
    let wrong = "wrong-app-pass-7f3a9c";
    let err = Client::login(http(), &peer.pds, &peer.alice.handle, wrong)
        .await
        .expect_err("bad password must fail");
    assert_eq!(err.kind, ErrorKind::Auth, "{err:?}");
    assert!(!err.ambiguous);
    for secret in [wrong, &peer.alice.password, &peer.alice.app_password] {
        assert!(!err.message.contains(secret), "{}", err.message);
        assert!(!format!("{err:?}").contains(secret));
    }
}

#[tokio::test]
async fn a_session_survives_a_round_trip_through_json() {
    let peer = peer();
    let client = login(&peer, &peer.alice).await;
    assert_eq!(client.did(), peer.alice.did);
    let json = client.session_json().await.expect("session");
    let debug = format!("{client:?}");
    let tokens: Value = serde_json::from_str(&json).unwrap();
    assert!(debug.contains(&peer.alice.did));
    assert!(!debug.contains(tokens["accessJwt"].as_str().unwrap()));

    let resumed = Client::resume(http(), &peer.pds, &json).expect("resume");
    assert_eq!(resumed.did(), peer.alice.did);
    assert_eq!(resumed.session_json().await.as_deref(), Some(json.as_str()));
    // The resumed session writes.
    let key = rkey();
    let made = resumed
        .create_post(&key, &text_post("resumed session"), &[])
        .await
        .expect("post with the resumed session");
    assert_eq!(client.get_post(&key).await.unwrap(), Some(made));
    resumed.delete_post(&key).await.unwrap();

    let err = Client::resume(http(), &peer.pds, "{\"accessJwt\": \"secret-ish\"")
        .expect_err("garbage session");
    assert!(!err.message.contains("secret-ish"));
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_and_the_new_session_is_exposed() {
    let peer = peer();
    let client = login(&peer, &peer.alice).await;
    let mut session: Value = serde_json::from_str(&client.session_json().await.unwrap()).unwrap();
    let expired = expired_copy(session["accessJwt"].as_str().unwrap());
    session["accessJwt"] = json!(expired);

    let resumed = Client::resume(http(), &peer.pds, &session.to_string()).unwrap();
    resumed
        .delete_post(&rkey())
        .await
        .expect("refreshed transparently");
    let refreshed: Value =
        serde_json::from_str(&resumed.session_json().await.expect("still a session")).unwrap();
    assert_ne!(refreshed["accessJwt"], json!(expired));
    assert_ne!(
        refreshed["refreshJwt"], session["refreshJwt"],
        "refresh tokens rotate"
    );

    // Expired access and an unusable refresh token: the session is gone.
    session["refreshJwt"] = json!("not-a-refresh-token");
    let broken = Client::resume(http(), &peer.pds, &session.to_string()).unwrap();
    let err = broken
        .delete_post(&rkey())
        .await
        .expect_err("cannot refresh");
    assert_eq!(err.kind, ErrorKind::Auth, "{err:?}");
    assert!(!err.ambiguous);
    assert!(!err.message.contains(&expired));
    assert_eq!(broken.session_json().await, None);
}

#[tokio::test]
async fn publishes_a_thread_with_an_image_a_link_and_a_mention() {
    let peer = peer();
    let client = login(&peer, &peer.alice).await;
    let blob = client
        .upload_blob(png(4, 3), "image/png")
        .await
        .expect("upload");
    assert_eq!(blob["mimeType"], "image/png");
    assert!(blob["ref"]["$link"].is_string(), "{blob}");

    let text = "Hello @bob.test and @nobody.test, see https://herald.example/x #herald";
    let found = domain::text::detect_facets(text);
    assert_eq!(found.len(), 4, "{found:?}");
    let (facets, warnings) = client.resolve_mentions(&found).await;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("@nobody.test"), "{warnings:?}");
    assert_eq!(facets.len(), 3, "the unresolvable mention is dropped");
    assert!(facets.contains(&OutFacet::Mention {
        start: 6,
        end: 15,
        did: peer.bob.did.clone()
    }));

    let (k1, k2, k3) = (rkey(), rkey(), rkey());
    let root = client
        .create_post(
            &k1,
            &PostRecord {
                facets: found,
                images: vec![Image {
                    blob: blob.clone(),
                    alt: "a tiny gradient".into(),
                    width: 4,
                    height: 3,
                }],
                ..text_post(text)
            },
            &facets,
        )
        .await
        .expect("root");
    assert_eq!(
        root.uri,
        format!("at://{}/app.bsky.feed.post/{k1}", peer.alice.did)
    );
    let second = client
        .create_post(
            &k2,
            &PostRecord {
                reply: Some(Reply {
                    root: root.clone(),
                    parent: root.clone(),
                }),
                ..text_post("second")
            },
            &[],
        )
        .await
        .expect("second");
    let third = client
        .create_post(
            &k3,
            &PostRecord {
                reply: Some(Reply {
                    root: root.clone(),
                    parent: second.clone(),
                }),
                ..text_post("third")
            },
            &[],
        )
        .await
        .expect("third");

    // What the PDS stored.
    let stored = peer.record(&root.uri).await;
    assert_eq!(stored["cid"], root.cid);
    let value = &stored["value"];
    assert_eq!(value["text"], text);
    assert_eq!(value["langs"], json!(["en"]));
    assert_eq!(value["embed"]["$type"], "app.bsky.embed.images");
    let image = &value["embed"]["images"][0];
    assert_eq!(image["alt"], "a tiny gradient");
    assert_eq!(image["aspectRatio"], json!({"width": 4, "height": 3}));
    assert_eq!(image["image"]["ref"], blob["ref"]);
    let features: Vec<&Value> = value["facets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["features"][0])
        .collect();
    assert!(
        features
            .contains(&&json!({"$type": "app.bsky.richtext.facet#mention", "did": peer.bob.did}))
    );
    assert!(features.contains(
        &&json!({"$type": "app.bsky.richtext.facet#link", "uri": "https://herald.example/x"})
    ));
    assert!(features.contains(&&json!({"$type": "app.bsky.richtext.facet#tag", "tag": "herald"})));
    let stored = peer.record(&third.uri).await;
    assert_eq!(
        stored["value"]["reply"]["root"],
        json!({"uri": root.uri, "cid": root.cid})
    );
    assert_eq!(
        stored["value"]["reply"]["parent"],
        json!({"uri": second.uri, "cid": second.cid})
    );

    // What the AppView makes of it.
    let thread: Value = eventually(
        "the thread in the AppView",
        Duration::from_secs(20),
        || async {
            let thread: Value = http()
                .get(format!(
                    "{}/xrpc/app.bsky.feed.getPostThread",
                    peer.appview()
                ))
                .query(&[("uri", root.uri.as_str()), ("depth", "5")])
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let deepest = &thread["thread"]["replies"][0]["replies"][0]["post"]["uri"];
            (deepest == &json!(third.uri)).then_some(thread)
        },
    )
    .await;
    let top = &thread["thread"]["post"];
    assert_eq!(top["uri"], root.uri);
    assert_eq!(top["embed"]["images"][0]["alt"], "a tiny gradient");
    assert_eq!(thread["thread"]["replies"][0]["post"]["uri"], second.uri);

    for key in [&k1, &k2, &k3] {
        client.delete_post(key).await.unwrap();
    }
}

#[tokio::test]
async fn ensure_post_publishes_once_and_delete_is_idempotent() {
    let peer = peer();
    let client = login(&peer, &peer.alice).await;
    let key = rkey();
    let post = text_post("exactly once");

    let first = client.ensure_post(&key, &post, &[]).await.expect("first");
    let again = client.ensure_post(&key, &post, &[]).await.expect("second");
    assert_eq!(first, again);
    assert_eq!(client.get_post(&key).await.unwrap(), Some(first.clone()));
    let keys = client.list_post_rkeys().await.unwrap();
    assert_eq!(keys.iter().filter(|k| **k == key).count(), 1);

    // What ensure_post relies on: the PDS refuses an existing key with a 500,
    // which only says that the outcome is unknown.
    let err = client
        .create_post(&key, &post, &[])
        .await
        .expect_err("key taken");
    assert_eq!(err.kind, ErrorKind::Transient, "{err:?}");
    assert!(err.ambiguous);

    client.delete_post(&key).await.expect("delete");
    assert_eq!(client.get_post(&key).await.unwrap(), None);
    client.delete_post(&key).await.expect("delete again");
    assert!(!client.list_post_rkeys().await.unwrap().contains(&key));

    let err = client
        .create_post("not a key!", &post, &[])
        .await
        .expect_err("bad key");
    assert_eq!(err.kind, ErrorKind::Invalid);
    let err = client
        .create_post(&rkey(), &text_post(&"x".repeat(3001)), &[])
        .await
        .expect_err("too long");
    assert_eq!(err.kind, ErrorKind::Invalid, "{err:?}");
    assert!(!err.ambiguous);
}

#[tokio::test]
async fn engagement_counts_likes_and_replies() {
    let peer = peer();
    let alice = login(&peer, &peer.alice).await;
    let (k1, k2) = (rkey(), rkey());
    let root = alice
        .create_post(&k1, &text_post("like me"), &[])
        .await
        .unwrap();
    alice
        .create_post(
            &k2,
            &PostRecord {
                reply: Some(Reply {
                    root: root.clone(),
                    parent: root.clone(),
                }),
                ..text_post("a reply")
            },
            &[],
        )
        .await
        .unwrap();
    peer.like(&peer.bob, &root.uri, &root.cid).await;

    let uris = vec![root.uri.clone()];
    for appview in [
        Appview::Proxy {
            did: peer.appview_did().to_string(),
        },
        Appview::Direct {
            url: peer.appview().to_string(),
        },
    ] {
        let counts = eventually("likeCount = 1", Duration::from_secs(20), || async {
            let counts = alice.engagement(&uris, &appview).await.expect("getPosts");
            counts
                .first()
                .is_some_and(|c| c.likes == 1 && c.replies == 1)
                .then_some(counts)
        })
        .await;
        assert_eq!(counts.len(), 1);
        assert_eq!(counts[0].uri, root.uri);
        assert_eq!((counts[0].reposts, counts[0].quotes), (0, 0));
    }

    // Batches of 25: 30 URIs, of which only the root exists.
    let mut many: Vec<String> = (0..29)
        .map(|_| format!("at://{}/app.bsky.feed.post/{}", peer.alice.did, rkey()))
        .collect();
    many.push(root.uri.clone());
    let counts = alice
        .engagement(
            &many,
            &Appview::Proxy {
                did: peer.appview_did().to_string(),
            },
        )
        .await
        .unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].uri, root.uri);

    alice.delete_post(&k2).await.unwrap();
    alice.delete_post(&k1).await.unwrap();
}
