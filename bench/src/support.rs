//! What every benchmark uses: scratch databases, events appended in bulk,
//! latency summaries and the verdict against a target.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use cqrs_es::DomainEvent;
use domain::campaign::CampaignSettings;
use domain::metadata::EventMetadata;
use projections::Database;
use projections::db::Backend;
use sqlx::{Connection, Executor, PgConnection, QueryBuilder, Sqlite};
use uuid::Uuid;

/// Whether `url` names a PostgreSQL server.
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
    pub(crate) ops: usize,
    pub(crate) per_sec: f64,
    pub(crate) p50: Duration,
    pub(crate) p95: Duration,
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
            p95: rank(0.95),
            p99: rank(0.99),
            max: latencies.last().copied().unwrap_or_default(),
        }
    }

    pub(crate) fn row(&self, label: &str) -> String {
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
pub(crate) static SMOKE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(crate) fn verdict(pass: bool) -> &'static str {
    if SMOKE.load(std::sync::atomic::Ordering::Relaxed) {
        "(smoke run: not judged)"
    } else if pass {
        "PASS"
    } else {
        "FAIL"
    }
}

/// Settings of the `n`th campaign a benchmark seeds.
pub(crate) fn campaign_settings(n: usize) -> anyhow::Result<CampaignSettings> {
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
pub(crate) struct EventRow {
    aggregate_type: &'static str,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: String,
    metadata: String,
}

impl EventRow {
    pub(crate) fn new<E: DomainEvent>(
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

/// Rows per SQLite statement: 8 parameters each keeps a statement far below
/// SQLite's limit of 32,766 bound parameters.
const SQLITE_ROWS_PER_INSERT: usize = 1_000;

/// Inserts `rows` in one transaction; `before` is how many events precede
/// them (on SQLite, the global position of the last event before them).
pub(crate) async fn insert(db: &Database, rows: &[EventRow], before: i64) -> anyhow::Result<()> {
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
