//! `herald bench displays`: N signage displays hold their event streams open
//! against one Herald process (started by the bench as a child: `herald
//! serve` on SQLite, `herald api` on PostgreSQL), then an emergency override
//! starts. It reports how long connecting took, how long each display waited
//! for the override's push (p50/p99/max), how many got it, and the server's
//! resident memory.
//!
//! The displays are plain TCP connections with a hand-written HTTP/1.1 GET,
//! far cheaper per connection than an HTTP client, so one bench process can
//! hold as many as the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::server::{Client, Server};
use crate::support::{Summary, in_scratch, is_postgres, verdict};

/// SPEC §3: an emergency override reaches every display within this (p99)…
const TARGET_P99: Duration = Duration::from_secs(1);
/// …while the server stays below this resident memory.
const TARGET_RSS_BYTES: u64 = 1 << 30;
/// Registrations and pairings in flight.
const SETUP_CONCURRENCY: usize = 32;
/// Connections being opened at once (the rest wait their turn).
const CONNECT_CONCURRENCY: usize = 256;
/// How long every step may take before the run is called failed.
const STEP_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the bench waits for the override to reach the last display.
const PUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// File descriptors the bench needs besides one per display.
const SPARE_FDS: u64 = 256;

/// `herald bench displays`.
pub async fn displays(url: Option<&str>, displays: usize) -> anyhow::Result<()> {
    if url.is_some_and(|u| !is_postgres(u) && !u.starts_with("sqlite:")) {
        bail!("unsupported database URL: expected postgres://… or sqlite:…");
    }
    let limit = raise_open_files()?;
    if limit < displays as u64 + SPARE_FDS {
        bail!(
            "{displays} displays need about {} open files, but the hard limit is {limit}: raise it (ulimit -Hn) or pass fewer --displays",
            displays as u64 + SPARE_FDS
        );
    }
    let report = in_scratch(url, |db_url| run(db_url, displays)).await?;
    report.print(displays);
    Ok(())
}

/// Raises this process's soft limit of open files to the hard limit (a
/// child started afterwards inherits it); returns the new limit.
fn raise_open_files() -> anyhow::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error()).context("reading RLIMIT_NOFILE");
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error()).context("raising RLIMIT_NOFILE");
            }
        }
    }
    Ok(limit.rlim_cur)
}

/// What one run measured.
struct Report {
    backend: &'static str,
    connect_all: Duration,
    mutation: Duration,
    pushes: Summary,
    received: usize,
    lost: usize,
    rss: u64,
    hwm: u64,
}

impl Report {
    fn print(&self, displays: usize) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        println!(
            "herald bench displays: {displays} displays on one `herald {}` process ({})",
            if self.backend == "PostgreSQL" {
                "api"
            } else {
                "serve"
            },
            self.backend
        );
        println!(
            "connect: all {displays} streams open (hello received) in {:.2} s",
            self.connect_all.as_secs_f64()
        );
        println!(
            "emergency: startEmergency answered in {:.0} ms; push received by {}/{displays} ({} streams lost)",
            ms(self.mutation),
            self.received,
            self.lost
        );
        println!(
            "push latency (from sending the mutation): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms   target p99 < {} ms, all received   {}",
            ms(self.pushes.p50),
            ms(self.pushes.p99),
            ms(self.pushes.max),
            TARGET_P99.as_millis(),
            verdict(self.received == displays && self.pushes.p99 < TARGET_P99)
        );
        println!(
            "server memory: VmRSS {:.0} MiB, VmHWM (peak) {:.0} MiB   target < {:.0} MiB   {}",
            mib(self.rss),
            mib(self.hwm),
            mib(TARGET_RSS_BYTES),
            verdict(self.hwm < TARGET_RSS_BYTES)
        );
    }
}

/// Registers a display and pairs it; returns its device secret.
async fn paired_display(client: &Client, n: usize) -> anyhow::Result<String> {
    let response = client
        .http
        .post(format!("{}/display/v1/register", client.base))
        .json(&json!({}))
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    if status != reqwest::StatusCode::CREATED {
        bail!("register answered {status}: {body}");
    }
    let (Some(secret), Some(code)) = (body["deviceSecret"].as_str(), body["pairingCode"].as_str())
    else {
        bail!("register answered without a secret or code: {body}");
    };
    client
        .gql(
            "mutation($i: PairDisplayInput!) { pairDisplay(input: $i) { id } }",
            json!({"i": {"code": code, "name": format!("Bench display {n}")}}),
        )
        .await
        .with_context(|| format!("pairing display {n}"))?;
    Ok(secret.to_string())
}

/// What a display's connection reports to the bench.
pub enum Progress {
    /// The stream is open: its `hello` arrived.
    Hello,
    /// The emergency's push arrived at this instant.
    Pushed(Instant),
    /// The connection failed or ended.
    Failed(String),
}

async fn run(db_url: String, displays: usize) -> anyhow::Result<Report> {
    let backend = if is_postgres(&db_url) {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let mut server = Server::start(
        &db_url,
        &[
            // The bench registers every display from one address.
            ("HERALD_DISPLAY_REGISTRATIONS_PER_MINUTE", "1000000000"),
            // Every display connects from this one address.
            ("HERALD_MAX_CONNECTIONS_PER_IP", "1000000"),
            // Slow-statement notices are expected while thousands of
            // displays register at once.
            ("RUST_LOG", "warn,sqlx::query=error"),
        ],
    )
    .await?;
    let result = measure(&server, displays).await;
    server.stop().await?;
    let (connect_all, mutation, pushes, received, lost, (rss, hwm)) = result?;
    Ok(Report {
        backend,
        connect_all,
        mutation,
        pushes,
        received,
        lost,
        rss,
        hwm,
    })
}

/// Connect time, mutation time, push latencies, pushes received, streams
/// lost, and the server's (VmRSS, VmHWM) with every stream open.
type Measured = (Duration, Duration, Summary, usize, usize, (u64, u64));

async fn measure(server: &Server, displays: usize) -> anyhow::Result<Measured> {
    let mut client = Client::of(server, SETUP_CONCURRENCY)?;
    client.sign_up("Bench signage").await?;

    // Displays, registered and paired.
    let started = Instant::now();
    let mut secrets = Vec::with_capacity(displays);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..displays {
        if tasks.len() >= SETUP_CONCURRENCY
            && let Some(done) = tasks.join_next().await
        {
            secrets.push(done??);
        }
        let client = client.clone();
        tasks.spawn(async move { paired_display(&client, n).await });
    }
    while let Some(done) = tasks.join_next().await {
        secrets.push(done??);
    }
    eprintln!(
        "{displays} displays registered and paired in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Their event streams.
    let (progress, mut reports) = mpsc::unbounded_channel();
    let (stop, stopped) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let started = Instant::now();
    let streams: Vec<_> = secrets
        .into_iter()
        .map(|secret| {
            let (progress, stopped, gate) = (progress.clone(), stopped.clone(), gate.clone());
            let address = server.address;
            tokio::spawn(async move {
                if let Err(error) = listen(address, &secret, gate, &progress, stopped).await {
                    let _ = progress.send(Progress::Failed(format!("{error:#}")));
                }
            })
        })
        .collect();
    drop(progress);
    let outcome = async {
        let mut open = 0;
        while open < displays {
            match tokio::time::timeout(STEP_TIMEOUT, reports.recv()).await {
                Ok(Some(Progress::Hello)) => open += 1,
                Ok(Some(Progress::Failed(error))) => {
                    bail!("a display could not connect ({open} had): {error}")
                }
                Ok(Some(Progress::Pushed(_))) => bail!("a push arrived before the emergency"),
                Ok(None) | Err(_) => bail!("only {open} of {displays} streams opened"),
            }
        }
        let connect_all = started.elapsed();
        eprintln!(
            "{displays} streams open in {:.2} s",
            connect_all.as_secs_f64()
        );

        let sent = Instant::now();
        let emergency = client
            .gql(
                r#"mutation { startEmergency(input: {message: "bench", severity: HIGH}) { id } }"#,
                json!({}),
            )
            .await
            .context("starting the emergency")?;
        let mutation = sent.elapsed();
        let mut latencies = Vec::with_capacity(displays);
        let mut lost = 0;
        let deadline = tokio::time::Instant::now() + PUSH_TIMEOUT;
        while latencies.len() + lost < displays {
            match tokio::time::timeout_at(deadline, reports.recv()).await {
                Ok(Some(Progress::Pushed(at))) => latencies.push(at - sent),
                Ok(Some(Progress::Failed(error))) => {
                    if lost == 0 {
                        eprintln!("a stream failed: {error}");
                    }
                    lost += 1;
                }
                Ok(Some(Progress::Hello)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let received = latencies.len();
        let summary = Summary::of(latencies, sent.elapsed());
        let memory = server.memory()?;

        if let Some(id) = emergency["startEmergency"]["id"].as_str() {
            client
                .gql(
                    "mutation($id: ID!) { clearEmergency(id: $id) { id } }",
                    json!({"id": id}),
                )
                .await
                .context("clearing the emergency")?;
        }
        anyhow::Ok((connect_all, mutation, summary, received, lost, memory))
    };
    let outcome = outcome.await;
    stop.send_replace(true);
    for stream in streams {
        let _ = stream.await;
    }
    outcome
}

/// One display: opens its event stream, reports `hello` and the instant the
/// emergency's push arrives, and holds the connection until `stopped`.
pub async fn listen(
    address: SocketAddr,
    secret: &str,
    gate: Arc<Semaphore>,
    progress: &mpsc::UnboundedSender<Progress>,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let permit = gate.acquire_owned().await?;
    let stream = TcpStream::connect(address).await.context("connecting")?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    write
        .write_all(
            format!(
                "GET /display/v1/events HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {secret}\r\nAccept: text/event-stream\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    let mut events = Events {
        reader: BufReader::with_capacity(1024, read),
        line: String::new(),
    };
    let status = events.line().await?.to_string();
    if !status.starts_with("HTTP/1.1 200") {
        bail!("events answered {}", status.trim_end());
    }
    while !events.line().await?.trim_end().is_empty() {}
    let (event, _) = events.next().await?;
    if event != "hello" {
        bail!("the first event was {event:?}, not hello");
    }
    drop(permit);
    let _ = progress.send(Progress::Hello);

    let arrived = loop {
        tokio::select! {
            next = events.next() => {
                let (event, data) = next?;
                if event == "manifest-changed" {
                    let data: Value = serde_json::from_str(&data).context("push data is not JSON")?;
                    if data["emergency"]["message"] == "bench" {
                        break Instant::now();
                    }
                }
            }
            _ = stopped.wait_for(|stop| *stop) => return Ok(()),
        }
    };
    let _ = progress.send(Progress::Pushed(arrived));
    let _ = stopped.wait_for(|stop| *stop).await;
    Ok(())
}

/// Server-sent events read off a chunked HTTP/1.1 body, line by line. The
/// server sends each event as one chunk whose lines end in LF; the chunk
/// framing's own lines end in CRLF, so those are skipped.
struct Events {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: String,
}

impl Events {
    async fn line(&mut self) -> anyhow::Result<&str> {
        self.line.clear();
        if self.reader.read_line(&mut self.line).await? == 0 {
            bail!("the server closed the stream");
        }
        Ok(&self.line)
    }

    /// The next event's name and data; comments are skipped.
    async fn next(&mut self) -> anyhow::Result<(String, String)> {
        let (mut event, mut data) = (String::new(), String::new());
        loop {
            let line = self.line().await?;
            if line.ends_with("\r\n") {
                continue;
            }
            let line = line.trim_end_matches('\n');
            if line.is_empty() {
                if !event.is_empty() {
                    return Ok((event, data));
                }
            } else if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_string();
            } else if let Some(value) = line.strip_prefix("data: ") {
                data = value.to_string();
            }
        }
    }
}
