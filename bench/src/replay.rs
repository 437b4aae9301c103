//! `herald bench replay`: rebuild speed of every read model from a seeded
//! event log shaped like real traffic.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use domain::campaign::CampaignEvent;
use domain::metadata::{Actor, EventMetadata};
use domain::post::{EntryInput, PostEntry, PostEvent, parse_entries};
use domain::schedule::{Recurrence, TimeZone};
use projections::db::Backend;
use projections::{Database, Projectors};
use sqlx::{QueryBuilder, Sqlite};
use uuid::Uuid;

use crate::support::{campaign_settings, close, connect, in_scratch, verdict};

/// SPEC §3: replay rebuilds all read models at least this fast.
const TARGET_REPLAY_PER_SEC: f64 = 50_000.0;

/// `herald bench replay`.
pub(crate) async fn replay(url: Option<&str>, events: usize) -> anyhow::Result<()> {
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
