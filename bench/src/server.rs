//! A Herald server process under test and a GraphQL client for it, shared by
//! the benchmarks that measure a real server (`displays`, `dashboard`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use projections::MasterKey;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::process::Child;
use uuid::Uuid;

use crate::support::is_postgres;

/// The server under test (`herald serve` on SQLite, `herald api` on
/// PostgreSQL), started as a child of the bench. Killed when dropped while
/// running; [`Server::stop`] stops it gracefully.
pub(crate) struct Server {
    child: Option<Child>,
    pub(crate) address: SocketAddr,
    data_dir: PathBuf,
    db_url: String,
    /// Kept so that a restarted server reads the keys (and so the tokens)
    /// of the first start.
    master_key: String,
    env: Vec<(&'static str, String)>,
}

impl Server {
    /// Starts a server on `db_url` with `env` set besides the settings every
    /// bench needs, and waits until it answers `/health`.
    pub(crate) async fn start(db_url: &str, env: &[(&'static str, &str)]) -> anyhow::Result<Self> {
        let address = free_address()?;
        let data_dir = std::env::temp_dir().join(format!(
            "herald_bench_data_{}",
            hex::encode(rand::random::<[u8; 6]>())
        ));
        std::fs::create_dir_all(&data_dir).context("creating a data directory")?;
        let (_, master_key) = MasterKey::generate();
        let mut server = Self {
            child: None,
            address,
            data_dir,
            db_url: db_url.to_string(),
            master_key: master_key.expose_secret().to_string(),
            env: env.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        };
        server.resume().await?;
        Ok(server)
    }

    /// Starts the process again (after [`Server::stop`]) with the same
    /// database, address, data directory and keys; waits for `/health`.
    pub(crate) async fn resume(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("the server is already running");
        }
        let exe = std::env::current_exe().context("finding the herald binary")?;
        let mut command = tokio::process::Command::new(exe);
        command
            .arg(if is_postgres(&self.db_url) {
                "api"
            } else {
                "serve"
            })
            .env("DATABASE_URL", &self.db_url)
            .env("HERALD_LISTEN", self.address.to_string())
            .env("HERALD_MASTER_KEY", &self.master_key)
            .env("HERALD_DATA_DIR", &self.data_dir)
            // A bench's setup may outlast the default token.
            .env("HERALD_ACCESS_TTL_SECONDS", "86400")
            .env("RUST_LOG", "warn");
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let child = command
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting the herald server")?;
        self.child = Some(child);
        self.wait_for("/health", Duration::from_secs(60)).await
    }

    /// Waits until `GET path` answers 2xx, for at most `timeout`.
    pub(crate) async fn wait_for(&self, path: &str, timeout: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let url = format!("http://{}{path}", self.address);
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the server did not answer {path} within {} s",
                    timeout.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// (VmRSS, VmHWM) of the server process, in bytes.
    pub(crate) fn memory(&self) -> anyhow::Result<(u64, u64)> {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .context("the server has exited")?;
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
    pub(crate) async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            // SAFETY: kill only sends a signal to our own child.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            if tokio::time::timeout(Duration::from_secs(15), child.wait())
                .await
                .is_err()
            {
                eprintln!("the server did not stop within 15 s; killing it");
                child.kill().await?;
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
fn free_address() -> anyhow::Result<SocketAddr> {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(probe.local_addr()?)
}

/// Who [`Client::sign_up`] made.
pub(crate) struct SignedUp {
    pub(crate) tenant_id: Uuid,
    pub(crate) user_id: Uuid,
}

/// GraphQL and REST calls as a signed-up user.
#[derive(Clone)]
pub(crate) struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) token: Option<String>,
}

impl Client {
    /// A client of `server` keeping up to `connections` idle connections.
    pub(crate) fn of(server: &Server, connections: usize) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(connections)
                .build()?,
            base: format!("http://{}", server.address),
            token: None,
        })
    }

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

    /// Signs up a new organisation and keeps its owner's access token.
    pub(crate) async fn sign_up(&mut self, organization: &str) -> anyhow::Result<SignedUp> {
        let data = self
            .gql(
                "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken user { id } tenant { id } } }",
                json!({"i": {
                    "organization": organization,
                    "email": format!("bench-{}@example.org", hex::encode(rand::random::<[u8; 4]>())),
                    "password": "correct horse battery staple",
                }}),
            )
            .await
            .context("signing up")?;
        let field = |path: &[&str]| {
            path.iter()
                .fold(&data["signUp"], |v, k| &v[*k])
                .as_str()
                .with_context(|| format!("signUp returned no {}", path.join(".")))
        };
        let token = field(&["accessToken"])?.to_string();
        let signed_up = SignedUp {
            tenant_id: field(&["tenant", "id"])?.parse()?,
            user_id: field(&["user", "id"])?.parse()?,
        };
        self.token = Some(token);
        Ok(signed_up)
    }
}
