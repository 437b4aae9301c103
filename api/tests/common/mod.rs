//! Black-box harness for the publishing resilience tests: real `herald api`
//! and `herald worker` processes on a fresh PostgreSQL database, the real
//! local Bluesky network, and checks made on the PDS itself. The database,
//! the peer and the GraphQL client are `test-support`'s; what is here only
//! these tests do: run the binary, schedule many posts, check exactly-once.

#![allow(dead_code)]

pub mod cluster;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use test_support::client::{ApiClient, User};
use test_support::db::{create_postgres, postgres_server};
use test_support::free_port;
use test_support::peer::Peer;
use tokio::process::{Child, Command};
use uuid::Uuid;

#[allow(unused_imports)] // not every test binary publishes
pub use test_support::peer::peer;

/// Settings every process of one deployment shares.
pub struct Deployment {
    pub database_url: String,
    pub master_key: String,
    pub data_dir: std::path::PathBuf,
}

impl Deployment {
    /// On the server of `HERALD_TEST_DATABASE_URL`.
    pub async fn new() -> Self {
        Self::on(&postgres_server()).await
    }

    /// On the PostgreSQL server at `server` (any database URL of it).
    pub async fn on(server: &str) -> Self {
        let key: [u8; 32] = rand::random();
        let data_dir = std::env::temp_dir().join(format!("herald-pub-{}", Uuid::new_v4().simple()));
        Self {
            database_url: create_postgres(server).await.url,
            master_key: base64::engine::general_purpose::STANDARD.encode(key),
            data_dir,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.args(args)
            .env("DATABASE_URL", &self.database_url)
            .env("HERALD_MASTER_KEY", &self.master_key)
            .env("HERALD_DATA_DIR", &self.data_dir)
            .env("HERALD_PUBLISH_LEASE_SECONDS", "2")
            .env("HERALD_PUBLISH_RETRY_BASE_MS", "200")
            .env("HERALD_PUBLISH_MAX_ATTEMPTS", "1000")
            .env(
                "RUST_LOG",
                std::env::var("TEST_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Starts `herald api` and waits until it answers.
    pub async fn api(&self) -> (Child, ApiClient) {
        let port = free_port();
        let child = self
            .command(&["api", "--listen", &format!("127.0.0.1:{port}")])
            .spawn()
            .expect("herald api starts");
        let api = ApiClient::new(format!("http://127.0.0.1:{port}"));
        for _ in 0..300 {
            if let Ok(r) = api
                .client
                .get(format!("{}/health", api.address))
                .send()
                .await
                && r.status().is_success()
            {
                return (child, api);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("herald api did not start");
    }

    /// Starts `herald worker`.
    pub fn worker(&self) -> Child {
        self.command(&["worker"])
            .spawn()
            .expect("herald worker starts")
    }
}

/// The tenant these tests publish for: signed up, with the peer's alice
/// connected and a campaign to post in.
pub struct Publisher {
    pub user: User,
    pub campaign: String,
    pub connection: String,
}

impl Publisher {
    /// Signs up, creates a campaign and connects alice.
    pub async fn set_up(api: &ApiClient, peer: &Peer) -> Self {
        let user = api
            .sign_up_user("Resilient Ltd", "ops@resilient.example.org")
            .await;
        let campaign = api.create_campaign(&user.token, "Load").await;
        let connection = api.connect_bluesky(&user.token, peer).await;
        Self {
            user,
            campaign,
            connection,
        }
    }

    /// Creates `n` posts (every tenth a three-entry thread) whose texts carry
    /// `marker`, and schedules them over one second starting at `at`.
    /// Returns post id → number of entries.
    pub async fn schedule_posts(
        &self,
        marker: &str,
        n: usize,
        at: DateTime<Utc>,
    ) -> HashMap<String, usize> {
        let mut posts = HashMap::new();
        for i in 0..n {
            let entries: Vec<Value> = (0..if i % 10 == 0 { 3 } else { 1 })
                .map(|e| json!({"text": format!("{marker} post {i} entry {e}")}))
                .collect();
            let post = self
                .user
                .mutate(
                    "createPost",
                    "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }",
                    json!({"i": {"campaignId": self.campaign, "connectionId": self.connection, "entries": entries}}),
                )
                .await;
            let id = post["id"].as_str().unwrap().to_string();
            let when = at + chrono::Duration::milliseconds((i * 1000 / n) as i64);
            self.user
                .mutate(
                    "schedulePost",
                    "mutation($i: SchedulePostInput!) { schedulePost(input: $i) { id } }",
                    json!({"i": {"postId": id, "at": when}}),
                )
                .await;
            posts.insert(id, entries.len());
        }
        posts
    }

    /// Post counts of the campaign: (done, failed, total).
    pub async fn counts(&self) -> Option<(i64, i64, i64)> {
        let body = self
            .user
            .gql(
                "query($id: ID!) { campaign(id: $id) { postCounts { done failed total } } }",
                json!({"id": self.campaign}),
            )
            .await;
        let c = &body["data"]["campaign"]["postCounts"];
        Some((
            c["done"].as_i64()?,
            c["failed"].as_i64()?,
            c["total"].as_i64()?,
        ))
    }
}

/// Checks on the PDS that every entry of every post exists exactly once, and
/// that threads reply to their own entries in order.
pub async fn assert_published_exactly_once(
    peer: &Peer,
    marker: &str,
    posts: &HashMap<String, usize>,
) {
    let mine: Vec<(String, String, Value)> = peer
        .post_records(&peer.alice.did)
        .await
        .into_iter()
        .filter(|(_, _, r)| r["text"].as_str().unwrap_or_default().starts_with(marker))
        .collect();
    let expected: usize = posts.values().sum();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (_, _, r) in &mine {
        *seen
            .entry(r["text"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "published twice: {duplicates:?}");
    assert_eq!(mine.len(), expected, "every entry exactly once");
    // Thread structure: entry e replies to entry e-1 of the same post.
    let by_text: HashMap<&str, (&str, &str)> = mine
        .iter()
        .map(|(uri, cid, r)| (r["text"].as_str().unwrap(), (uri.as_str(), cid.as_str())))
        .collect();
    for (_, _, r) in &mine {
        let text = r["text"].as_str().unwrap();
        let (prefix, entry) = text.rsplit_once(" entry ").unwrap();
        let entry: usize = entry.parse().unwrap();
        if entry == 0 {
            assert!(r["reply"].is_null(), "{text} is not a reply");
            continue;
        }
        let parent = by_text[format!("{prefix} entry {}", entry - 1).as_str()];
        let root = by_text[format!("{prefix} entry 0").as_str()];
        assert_eq!(r["reply"]["parent"]["uri"], parent.0, "{text}");
        assert_eq!(r["reply"]["parent"]["cid"], parent.1, "{text}");
        assert_eq!(r["reply"]["root"]["uri"], root.0, "{text}");
    }
}
