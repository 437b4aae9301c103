//! Benchmarks of the service levels in SPEC §3, run as `herald bench …`.
//!
//! `commands` measures command throughput and latency on PostgreSQL against
//! the machine's own ceiling (single-row inserts, as pgbench would run them);
//! `replay` seeds an event log shaped like real traffic and times a rebuild of
//! every read model; `publish` (in `bench_publish`) times worker processes
//! publishing posts due at once, and `displays` (in `bench_displays`) an
//! emergency override reaching thousands of connected signage displays. All
//! run in a scratch database that is removed afterwards, so they never touch
//! real data.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::DomainEvent;
use domain::Scoped;
use domain::campaign::{Campaign, CampaignCommand, CampaignEvent, CampaignSettings};
use domain::metadata::{Actor, EventMetadata};
use domain::post::{EntryInput, PostEntry, PostEvent, parse_entries};
use domain::schedule::{Recurrence, TimeZone};
use projections::db::Backend;
use projections::{Database, Projectors, Repository};
use sqlx::{Connection, Executor, PgConnection, QueryBuilder, Sqlite};
use uuid::Uuid;

/// SPEC §3: commands reach at least this share of the ceiling's throughput…
const TARGET_RATIO: f64 = 0.40;
/// …with a 99th-percentile latency below this.
const TARGET_P99: Duration = Duration::from_millis(50);
/// SPEC §3: replay rebuilds all read models at least this fast.
const TARGET_REPLAY_PER_SEC: f64 = 50_000.0;

/// Which benchmark to run.
#[derive(Debug, clap::Subcommand)]
pub enum Which {
    /// Command throughput and latency on PostgreSQL, next to the server's
    /// single-row insert ceiling at the same concurrency.
    Commands {
        /// PostgreSQL server to use; a scratch database is created on it.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// Concurrent clients.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Duration of each phase, in seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Tiny, fast run for CI (2 clients, 1 second per phase).
        #[arg(long)]
        smoke: bool,
    },
    /// Posts due in the same second published by one and by two worker
    /// processes to a local fake PDS: time until all are DONE, lateness,
    /// duplicates.
    Publish {
        /// PostgreSQL server for a scratch database.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// Posts due at the same instant.
        #[arg(long, default_value_t = 10_000)]
        posts: usize,
        /// Accounts they are spread over.
        #[arg(long, default_value_t = 50)]
        connections: usize,
        /// Tiny, fast run for CI (200 posts).
        #[arg(long)]
        smoke: bool,
    },
    /// Signage displays holding event streams open against one server
    /// process: time until an emergency override reaches all of them, and
    /// the server's resident memory.
    Displays {
        /// PostgreSQL server for a scratch database (served by `herald
        /// api`); without it (or with a `sqlite:` URL) a new SQLite file in
        /// a temporary directory (served by `herald serve`).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Concurrently connected displays.
        #[arg(long, default_value_t = 10_000)]
        displays: usize,
        /// Tiny, fast run for CI (200 displays).
        #[arg(long)]
        smoke: bool,
    },
    /// Rebuild speed of every read model from a seeded event log.
    Replay {
        /// PostgreSQL server for a scratch database; without it (or with a
        /// `sqlite:` URL) a new SQLite file in a temporary directory.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Events to seed.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// Tiny, fast run for CI (2,000 events).
        #[arg(long)]
        smoke: bool,
    },
}

/// Runs a benchmark and prints its figures.
pub async fn run(which: Which) -> anyhow::Result<()> {
    let smoke = matches!(
        which,
        Which::Commands { smoke: true, .. }
            | Which::Replay { smoke: true, .. }
            | Which::Publish { smoke: true, .. }
            | Which::Displays { smoke: true, .. }
    );
    SMOKE.store(smoke, std::sync::atomic::Ordering::Relaxed);
    match which {
        Which::Commands {
            database_url,
            clients,
            seconds,
            smoke,
        } => {
            let (clients, seconds) = if smoke { (2, 1) } else { (clients, seconds) };
            commands(&database_url, clients.max(1), Duration::from_secs(seconds)).await
        }
        Which::Publish {
            database_url,
            posts,
            connections,
            smoke,
        } => {
            let (posts, connections) = if smoke {
                (200, 5)
            } else {
                (posts, connections)
            };
            crate::bench_publish::publish(&database_url, posts.max(1), connections.max(1)).await
        }
        Which::Displays {
            database_url,
            displays,
            smoke,
        } => {
            let displays = if smoke { 200 } else { displays };
            crate::bench_displays::displays(database_url.as_deref(), displays.max(1)).await
        }
        Which::Replay {
            database_url,
            events,
            smoke,
        } => replay(database_url.as_deref(), if smoke { 2_000 } else { events }).await,
    }
}

pub(crate) fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `url` with its path (the database name) replaced by `name`, keeping the
/// query string, which may carry connection options.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let authority = url.find("://").context("database URL lacks a scheme")? + 3;
    let path = url[authority..]
        .find(['/', '?'])
        .map_or(url.len(), |i| authority + i);
    let query = url[path..].find('?').map_or(url.len(), |i| path + i);
    Ok(format!("{}/{name}{}", &url[..path], &url[query..]))
}

/// A database made for one run and removed after it.
enum Scratch {
    Postgres {
        server: String,
        name: String,
        url: String,
    },
    Sqlite {
        dir: PathBuf,
        url: String,
    },
}

impl Scratch {
    /// A new database on the PostgreSQL server of `url`, or a new SQLite file
    /// in a temporary directory when `url` is `None` or a `sqlite:` URL.
    async fn create(url: Option<&str>) -> anyhow::Result<Self> {
        let suffix = hex::encode(rand::random::<[u8; 6]>());
        match url {
            Some(server) if is_postgres(server) => {
                let name = format!("herald_bench_{suffix}");
                // Error messages leave the URL out: it may hold a password.
                let mut conn = PgConnection::connect(server)
                    .await
                    .context("connecting to the PostgreSQL server")?;
                conn.execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .context("creating the scratch database")?;
                conn.close().await?;
                Ok(Self::Postgres {
                    url: with_database(server, &name)?,
                    server: server.to_string(),
                    name,
                })
            }
            Some(other) if !other.starts_with("sqlite:") => {
                bail!("unsupported database URL: expected postgres://… or sqlite:…")
            }
            _ => {
                let dir = std::env::temp_dir().join(format!("herald_bench_{suffix}"));
                std::fs::create_dir_all(&dir).context("creating a temporary directory")?;
                let url = format!("sqlite://{}", dir.join("herald.db").display());
                Ok(Self::Sqlite { dir, url })
            }
        }
    }

    /// Where to connect.
    fn url(&self) -> &str {
        match self {
            Self::Postgres { url, .. } | Self::Sqlite { url, .. } => url,
        }
    }

    /// Drops the database (or deletes the SQLite directory).
    async fn remove(self) -> anyhow::Result<()> {
        match self {
            Self::Postgres { server, name, .. } => {
                let mut conn = PgConnection::connect(&server).await?;
                // FORCE: pools left open by a failed run must not keep it alive.
                conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .context("dropping the scratch database")?;
                conn.close().await?;
            }
            Self::Sqlite { dir, .. } => std::fs::remove_dir_all(&dir)?,
        }
        Ok(())
    }
}

/// Runs `bench` against a fresh scratch database and removes the database
/// afterwards, whether the benchmark succeeded or not.
pub(crate) async fn in_scratch<T, F, Fut>(url: Option<&str>, bench: F) -> anyhow::Result<T>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let scratch = Scratch::create(url).await?;
    let result = bench(scratch.url().to_string()).await;
    let removed = scratch.remove().await;
    let value = result?;
    removed?;
    Ok(value)
}

pub(crate) async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Database> {
    let db = Database::connect(url, max_connections)
        .await
        .context("connecting to the scratch database")?;
    db.migrate()
        .await
        .context("migrating the scratch database")?;
    Ok(db)
}

pub(crate) async fn close(db: Database) {
    db.any.close().await;
    match db.backend {
        Backend::Postgres(pool) => pool.close().await,
        Backend::Sqlite(pool) => pool.close().await,
    }
}

/// Latencies of one phase, reduced to what the report shows.
pub(crate) struct Summary {
    ops: usize,
    per_sec: f64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) max: Duration,
}

impl Summary {
    pub(crate) fn of(mut latencies: Vec<Duration>, elapsed: Duration) -> Self {
        latencies.sort_unstable();
        // Nearest-rank percentile.
        let rank = |p: f64| {
            let i = ((p * latencies.len() as f64).ceil() as usize).max(1) - 1;
            latencies.get(i).copied().unwrap_or_default()
        };
        Self {
            ops: latencies.len(),
            per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: latencies.last().copied().unwrap_or_default(),
        }
    }

    fn row(&self, label: &str) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        format!(
            "{label:<26} {:>9} {:>10.1} {:>8.2} {:>8.2} {:>8.2}",
            self.ops,
            self.per_sec,
            ms(self.p50),
            ms(self.p99),
            ms(self.max)
        )
    }
}

/// Set for `--smoke` runs, which are too small to judge against a target.
static SMOKE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(crate) fn verdict(pass: bool) -> &'static str {
    if SMOKE.load(std::sync::atomic::Ordering::Relaxed) {
        "(smoke run: not judged)"
    } else if pass {
        "PASS"
    } else {
        "FAIL"
    }
}

/// Runs one task per element of `clients` for `duration`, each calling `op`
/// in a loop and timing every call. `op` takes the task's state (such as its
/// own connection) and hands it back for the next call.
async fn drive<S, F, Fut>(clients: Vec<S>, duration: Duration, op: F) -> anyhow::Result<Summary>
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<S>> + Send + 'static,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut state| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    state = op(state).await?;
                    latencies.push(t.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    // Until the last in-flight call ended, not the deadline: that work counts.
    Ok(Summary::of(all, started.elapsed()))
}

/// `herald bench commands`.
async fn commands(url: &str, clients: usize, duration: Duration) -> anyhow::Result<()> {
    if !is_postgres(url) {
        bail!("the commands benchmark needs PostgreSQL: pass --database-url postgres://…");
    }
    let (ceiling, commands) = in_scratch(Some(url), |url| async move {
        let db = connect(&url, clients as u32 + 4).await?;
        let result = measure_commands(&db, clients, duration).await;
        close(db).await;
        result
    })
    .await?;

    println!(
        "herald bench commands: PostgreSQL, {clients} clients, {}s per phase",
        duration.as_secs()
    );
    println!(
        "{:<26} {:>9} {:>10} {:>8} {:>8} {:>8}",
        "phase", "ops", "ops/s", "p50 ms", "p99 ms", "max ms"
    );
    println!("{}", ceiling.row("ceiling: single INSERT"));
    println!("{}", commands.row("commands: Campaign Create"));
    let ratio = commands.per_sec / ceiling.per_sec;
    println!(
        "commands / ceiling  {:>6.1}%   target >= {:.0}%    {}",
        ratio * 100.0,
        TARGET_RATIO * 100.0,
        verdict(ratio >= TARGET_RATIO)
    );
    println!(
        "commands p99        {:>6.2} ms  target < {} ms    {}",
        commands.p99.as_secs_f64() * 1e3,
        TARGET_P99.as_millis(),
        verdict(commands.p99 < TARGET_P99)
    );
    Ok(())
}

async fn measure_commands(
    db: &Database,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<(Summary, Summary)> {
    let Backend::Postgres(pool) = &db.backend else {
        bail!("the commands benchmark needs PostgreSQL");
    };
    let pool = pool.clone();
    sqlx::query("CREATE TABLE bench_ceiling (id bigserial PRIMARY KEY, payload text NOT NULL)")
        .execute(&pool)
        .await?;
    // Phase A, as pgbench runs it: each client holds its own connection and
    // sends one autocommitted INSERT per call, one transaction in one round
    // trip. The payload is about the size of a stored event (payload and
    // metadata).
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(pool.acquire().await?);
    }
    let payload: Arc<str> = "x".repeat(600).into();
    let ceiling = drive(connections, duration, move |mut conn| {
        let payload = payload.clone();
        async move {
            sqlx::query("INSERT INTO bench_ceiling (payload) VALUES ($1)")
                .bind(&*payload)
                .execute(&mut *conn)
                .await?;
            Ok(conn)
        }
    })
    .await
    .context("ceiling phase")?;

    // Phase B: the full write path of a command (load, decide, append),
    // taking connections from the pool as the API does; phase A left them all
    // open. Nothing listens for commits: the write path is measured alone.
    let appended = Arc::new(tokio::sync::watch::channel(0).0);
    let repo = Arc::new(Repository::<Campaign>::new(db, appended));
    let tenant = Uuid::now_v7();
    let settings = campaign_settings(0)?;
    let commands = drive(vec![(); clients], duration, move |()| {
        let repo = repo.clone();
        let command = Scoped {
            tenant_id: tenant,
            command: CampaignCommand::Create(settings.clone()),
        };
        async move {
            let metadata = EventMetadata::new(tenant, Actor::System, Uuid::now_v7(), Utc::now());
            repo.create(&Uuid::now_v7().to_string(), command, &metadata)
                .await?;
            Ok(())
        }
    })
    .await
    .context("commands phase")?;
    Ok((ceiling, commands))
}

/// `herald bench replay`.
async fn replay(url: Option<&str>, events: usize) -> anyhow::Result<()> {
    let (backend, seeded, applied, elapsed, read_model) = in_scratch(url, |url| async move {
        let db = connect(&url, 12).await?;
        let result = async {
            let seeded = seed(&db, events).await.context("seeding events")?;
            let started = Instant::now();
            let applied = Projectors::new(db.clone())
                .replay(None, Duration::from_secs(5), |_, _, _| {})
                .await
                .context("replay failed")?;
            let elapsed = started.elapsed();
            let read_model: (i64, i64) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM rm_campaigns), (SELECT COUNT(*) FROM rm_posts)",
            )
            .fetch_one(&db.any)
            .await?;
            let backend = if db.is_postgres() {
                "PostgreSQL"
            } else {
                "SQLite"
            };
            anyhow::Ok((backend, seeded, applied, elapsed, read_model))
        }
        .await;
        close(db).await;
        result
    })
    .await?;

    let per_sec = applied as f64 / elapsed.as_secs_f64();
    println!("herald bench replay: {backend}, {seeded} events seeded");
    println!(
        "replayed {applied} events in {:.2}s: {per_sec:.0} events/s   target >= {TARGET_REPLAY_PER_SEC:.0}   {}",
        elapsed.as_secs_f64(),
        verdict(per_sec >= TARGET_REPLAY_PER_SEC)
    );
    println!(
        "read model: {} campaigns, {} posts",
        read_model.0, read_model.1
    );
    Ok(())
}

fn campaign_settings(n: usize) -> anyhow::Result<CampaignSettings> {
    let zones = ["Europe/Berlin", "America/New_York", "UTC", "Asia/Tokyo"];
    let start = NaiveDate::from_ymd_opt(2027, 1, 1).expect("valid date")
        + chrono::Days::new((n % 300) as u64);
    Ok(CampaignSettings::parse(
        &format!("Campaign {n}"),
        zones[n % zones.len()],
        start,
        start + chrono::Days::new(30),
    )?)
}

/// One row of the `events` table, serialized as the event store writes it.
struct EventRow {
    aggregate_type: &'static str,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: String,
    metadata: String,
}

impl EventRow {
    fn new<E: DomainEvent>(
        aggregate_type: &'static str,
        id: Uuid,
        sequence: i64,
        event: &E,
        metadata: &EventMetadata,
    ) -> Self {
        Self {
            aggregate_type,
            aggregate_id: id.to_string(),
            sequence,
            event_type: event.event_type(),
            event_version: event.event_version(),
            payload: serde_json::to_string(event).expect("events serialize"),
            metadata: serde_json::to_string(&metadata.to_map()).expect("metadata serializes"),
        }
    }
}

const POSTS_PER_CAMPAIGN: usize = 40;
const TENANTS: usize = 8;

/// Events shaped like real traffic: tenants with campaigns, each campaign
/// with posts of one or two entries, scheduled and sometimes moved, cancelled
/// or deleted.
struct Traffic {
    tenants: Vec<(Uuid, Uuid)>,
    threads: Vec<Vec<PostEntry>>,
    weekly: Recurrence,
    epoch: DateTime<Utc>,
}

impl Traffic {
    fn new() -> anyhow::Result<Self> {
        let entry = |text: &str, lang: &str| EntryInput {
            text: text.into(),
            langs: vec![lang.into()],
            media: vec![],
        };
        let threads = [
            vec![entry(
                "Spring launch is here! #launch https://example.com/spring",
                "en",
            )],
            vec![
                entry("What we built this year, a thread #recap", "en"),
                entry("Details and numbers: https://example.com/blog/recap", "en"),
            ],
            vec![entry("Neue Kampagne startet heute #frühling", "de")],
        ]
        .iter()
        .map(|t| parse_entries(t, false))
        .collect::<Result<_, _>>()?;
        let epoch: DateTime<Utc> = "2027-01-01T08:00:00Z".parse()?;
        Ok(Self {
            tenants: (0..TENANTS)
                .map(|_| (Uuid::now_v7(), Uuid::now_v7()))
                .collect(),
            threads,
            weekly: Recurrence::parse("FREQ=WEEKLY;BYDAY=MO", epoch, TimeZone::parse("UTC")?)?,
            epoch,
        })
    }

    /// Appends the events of campaign number `n` and its posts, in the order
    /// their commands would commit.
    fn campaign(&self, n: usize, out: &mut Vec<EventRow>) -> anyhow::Result<()> {
        let (tenant_id, user) = self.tenants[n % TENANTS];
        let settings = campaign_settings(n)?;
        let zone = settings.time_zone;
        let mut clock = self.epoch + chrono::Duration::minutes(n as i64);
        let mut meta = || {
            clock += chrono::Duration::seconds(1);
            EventMetadata::new(tenant_id, Actor::User(user), Uuid::now_v7(), clock)
        };
        let campaign_id = Uuid::now_v7();
        let created = CampaignEvent::CampaignCreated {
            tenant_id,
            settings,
        };
        out.push(EventRow::new("Campaign", campaign_id, 1, &created, &meta()));
        for p in 0..POSTS_PER_CAMPAIGN {
            let id = Uuid::now_v7();
            let at = self.epoch + chrono::Duration::hours((n + p) as i64 % 2000 + 1);
            let mut events = vec![
                PostEvent::PostCreated {
                    tenant_id,
                    campaign_id,
                    connection_id: None,
                    entries: self.threads[p % self.threads.len()].clone(),
                },
                PostEvent::PostScheduled {
                    at,
                    recurrence: (p % 10 == 0).then(|| self.weekly.clone()),
                    time_zone: zone,
                },
            ];
            // About one post in five is moved, one in ten cancelled (half of
            // those later deleted), one in twenty deleted while pending.
            if p % 5 == 1 {
                events.push(PostEvent::PostRescheduled {
                    at: at + chrono::Duration::minutes(30),
                });
            }
            if p % 10 == 3 {
                events.push(PostEvent::PostCancelled);
            }
            if p % 20 == 3 || p % 20 == 9 {
                events.push(PostEvent::PostDeleted);
            }
            for (i, event) in events.iter().enumerate() {
                out.push(EventRow::new("Post", id, i as i64 + 1, event, &meta()));
            }
        }
        Ok(())
    }
}

/// Events per insert transaction.
const SEED_BATCH: usize = 10_000;
/// Rows per SQLite statement: 8 parameters each keeps a statement far below
/// SQLite's limit of 32,766 bound parameters.
const SQLITE_ROWS_PER_INSERT: usize = 1_000;

/// Writes `events` events straight into the event table, in large batches.
/// Returns how many were written.
async fn seed(db: &Database, events: usize) -> anyhow::Result<usize> {
    let traffic = Traffic::new()?;
    let mut pending = Vec::with_capacity(SEED_BATCH + POSTS_PER_CAMPAIGN * 5);
    let mut written = 0;
    let mut n = 0;
    while written < events {
        traffic.campaign(n, &mut pending)?;
        n += 1;
        // The last campaign is cut short: a stream's prefix is a valid stream.
        pending.truncate(events - written);
        if pending.len() >= SEED_BATCH || written + pending.len() == events {
            insert(db, &pending, written as i64).await?;
            written += pending.len();
            pending.clear();
        }
    }
    if let Backend::Postgres(pool) = &db.backend {
        // A bulk-loaded table has no planner statistics until autovacuum comes
        // round; a live one has them, so give the log reader the same plans.
        sqlx::query("ANALYZE events").execute(pool).await?;
    }
    Ok(written)
}

/// Inserts `rows` in one transaction; `before` is how many events precede them.
async fn insert(db: &Database, rows: &[EventRow], before: i64) -> anyhow::Result<()> {
    match &db.backend {
        Backend::Postgres(pool) => {
            // One statement per batch: the arrays travel as seven parameters.
            let column = |f: fn(&EventRow) -> &str| rows.iter().map(f).collect::<Vec<_>>();
            sqlx::query(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
                 SELECT t, i, s, e, v, p::json, m::json
                   FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])
                     AS r (t, i, s, e, v, p, m)",
            )
            .bind(column(|r| r.aggregate_type))
            .bind(column(|r| &r.aggregate_id))
            .bind(rows.iter().map(|r| r.sequence).collect::<Vec<_>>())
            .bind(column(|r| &r.event_type))
            .bind(column(|r| &r.event_version))
            .bind(column(|r| &r.payload))
            .bind(column(|r| &r.metadata))
            .execute(pool)
            .await?;
        }
        Backend::Sqlite(pool) => {
            let mut tx = pool.begin().await?;
            let mut position = before;
            for chunk in rows.chunks(SQLITE_ROWS_PER_INSERT) {
                let mut query = QueryBuilder::<Sqlite>::new(
                    "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, global_position) ",
                );
                // Positions are given, so the trigger that assigns them (one
                // UPDATE per row) stays out of the seeding time.
                query.push_values(chunk, |mut b, row| {
                    position += 1;
                    b.push_bind(row.aggregate_type)
                        .push_bind(&row.aggregate_id)
                        .push_bind(row.sequence)
                        .push_bind(&row.event_type)
                        .push_bind(&row.event_version)
                        .push_bind(&row.payload)
                        .push_bind(&row.metadata)
                        .push_bind(position);
                });
                query.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
    }
    Ok(())
}
