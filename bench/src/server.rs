//! The Herald server a benchmark drives over HTTP (a child process of the
//! bench's own binary) and a GraphQL client for it.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use projections::MasterKey;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::process::Child;

use crate::support::is_postgres;

/// The server under test, stopped (SIGTERM, then SIGKILL) when dropped
/// without [`Server::stop`].
pub(crate) struct Server {
    child: Child,
    pub(crate) address: SocketAddr,
    data_dir: std::path::PathBuf,
}

impl Server {
    /// Starts `herald serve` (SQLite) or `herald api` (PostgreSQL) on a free
    /// loopback port and waits until it answers.
    pub(crate) async fn start(db_url: &str) -> anyhow::Result<Self> {
        let address = free_address()?;
        let data_dir = std::env::temp_dir().join(format!(
            "herald_bench_data_{}",
            hex::encode(rand::random::<[u8; 6]>())
        ));
        std::fs::create_dir_all(&data_dir).context("creating a data directory")?;
        let (_, master_key) = MasterKey::generate();
        let exe = std::env::current_exe().context("finding the herald binary")?;
        let child = tokio::process::Command::new(exe)
            .arg(if is_postgres(db_url) { "api" } else { "serve" })
            .env("DATABASE_URL", db_url)
            .env("HERALD_LISTEN", address.to_string())
            .env("HERALD_MASTER_KEY", master_key.expose_secret())
            .env("HERALD_DATA_DIR", &data_dir)
            // The bench registers every display from one address.
            .env("HERALD_DISPLAY_REGISTRATIONS_PER_MINUTE", "1000000000")
            // Every display connects from this one address.
            .env("HERALD_MAX_CONNECTIONS_PER_IP", "1000000")
            // Pairing ten thousand displays may outlast the default token.
            .env("HERALD_ACCESS_TTL_SECONDS", "86400")
            // Slow-statement notices are expected while thousands of
            // displays register at once.
            .env("RUST_LOG", "warn,sqlx::query=error")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting the herald server")?;
        let server = Self {
            child,
            address,
            data_dir,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let url = format!("http://{}/health", self.address);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the server did not answer /health within a minute");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// (VmRSS, VmHWM) of the server process, in bytes.
    pub(crate) fn memory(&self) -> anyhow::Result<(u64, u64)> {
        let pid = self.child.id().context("the server has exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .context("reading the server's /proc status")?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("{name} missing from /proc status"))?;
            let kib: u64 = line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .with_context(|| format!("unreadable {name}"))?;
            Ok(kib * 1024)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Asks the server to shut down and waits for it (killing it after 15 s).
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill only sends a signal to our own child.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
                .await
                .is_err()
            {
                eprintln!("the server did not stop within 15 s; killing it");
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A loopback address with a port nobody listens on right now.
pub(crate) fn free_address() -> anyhow::Result<SocketAddr> {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(probe.local_addr()?)
}

/// GraphQL and REST calls as a signed-up user.
#[derive(Clone)]
pub(crate) struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) token: Option<String>,
}

impl Client {
    /// A GraphQL request; its `data`, or an error carrying its `errors`.
    pub(crate) async fn gql(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .post(format!("{}/graphql", self.base))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let body: Value = request.send().await?.json().await?;
        if let Some(errors) = body.get("errors") {
            bail!("GraphQL error: {errors}");
        }
        Ok(body["data"].clone())
    }

    /// Signs a new organisation up and keeps its access token.
    pub(crate) async fn sign_up(&mut self) -> anyhow::Result<()> {
        let data = self
            .gql(
                "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken } }",
                json!({"i": {
                    "organization": "Bench",
                    "email": format!("bench-{}@example.org", hex::encode(rand::random::<[u8; 4]>())),
                    "password": "correct horse battery staple",
                }}),
            )
            .await
            .context("signing up")?;
        let token = data["signUp"]["accessToken"]
            .as_str()
            .context("signUp returned no access token")?;
        self.token = Some(token.to_string());
        Ok(())
    }
}
