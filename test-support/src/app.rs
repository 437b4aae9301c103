//! Herald started in the test process (feature `app`): API, projectors and
//! workers on an SQLite file or a PostgreSQL database, listening on port 0,
//! stopped when the [`TestApp`] is dropped; and helpers for tests that work
//! on the event store directly.

use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use projections::{Database, Projection, StoreError, StoredEvent};
use serde_json::json;
use sqlx::AnyConnection;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::client::ApiClient;

/// A running Herald (API and workers) and a client of it. It derefs to its
/// [`ApiClient`], so a test calls `app.gql(..)` and reads `app.address`
/// as it would on a client of a remote server.
pub struct TestApp {
    pub api: ApiClient,
    pub state: Arc<api::state::AppState>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Deref for TestApp {
    type Target = ApiClient;

    fn deref(&self) -> &ApiClient {
        &self.api
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// Starts Herald in `serve` mode on `database_url`.
pub async fn spawn_app(database_url: &str) -> TestApp {
    spawn_with(api::Settings::for_database(database_url)).await
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
pub async fn spawn_with(config: api::Settings) -> TestApp {
    spawn_retrying(config, Duration::ZERO).await
}

/// Like [`spawn_with`], but keeps trying for up to `patience` while Herald
/// does not start: an app restarted on the port of one just stopped may find
/// the port still held for a moment.
pub async fn spawn_retrying(mut config: api::Settings, patience: Duration) -> TestApp {
    if config.identity.master_key.is_none() {
        config.identity.master_key = Some(test_master_key());
    }
    if std::env::var("TEST_LOG").is_ok() {
        api::telemetry::init();
    }
    let deadline = Instant::now() + patience;
    let app = loop {
        match api::Application::build(config.clone(), api::Mode::Serve).await {
            Ok(app) => break app,
            Err(error) if Instant::now() < deadline => {
                eprintln!("herald does not start yet: {error:#}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("herald does not start: {error:#}"),
        }
    };
    let api = ApiClient::new(format!("http://{}", app.address()));
    let state = app.state();
    let shutdown = app.shutdown_handle();
    TestApp {
        api,
        state,
        shutdown,
        task: Some(tokio::spawn(app.run())),
    }
}

impl TestApp {
    /// Stops Herald and waits until it has let go of its port; panics unless
    /// it stops cleanly within 10 s.
    pub async fn stop(mut self) {
        self.shutdown.send_replace(true);
        let task = self.task.take().expect("a running app");
        let stopped = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("herald stops within 10 s of its shutdown signal (open event streams must not hold it)");
        stopped.expect("task").expect("herald stops cleanly");
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
            .api
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
            .api
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
            .api
            .gql(Some(inviter_token), "{ me { tenant { id } } }", json!({}))
            .await;
        let tenant = Uuid::parse_str(me["data"]["me"]["tenant"]["id"].as_str().unwrap()).unwrap();
        let (purpose, prefix) = api::identity::accounts::INVITATION;
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

    /// Waits until every projection has applied the whole log: for tests
    /// that read read-model tables behind the API (a mutation waits only
    /// for the read models its answer reads).
    pub async fn settled(&self) {
        let Some(last) = self.state.log.last().await.expect("the log's end") else {
            return;
        };
        let settled = self
            .state
            .projectors
            .wait_for_all(last, Duration::from_secs(30))
            .await
            .expect("checkpoints");
        assert!(settled, "the projections did not catch up within 30 s");
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
