//! Helpers for Herald's black-box tests: fresh databases (a new PostgreSQL
//! database or SQLite file per test), an application started on port 0, a
//! GraphQL client, a projection that records what it sees, and (`smtp`) a
//! real SMTP server.

use std::sync::Arc;

use async_trait::async_trait;
use projections::{Database, Projection, StoreError, StoredEvent};
use serde_json::{Value, json};
use sqlx::AnyConnection;
use tokio::sync::watch;
use uuid::Uuid;

pub mod peer;
pub mod smtp;

/// Server for tests that need PostgreSQL (`HERALD_TEST_DATABASE_URL`).
pub fn postgres_server() -> String {
    std::env::var("HERALD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A new, empty PostgreSQL database; returns its URL.
pub async fn fresh_postgres() -> String {
    use sqlx::Connection;
    let server = postgres_server();
    let name = format!("herald_test_{}", Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&server)
        .await
        .expect("PostgreSQL is reachable (see README: tests need the local server)");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
    format!("{base}/{name}")
}

/// A new SQLite file in the temp directory; returns its URL.
pub fn fresh_sqlite() -> String {
    let path = std::env::temp_dir().join(format!("herald-test-{}.db", Uuid::new_v4().simple()));
    format!("sqlite://{}", path.display())
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A fresh database URL of this kind.
    pub async fn fresh(self) -> String {
        match self {
            Backend::Sqlite => fresh_sqlite(),
            Backend::Postgres => fresh_postgres().await,
        }
    }
}

/// Runs an async test body once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(herald_tests::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(herald_tests::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A running Herald (API and workers) on an ephemeral port.
pub struct TestApp {
    pub address: String,
    pub state: Arc<api::state::AppState>,
    pub client: reqwest::Client,
    shutdown: watch::Sender<bool>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// Starts Herald in `serve` mode on `database_url`.
pub async fn spawn_app(database_url: &str) -> TestApp {
    spawn_with(api::Config::new(database_url)).await
}

/// One master key for the whole test process, so apps restarted on the same
/// database (and several apps sharing one) read each other's data.
pub fn test_master_key() -> secrecy::SecretString {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| {
        use secrecy::ExposeSecret;
        projections::MasterKey::generate()
            .1
            .expose_secret()
            .to_string()
    });
    key.clone().into()
}

/// Starts Herald with `config` (the test master key unless one is set).
pub async fn spawn_with(mut config: api::Config) -> TestApp {
    if config.master_key.is_none() {
        config.master_key = Some(test_master_key());
    }
    if std::env::var("TEST_LOG").is_ok() {
        api::telemetry::init();
    }
    let app = api::Application::build(config, api::Mode::Serve)
        .await
        .expect("application builds");
    let address = format!("http://{}", app.address());
    let state = app.state();
    let shutdown = app.shutdown_handle();
    tokio::spawn(app.run());
    TestApp {
        address,
        state,
        client: reqwest::Client::new(),
        shutdown,
    }
}

impl TestApp {
    /// Posts a GraphQL operation, with a bearer token if given.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.address))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .expect("request succeeds")
            .json()
            .await
            .expect("JSON response")
    }

    /// Signs up an organisation; returns (access token, tenant id).
    pub async fn sign_up(&self, organization: &str, email: &str) -> (String, String) {
        let body = self
            .gql(
                None,
                "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken tenant { id } } }",
                json!({"i": {"organization": organization, "email": email, "password": "correct horse battery"}}),
            )
            .await;
        let payload = &body["data"]["signUp"];
        assert!(payload.is_object(), "sign-up failed: {body}");
        (
            payload["accessToken"].as_str().unwrap().to_string(),
            payload["tenant"]["id"].as_str().unwrap().to_string(),
        )
    }

    /// Invites `email` with `role` (an enum name like `EDITOR`) as the holder
    /// of `inviter_token`, takes the token the mail would carry, and accepts;
    /// returns the new member's access token and user id.
    pub async fn add_member(
        &self,
        inviter_token: &str,
        email: &str,
        role: &str,
    ) -> (String, String) {
        let body = self
            .gql(
                Some(inviter_token),
                "mutation($i: InviteMemberInput!) { inviteMember(input: $i) { id } }",
                json!({"i": {"email": email, "role": role}}),
            )
            .await;
        let invitation = body["data"]["inviteMember"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("inviteMember failed: {body}"));
        let token = self.invitation_token(inviter_token, invitation).await;
        let body = self
            .gql(
                None,
                "mutation($i: AcceptInvitationInput!) { acceptInvitation(input: $i) { accessToken user { id } } }",
                json!({"i": {"token": token, "password": "correct horse battery"}}),
            )
            .await;
        let payload = &body["data"]["acceptInvitation"];
        assert!(payload.is_object(), "acceptInvitation failed: {body}");
        (
            payload["accessToken"].as_str().unwrap().to_string(),
            payload["user"]["id"].as_str().unwrap().to_string(),
        )
    }

    /// The token an invitation mail carries (derived by the server's keys).
    pub async fn invitation_token(&self, inviter_token: &str, invitation: &str) -> String {
        use secrecy::ExposeSecret;
        let me = self
            .gql(Some(inviter_token), "{ me { tenant { id } } }", json!({}))
            .await;
        let tenant = Uuid::parse_str(me["data"]["me"]["tenant"]["id"].as_str().unwrap()).unwrap();
        let (purpose, prefix) = api::accounts::INVITATION;
        self.state
            .keyring
            .issue_token(
                purpose,
                prefix,
                tenant,
                Uuid::parse_str(invitation).unwrap(),
            )
            .await
            .unwrap()
            .expose_secret()
            .to_string()
    }

    /// Creates a campaign; returns its id.
    pub async fn create_campaign(&self, token: &str, name: &str) -> String {
        let body = self
            .gql(
                Some(token),
                "mutation($i: CampaignInput!) { createCampaign(input: $i) { id } }",
                json!({"i": {"name": name, "timeZone": "Europe/Berlin", "startsOn": "2026-01-01", "endsOn": "2030-12-31"}}),
            )
            .await;
        body["data"]["createCampaign"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("createCampaign failed: {body}"))
            .to_string()
    }

    /// Connects the Bluesky peer's account `alice` for the holder of
    /// `token`; returns the connection id.
    pub async fn connect_bluesky(&self, token: &str, peer: &peer::Peer) -> String {
        let body = self
            .gql(
                Some(token),
                "mutation($i: ConnectBlueskyInput!) { connectBluesky(input: $i) { id } }",
                json!({"i": {"handle": peer.alice.handle, "appPassword": peer.alice.app_password, "serviceUrl": peer.pds}}),
            )
            .await;
        body["data"]["connectBluesky"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("connectBluesky failed: {body}"))
            .to_string()
    }

    /// Creates a single-entry post; returns its id.
    pub async fn create_post(&self, token: &str, campaign: &str, text: &str) -> String {
        let body = self
            .gql(
                Some(token),
                "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }",
                json!({"i": {"campaignId": campaign, "entries": [{"text": text, "langs": ["en"]}]}}),
            )
            .await;
        body["data"]["createPost"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("createPost failed: {body}"))
            .to_string()
    }

    /// Number of events in the log.
    pub async fn event_count(&self) -> i64 {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events")
            .fetch_one(&self.state.db.any)
            .await
            .unwrap();
        n
    }
}

/// The `extensions.code` of the first error, if any.
pub fn error_code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

/// Connects and migrates a database for store-level tests.
pub async fn database(url: &str) -> Database {
    let db = Database::connect(url, 16).await.expect("connect");
    db.migrate().await.expect("migrate");
    db
}

/// A projection that records every event it is given, without any
/// idempotency of its own, so duplicates and gaps show.
pub struct Recorder;

impl Recorder {
    /// Creates its table.
    pub async fn install(db: &Database) {
        sqlx::query("CREATE TABLE seen (tx bigint NOT NULL, seq bigint NOT NULL, aggregate_id text NOT NULL, sequence bigint NOT NULL)")
            .execute(&db.any)
            .await
            .unwrap();
    }

    /// `(aggregate_id, sequence)` of every recorded event, in apply order.
    pub async fn seen(db: &Database) -> Vec<(String, i64)> {
        sqlx::query_as("SELECT aggregate_id, sequence FROM seen ORDER BY tx, seq")
            .fetch_all(&db.any)
            .await
            .unwrap()
    }
}

#[async_trait]
impl Projection for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["seen"]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        events: &[StoredEvent],
    ) -> Result<(), StoreError> {
        for event in events {
            sqlx::query(
                "INSERT INTO seen (tx, seq, aggregate_id, sequence) VALUES ($1, $2, $3, $4)",
            )
            .bind(event.position.tx)
            .bind(event.position.seq)
            .bind(&event.aggregate_id)
            .bind(event.sequence)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// A valid grayscale PNG of `width` × `height`, stored (uncompressed) deflate.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(data);
        let crc = crc32(&out[start..]);
        out.extend(crc.to_be_bytes());
    }
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0); // filter: none
        raw.extend((0..width).map(|x| ((x * 37 + y * 91) % 256) as u8));
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    let mut zlib = vec![0x78, 0x01, 0x01];
    zlib.extend((raw.len() as u16).to_le_bytes());
    zlib.extend((!(raw.len() as u16)).to_le_bytes());
    zlib.extend(&raw);
    zlib.extend(((b << 16) | a).to_be_bytes());

    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]); // 8-bit grayscale, no interlace
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// One part of a `multipart/form-data` body.
pub struct FormPart<'a> {
    pub name: &'a str,
    /// Makes the part a file.
    pub filename: Option<&'a str>,
    pub bytes: &'a [u8],
}

/// A `multipart/form-data` body of `parts`, with its boundary.
pub fn form_body(parts: &[FormPart<'_>]) -> (String, Vec<u8>) {
    let boundary = format!("herald-test-{}", Uuid::new_v4().simple());
    let mut body = Vec::new();
    for part in parts {
        let disposition = match part.filename {
            Some(filename) => format!(
                "form-data; name=\"{}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream",
                part.name
            ),
            None => format!("form-data; name=\"{}\"", part.name),
        };
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(part.bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (boundary, body)
}

/// The fields `uploadMedia` answers in the tests.
pub const UPLOAD_MEDIA: &str = "mutation($file: Upload!) { uploadMedia(file: $file) { id mime size width height filename createdAt } }";

impl TestApp {
    /// POSTs `parts` as `multipart/form-data` to `path`; returns the status
    /// and the JSON body (null when there is none).
    pub async fn post_form(
        &self,
        path: &str,
        token: Option<&str>,
        parts: &[FormPart<'_>],
    ) -> (u16, Value) {
        let (boundary, body) = form_body(parts);
        let mut request = self
            .client
            .post(format!("{}{path}", self.address))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST /api/v1/media` with `bytes` as the multipart field `file`;
    /// returns the status and the JSON body.
    pub async fn upload(&self, token: Option<&str>, filename: &str, bytes: &[u8]) -> (u16, Value) {
        let file = FormPart {
            name: "file",
            filename: Some(filename),
            bytes,
        };
        self.post_form("/api/v1/media", token, &[file]).await
    }

    /// A GraphQL operation as a multipart request (the GraphQL multipart
    /// request spec): each of `files` is (variable path such as
    /// `variables.file`, filename, bytes); returns the status and the body.
    pub async fn gql_multipart(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
        files: &[(&str, &str, &[u8])],
    ) -> (u16, Value) {
        let operations = json!({"query": query, "variables": variables}).to_string();
        let names: Vec<String> = (0..files.len()).map(|i| i.to_string()).collect();
        let map: serde_json::Map<String, Value> = files
            .iter()
            .zip(&names)
            .map(|((path, _, _), name)| (name.clone(), json!([path])))
            .collect();
        let map = Value::Object(map).to_string();
        let mut parts = vec![
            FormPart {
                name: "operations",
                filename: None,
                bytes: operations.as_bytes(),
            },
            FormPart {
                name: "map",
                filename: None,
                bytes: map.as_bytes(),
            },
        ];
        parts.extend(
            files
                .iter()
                .zip(&names)
                .map(|((_, filename, bytes), name)| FormPart {
                    name,
                    filename: Some(filename),
                    bytes,
                }),
        );
        self.post_form("/graphql", token, &parts).await
    }

    /// `uploadMedia` with `bytes` as the file; returns the status and the
    /// GraphQL response.
    pub async fn upload_graphql(
        &self,
        token: Option<&str>,
        filename: &str,
        bytes: &[u8],
    ) -> (u16, Value) {
        self.gql_multipart(
            token,
            UPLOAD_MEDIA,
            json!({"file": null}),
            &[("variables.file", filename, bytes)],
        )
        .await
    }
}
