//! `herald bench replay`: rebuild speed of every read model from a seeded
//! event log shaped like real traffic.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use domain::campaign::CampaignEvent;
use domain::metadata::{Actor, EventMetadata};
use domain::post::{EntryInput, PostEntry, PostEvent, parse_entries};
use domain::schedule::{Recurrence, TimeZone};
use projections::db::Backend;
use projections::{Database, Projectors};
use uuid::Uuid;

use crate::support::{EventRow, campaign_settings, close, connect, in_scratch, insert, verdict};

/// Issue 15 (SPEC §3 said 50,000): replay rebuilds all read models at
/// least this fast.
const TARGET_REPLAY_PER_SEC: f64 = 100_000.0;

/// `herald bench replay`.
pub(crate) async fn replay(url: Option<&str>, events: usize) -> anyhow::Result<()> {
    let (backend, seeded, replayed, elapsed, read_model) = in_scratch(url, |url| async move {
        let db = connect(&url, 12).await?;
        let result = async {
            let seeded = seed(&db, events).await.context("seeding events")?;
            let started = Instant::now();
            let replayed = Projectors::new(db.clone())
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
            anyhow::Ok((backend, seeded, replayed, elapsed, read_model))
        }
        .await;
        close(db).await;
        result
    })
    .await?;

    let applied = replayed.events;
    let per_sec = applied as f64 / elapsed.as_secs_f64();
    println!("herald bench replay: {backend}, {seeded} events seeded");
    println!(
        "replayed {applied} events in {:.2}s: {per_sec:.0} events/s   target >= {TARGET_REPLAY_PER_SEC:.0}   {}",
        elapsed.as_secs_f64(),
        verdict(per_sec >= TARGET_REPLAY_PER_SEC)
    );
    println!("{replayed}");
    println!(
        "read model: {} campaigns, {} posts",
        read_model.0, read_model.1
    );
    Ok(())
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
