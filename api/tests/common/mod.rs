//! Black-box harness for the publishing resilience tests: real `herald api`
//! and `herald worker` processes on a fresh PostgreSQL database, the real
//! local Bluesky network, and checks made on the PDS itself.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::process::{Child, Command};
use uuid::Uuid;

const HOW: &str = "these tests need the local Bluesky network: run \
    `APPVIEW=1 ../shared/peers/bluesky/peer.sh start` and \
    `eval \"$(../shared/peers/bluesky/peer.sh env)\"` first (CI does)";

/// The peer's PDS and alice's credentials.
pub struct Peer {
    pub pds: String,
    pub handle: String,
    pub did: String,
    pub app_password: String,
}

pub fn peer() -> Peer {
    let pds = std::env::var("BLUESKY_PDS_URL").unwrap_or_else(|_| panic!("{HOW}"));
    let path = std::env::var("BLUESKY_PEER_JSON").unwrap_or_else(|_| panic!("{HOW}"));
    let network: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect(HOW)).expect("JSON");
    let alice = &network["accounts"]["alice"];
    Peer {
        pds: pds.trim_end_matches('/').to_string(),
        handle: alice["handle"].as_str().unwrap().to_string(),
        did: alice["did"].as_str().unwrap().to_string(),
        app_password: alice["appPassword"].as_str().unwrap().to_string(),
    }
}

/// Every post record of `did` on the PDS: (uri, cid, record).
pub async fn records(pds: &str, did: &str) -> Vec<(String, String, Value)> {
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![
            ("repo", did.to_string()),
            ("collection", "app.bsky.feed.post".to_string()),
            ("limit", "100".to_string()),
        ];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let page: Value = http
            .get(format!("{pds}/xrpc/com.atproto.repo.listRecords"))
            .query(&query)
            .send()
            .await
            .expect("listRecords")
            .json()
            .await
            .expect("listRecords JSON");
        let batch = page["records"].as_array().cloned().unwrap_or_default();
        for r in &batch {
            out.push((
                r["uri"].as_str().unwrap_or_default().to_string(),
                r["cid"].as_str().unwrap_or_default().to_string(),
                r["value"].clone(),
            ));
        }
        cursor = page["cursor"].as_str().map(str::to_string);
        if batch.is_empty() || cursor.is_none() {
            return out;
        }
    }
}

/// A fresh PostgreSQL database on `server` (dropped by CI's clean-up of
/// `herald_test_*`).
pub async fn fresh_database(server: &str) -> String {
    let name = format!("herald_test_{}", Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .expect("PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = server.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Settings every process of one deployment shares.
pub struct Deployment {
    pub database_url: String,
    pub master_key: String,
    pub data_dir: std::path::PathBuf,
}

impl Deployment {
    /// On the server of `HERALD_TEST_DATABASE_URL`.
    pub async fn new() -> Self {
        let server = std::env::var("HERALD_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        Self::on(&server).await
    }

    /// On the PostgreSQL server at `server` (any database URL of it).
    pub async fn on(server: &str) -> Self {
        let key: [u8; 32] = rand::random();
        let data_dir = std::env::temp_dir().join(format!("herald-pub-{}", Uuid::new_v4().simple()));
        Self {
            database_url: fresh_database(server).await,
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
    pub async fn api(&self) -> (Child, Api) {
        let port = free_port();
        let child = self
            .command(&["api", "--listen", &format!("127.0.0.1:{port}")])
            .spawn()
            .expect("herald api starts");
        let api = Api {
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            token: String::new(),
        };
        for _ in 0..300 {
            if let Ok(r) = api.http.get(format!("{}/health", api.url)).send().await
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

/// A client of the running API, signed in once `sign_up` ran.
pub struct Api {
    pub url: String,
    pub http: reqwest::Client,
    pub token: String,
}

impl Api {
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        let mut request = self
            .http
            .post(format!("{}/graphql", self.url))
            .json(&json!({"query": query, "variables": variables}));
        if !self.token.is_empty() {
            request = request.bearer_auth(&self.token);
        }
        request
            .send()
            .await
            .expect("API answers")
            .json()
            .await
            .expect("JSON")
    }

    async fn data(&self, query: &str, variables: Value, field: &str) -> Value {
        let body = self.gql(query, variables).await;
        let value = body["data"][field].clone();
        assert!(!value.is_null(), "{field} failed: {body}");
        value
    }

    /// Signs up, connects alice, creates a campaign; returns (campaign, connection).
    pub async fn setup(&mut self, peer: &Peer) -> (String, String) {
        let signed = self
            .data(
                "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken } }",
                json!({"i": {"organization": "Resilient Ltd", "email": "ops@resilient.example.org", "password": "correct horse battery"}}),
                "signUp",
            )
            .await;
        self.token = signed["accessToken"].as_str().unwrap().to_string();
        let campaign = self
            .data(
                "mutation($i: CampaignInput!) { createCampaign(input: $i) { id } }",
                json!({"i": {"name": "Load", "timeZone": "Europe/Berlin", "startsOn": "2026-01-01", "endsOn": "2030-12-31"}}),
                "createCampaign",
            )
            .await;
        let connection = self
            .data(
                "mutation($i: ConnectBlueskyInput!) { connectBluesky(input: $i) { id status } }",
                json!({"i": {"handle": peer.handle, "appPassword": peer.app_password, "serviceUrl": peer.pds}}),
                "connectBluesky",
            )
            .await;
        (
            campaign["id"].as_str().unwrap().to_string(),
            connection["id"].as_str().unwrap().to_string(),
        )
    }

    /// Creates `n` posts (every tenth a three-entry thread) whose texts carry
    /// `marker`, and schedules them over one second starting at `at`.
    /// Returns post id → number of entries.
    pub async fn schedule_posts(
        &self,
        campaign: &str,
        connection: &str,
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
                .data(
                    "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }",
                    json!({"i": {"campaignId": campaign, "connectionId": connection, "entries": entries}}),
                    "createPost",
                )
                .await;
            let id = post["id"].as_str().unwrap().to_string();
            let when = at + chrono::Duration::milliseconds((i * 1000 / n) as i64);
            self.data(
                "mutation($i: SchedulePostInput!) { schedulePost(input: $i) { id } }",
                json!({"i": {"postId": id, "at": when}}),
                "schedulePost",
            )
            .await;
            posts.insert(id, entries.len());
        }
        posts
    }

    /// Post counts of the campaign: (done, failed, total).
    pub async fn counts(&self, campaign: &str) -> Option<(i64, i64, i64)> {
        let body = self
            .gql(
                "query($id: ID!) { campaign(id: $id) { postCounts { done failed total } } }",
                json!({"id": campaign}),
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
    let mine: Vec<(String, String, Value)> = records(&peer.pds, &peer.did)
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
