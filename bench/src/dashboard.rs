//! `herald bench dashboard`: the dashboard's GraphQL reads under load, on a
//! tenant with 100,000 posts (SPEC §3: p95 < 25 ms at 200 requests/s; the
//! bench holds it to 10 ms).
//!
//! A Herald server runs as a child process (`herald serve` on SQLite,
//! `herald api` on PostgreSQL). The bench signs an organisation up through
//! the API, stops the server, appends the tenant's history straight into the
//! event store (campaigns, and posts drafted, scheduled, recurring,
//! rescheduled, published, failed and cancelled, some of them threads),
//! starts the server again and waits on `/ready` until its read models have
//! caught up. None of that is in the figures.
//!
//! It then sends the dashboard's queries over HTTP with the owner's bearer
//! token, in the mix of [`MIX`]:
//!
//! * open loop: requests due at a fixed rate (200/s for 30 s), each timed
//!   from the instant it was *due*, not from when it went out, so a slow
//!   server shows in the figures instead of slowing the schedule down
//!   (coordinated omission); at most [`OPEN_CONNECTIONS`] are in flight on
//!   as many keep-alive connections, and waiting for one counts;
//! * closed loop: 16 clients, each sending its next request as soon as the
//!   last one answered, for [`CLOSED_SECONDS`]: the most the server serves.
//!
//! A request fails when it does not answer 200 with JSON data, answers
//! GraphQL errors, or lacks what it asked for; a run with failures fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use domain::campaign::{CampaignEvent, CampaignSettings};
use domain::metadata::{Actor, EventMetadata};
use domain::post::{EntryInput, PostEntry, PostEvent, PostStatus, parse_entries};
use domain::publish::{FailureKind, PublishedEntry};
use domain::schedule::{Recurrence, TimeZone};
use projections::Database;
use projections::db::Backend;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use uuid::Uuid;

use crate::server::{Client, Server, SignedUp};
use crate::support::{EventRow, Summary, close, connect, in_scratch, insert, is_postgres, verdict};

/// The bench's target: p95 below this at the open loop's rate, no errors.
const TARGET_P95: Duration = Duration::from_millis(10);
/// SPEC §3's target for the same figure.
const SPEC_P95: Duration = Duration::from_millis(25);
/// Keep-alive connections (and so requests in flight) of the open loop.
const OPEN_CONNECTIONS: usize = 8;
/// Length of the closed loop.
const CLOSED_SECONDS: u64 = 10;
/// Unmeasured requests before the open loop, to open the connections and
/// warm the server's caches as a dashboard in use has them.
const WARM_UP_SECONDS: u64 = 2;
/// Posts per campaign: 100,000 posts make 200 campaigns.
const POSTS_PER_CAMPAIGN: usize = 500;
/// Events per insert transaction while seeding.
const SEED_BATCH: usize = 10_000;
/// How long the restarted server may take to catch its read models up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(1800);
/// How long one request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What `herald bench dashboard` was asked to do.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// Posts of the seeded tenant.
    pub(crate) posts: usize,
    /// Open loop: requests per second…
    pub(crate) rate: u32,
    /// …for this many seconds.
    pub(crate) seconds: u64,
    /// Closed loop: concurrent clients.
    pub(crate) clients: usize,
    /// Closed loop: its length.
    pub(crate) closed: Duration,
}

impl Options {
    /// The `--smoke` run: small enough for CI, large enough to use every
    /// query and both phases.
    pub(crate) fn smoke() -> Self {
        Self {
            posts: 2_000,
            rate: 50,
            seconds: 3,
            clients: 4,
            closed: Duration::from_secs(2),
        }
    }

    /// A full run.
    pub(crate) fn full(posts: usize, rate: u32, seconds: u64, clients: usize) -> Self {
        Self {
            posts: posts.max(1),
            rate: rate.max(1),
            seconds: seconds.max(1),
            clients: clients.max(1),
            closed: Duration::from_secs(CLOSED_SECONDS),
        }
    }
}

/// `herald bench dashboard`.
pub(crate) async fn dashboard(url: Option<&str>, options: Options) -> anyhow::Result<()> {
    if url.is_some_and(|u| !is_postgres(u) && !u.starts_with("sqlite:")) {
        bail!("unsupported database URL: expected postgres://… or sqlite:…");
    }
    let report = in_scratch(url, |db_url| run(db_url, options)).await?;
    report.print(&options);
    let failed = report.open.errors() + report.closed.errors();
    if failed > 0 {
        bail!("{failed} dashboard requests failed");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The queries and their mix

/// One of the dashboard's reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `campaigns(first: 50)` with each campaign's post counts per status.
    Campaigns,
    /// `posts(first: 20)`: the tenant's queue, next run first.
    Queue,
    /// `posts(filter: {campaignId}, first: 20)`: one campaign's queue.
    CampaignQueue,
    /// `post(id)` with its entries, published records and campaign.
    Post,
}

impl Kind {
    const ALL: [Kind; 4] = [
        Kind::Campaigns,
        Kind::Queue,
        Kind::CampaignQueue,
        Kind::Post,
    ];

    fn label(self) -> &'static str {
        match self {
            Kind::Campaigns => "campaigns(first: 50)",
            Kind::Queue => "posts(first: 20)",
            Kind::CampaignQueue => "posts(campaignId, first: 20)",
            Kind::Post => "post(id)",
        }
    }
}

/// The mix, repeated request after request: 30 % campaign lists, 30 % the
/// tenant's queue, 10 % a campaign's queue, 30 % single posts, interleaved so
/// that no query comes in runs.
const MIX: [Kind; 10] = [
    Kind::Campaigns,
    Kind::Queue,
    Kind::Post,
    Kind::Queue,
    Kind::Post,
    Kind::Campaigns,
    Kind::CampaignQueue,
    Kind::Post,
    Kind::Queue,
    Kind::Campaigns,
];

/// The query of the `i`th request.
fn kind_of(i: u64) -> Kind {
    MIX[(i % MIX.len() as u64) as usize]
}

/// Which of `n` rows the `i`th request reads: spread over all of them and
/// not in order, so that consecutive requests read different rows.
fn pick(i: u64, n: usize) -> usize {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 17) as usize % n.max(1)
}

/// When the `i`th request of the open loop is due, after its start.
fn due(i: u64, rate: u32) -> Duration {
    Duration::from_nanos(i * 1_000_000_000 / u64::from(rate.max(1)))
}

const CAMPAIGNS_QUERY: &str = "query Campaigns { campaigns(first: 50) { edges { cursor node { id name status timeZone startsOn endsOn postCounts { draft pending running done failed cancelled total } } } pageInfo { hasNextPage endCursor } } }";
const QUEUE_QUERY: &str = "query Queue($filter: PostFilter) { posts(first: 20, filter: $filter) { edges { cursor node { id campaignId status nextRunAt recurrence attempts lastError entries { text } } } pageInfo { hasNextPage endCursor } } }";
const POST_QUERY: &str = "query Post($id: ID!) { post(id: $id) { id campaignId status nextRunAt recurrence createdAt updatedAt attempts lastError nextRetryAt entries { text langs graphemes facets { kind value byteStart byteEnd } } published { index uri url } campaign { id name } } }";

/// Sends the mix to the server as the tenant's owner.
struct Requests {
    http: reqwest::Client,
    url: String,
    token: String,
    campaigns: Vec<Uuid>,
    posts: Vec<Uuid>,
}

impl Requests {
    fn new(base: &str, token: &str, tenant: &Tenant, connections: usize) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(connections)
                .tcp_nodelay(true)
                .timeout(REQUEST_TIMEOUT)
                .build()?,
            url: format!("{base}/graphql"),
            token: token.to_string(),
            campaigns: tenant.campaigns.clone(),
            posts: tenant.posts.clone(),
        })
    }

    /// Sends the `i`th request; `Err` says why it failed.
    async fn send(&self, i: u64) -> Result<(), String> {
        let kind = kind_of(i);
        let (query, variables, wanted) = match kind {
            Kind::Campaigns => (CAMPAIGNS_QUERY, json!({}), None),
            Kind::Queue => (QUEUE_QUERY, json!({}), None),
            Kind::CampaignQueue => {
                let campaign = self.campaigns[pick(i, self.campaigns.len())].to_string();
                (
                    QUEUE_QUERY,
                    json!({"filter": {"campaignId": campaign}}),
                    None,
                )
            }
            Kind::Post => {
                let post = self.posts[pick(i, self.posts.len())].to_string();
                (POST_QUERY, json!({"id": post}), Some(post))
            }
        };
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .map_err(|e| format!("{}: {e}", kind.label()))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("{}: answered {status}, unreadable: {e}", kind.label()))?;
        check(kind, status, &body, wanted.as_deref()).map_err(|e| format!("{}: {e}", kind.label()))
    }
}

/// Whether a response is what `kind` asked for.
fn check(
    kind: Kind,
    status: reqwest::StatusCode,
    body: &Value,
    post: Option<&str>,
) -> Result<(), String> {
    if let Some(errors) = body.get("errors") {
        return Err(format!("answered {status} with errors {errors}"));
    }
    if status != reqwest::StatusCode::OK {
        return Err(format!("answered {status}"));
    }
    let data = &body["data"];
    let answered = match kind {
        Kind::Campaigns => data["campaigns"]["edges"]
            .as_array()
            .is_some_and(|e| !e.is_empty()),
        Kind::Queue | Kind::CampaignQueue => data["posts"]["edges"].is_array(),
        Kind::Post => data["post"]["id"].as_str() == post,
    };
    if answered {
        Ok(())
    } else {
        Err(format!("answered without what it asked for: {data}"))
    }
}

// ---------------------------------------------------------------------------
// The seeded tenant

/// How a seeded post's life went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Created, never scheduled.
    Draft,
    /// Scheduled once, in the future.
    Scheduled,
    /// Scheduled weekly, first run in the future.
    Recurring,
    /// Scheduled, then moved to a later time.
    Rescheduled,
    /// Scheduled in the past and published, every entry.
    Published,
    /// Scheduled in the past; one transient failure, then one that ended it.
    Failed,
    /// Scheduled, then cancelled.
    Cancelled,
}

/// Fates of twenty posts in a row, repeated: 15 % drafts, 40 % pending
/// (scheduled, recurring or moved), 30 % published, 5 % failed, 10 %
/// cancelled.
const FATES: [Fate; 20] = [
    Fate::Published,
    Fate::Scheduled,
    Fate::Draft,
    Fate::Published,
    Fate::Scheduled,
    Fate::Cancelled,
    Fate::Published,
    Fate::Scheduled,
    Fate::Rescheduled,
    Fate::Published,
    Fate::Failed,
    Fate::Scheduled,
    Fate::Draft,
    Fate::Published,
    Fate::Scheduled,
    Fate::Recurring,
    Fate::Published,
    Fate::Scheduled,
    Fate::Cancelled,
    Fate::Draft,
];

impl Fate {
    fn of(post: usize) -> Self {
        FATES[post % FATES.len()]
    }

    /// The status the post ends in.
    fn status(self) -> PostStatus {
        match self {
            Fate::Draft => PostStatus::Draft,
            Fate::Scheduled | Fate::Recurring | Fate::Rescheduled => PostStatus::Pending,
            Fate::Published => PostStatus::Done,
            Fate::Failed => PostStatus::Failed,
            Fate::Cancelled => PostStatus::Cancelled,
        }
    }
}

/// Posts per status (in [`PostStatus::ALL`] order) of a tenant with `posts`
/// posts.
fn expected_counts(posts: usize) -> [i64; 6] {
    let mut counts = [0; 6];
    for p in 0..posts {
        let status = Fate::of(p).status();
        let at = PostStatus::ALL
            .iter()
            .position(|s| *s == status)
            .expect("every status is listed");
        counts[at] += 1;
    }
    counts
}

/// The seeded tenant's campaigns and posts.
struct Tenant {
    campaigns: Vec<Uuid>,
    posts: Vec<Uuid>,
    events: usize,
}

/// Writes the tenant's history for the signed-up owner into the event log,
/// in batches, as its commands would have appended it.
async fn seed(db: &Database, owner: &SignedUp, posts: usize) -> anyhow::Result<Tenant> {
    let history = History::new(owner)?;
    // SQLite numbers the log in the rows themselves: continue after the
    // sign-up's events.
    let (head,): (Option<i64>,) = sqlx::query_as("SELECT MAX(global_position) FROM events")
        .fetch_one(&db.any)
        .await?;
    let mut written = head.unwrap_or(0);
    let mut tenant = Tenant {
        campaigns: Vec::new(),
        posts: Vec::with_capacity(posts),
        events: 0,
    };
    let mut pending = Vec::with_capacity(SEED_BATCH + POSTS_PER_CAMPAIGN * 8);
    let campaigns = posts.div_ceil(POSTS_PER_CAMPAIGN);
    for c in 0..campaigns {
        let ids = c * POSTS_PER_CAMPAIGN..((c + 1) * POSTS_PER_CAMPAIGN).min(posts);
        let campaign = history.campaign(c, &mut pending)?;
        tenant.campaigns.push(campaign);
        for p in ids {
            tenant
                .posts
                .push(history.post(p, campaign, c, &mut pending)?);
        }
        if pending.len() >= SEED_BATCH || c + 1 == campaigns {
            insert(db, &pending, written).await?;
            written += pending.len() as i64;
            tenant.events += pending.len();
            pending.clear();
        }
    }
    if let Backend::Postgres(pool) = &db.backend {
        // As in the replay bench: a live log has planner statistics.
        sqlx::query("ANALYZE events").execute(pool).await?;
    }
    Ok(tenant)
}

/// Builds the events of the tenant's campaigns and posts.
struct History {
    tenant_id: Uuid,
    user: Uuid,
    /// When the tenant's first campaign was created.
    start: DateTime<Utc>,
    now: DateTime<Utc>,
    threads: Vec<Vec<PostEntry>>,
    zones: Vec<TimeZone>,
}

impl History {
    fn new(owner: &SignedUp) -> anyhow::Result<Self> {
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
            vec![
                entry("Three things we learned running 200 campaigns 🧵", "en"),
                entry("1. Schedule early. The queue does the rest. #tips", "en"),
                entry("2. Threads get read. 3. https://example.com/guide", "en"),
            ],
        ]
        .iter()
        .map(|t| parse_entries(t, false))
        .collect::<Result<_, _>>()?;
        let now = Utc::now();
        Ok(Self {
            tenant_id: owner.tenant_id,
            user: owner.user_id,
            start: now - chrono::Duration::days(100),
            now,
            threads,
            zones: ["Europe/Berlin", "America/New_York", "UTC", "Asia/Tokyo"]
                .into_iter()
                .map(TimeZone::parse)
                .collect::<Result<_, _>>()?,
        })
    }

    fn meta(&self, actor: Actor, at: DateTime<Utc>) -> EventMetadata {
        EventMetadata::new(self.tenant_id, actor, Uuid::now_v7(), at)
    }

    /// Campaign `n`: created and activated; one in ten later paused.
    fn campaign(&self, n: usize, out: &mut Vec<EventRow>) -> anyhow::Result<Uuid> {
        let id = Uuid::now_v7();
        let created = self.start + chrono::Duration::minutes(n as i64);
        let zone = self.zones[n % self.zones.len()];
        let settings = CampaignSettings::parse(
            &format!("Campaign {n}"),
            zone.name(),
            created.date_naive(),
            (self.now + chrono::Duration::days(90)).date_naive(),
        )?;
        let mut events = vec![
            CampaignEvent::CampaignCreated {
                tenant_id: self.tenant_id,
                settings,
            },
            CampaignEvent::CampaignActivated,
        ];
        if n % 10 == 9 {
            events.push(CampaignEvent::CampaignPaused);
        }
        for (i, event) in events.iter().enumerate() {
            let at = created + chrono::Duration::seconds(i as i64);
            out.push(EventRow::new(
                "Campaign",
                id,
                i as i64 + 1,
                event,
                &self.meta(Actor::User(self.user), at),
            ));
        }
        Ok(id)
    }

    /// Post `p` of the tenant, in campaign number `c`, as [`Fate::of`] says.
    fn post(
        &self,
        p: usize,
        campaign_id: Uuid,
        c: usize,
        out: &mut Vec<EventRow>,
    ) -> anyhow::Result<Uuid> {
        let id = Uuid::now_v7();
        let user = Actor::User(self.user);
        let created =
            self.start + chrono::Duration::days(1) + chrono::Duration::seconds(30 * p as i64);
        let entries = self.threads[p % self.threads.len()].clone();
        let zone = self.zones[c % self.zones.len()];
        // Future runs spread over the next 60 days, not in creation order.
        let future = self.now
            + chrono::Duration::hours(2)
            + chrono::Duration::minutes((p as i64 * 7_919) % (60 * 24 * 60));
        // Past runs a day or so after the post was written.
        let past = created + chrono::Duration::hours(24 + (p % 24) as i64);
        let scheduled =
            |at: DateTime<Utc>, recurrence: Option<Recurrence>| PostEvent::PostScheduled {
                at,
                recurrence,
                time_zone: zone,
            };
        let mut events = vec![(
            user.clone(),
            created,
            PostEvent::PostCreated {
                tenant_id: self.tenant_id,
                campaign_id,
                connection_id: None,
                entries: entries.clone(),
            },
        )];
        let a_minute_later = created + chrono::Duration::minutes(1);
        match Fate::of(p) {
            Fate::Draft => {}
            Fate::Scheduled => events.push((user.clone(), a_minute_later, scheduled(future, None))),
            Fate::Recurring => {
                let weekly = Recurrence::parse("FREQ=WEEKLY", future, zone)?;
                events.push((
                    user.clone(),
                    a_minute_later,
                    scheduled(future, Some(weekly)),
                ));
            }
            Fate::Rescheduled => {
                events.push((user.clone(), a_minute_later, scheduled(future, None)));
                events.push((
                    user.clone(),
                    a_minute_later + chrono::Duration::hours(1),
                    PostEvent::PostRescheduled {
                        at: future + chrono::Duration::hours(3),
                    },
                ));
            }
            Fate::Cancelled => {
                events.push((user.clone(), a_minute_later, scheduled(future, None)));
                events.push((
                    user.clone(),
                    a_minute_later + chrono::Duration::hours(2),
                    PostEvent::PostCancelled,
                ));
            }
            Fate::Published => {
                events.push((user.clone(), a_minute_later, scheduled(past, None)));
                events.push((
                    Actor::System,
                    past,
                    PostEvent::PublishStarted {
                        occurrence: past,
                        attempt: 1,
                    },
                ));
                for index in 0..entries.len() as u32 {
                    let rkey = format!("3bench{p:07}x{index}");
                    events.push((
                        Actor::System,
                        past + chrono::Duration::seconds(i64::from(index) + 1),
                        PostEvent::EntryPublished {
                            occurrence: past,
                            entry: PublishedEntry {
                                index,
                                uri: format!(
                                    "at://did:plc:benchdashboard/app.bsky.feed.post/{rkey}"
                                ),
                                rkey,
                                cid: format!("bafyreibench{p:07}x{index}"),
                                warnings: vec![],
                            },
                        },
                    ));
                }
                events.push((
                    Actor::System,
                    past + chrono::Duration::seconds(entries.len() as i64 + 1),
                    PostEvent::PublishSucceeded {
                        occurrence: past,
                        next_at: None,
                    },
                ));
            }
            Fate::Failed => {
                let retry = past + chrono::Duration::minutes(1);
                events.push((user.clone(), a_minute_later, scheduled(past, None)));
                for (attempt, at, kind, message, retry_at) in [
                    (
                        1,
                        past,
                        FailureKind::Transient,
                        "connection reset",
                        Some(retry),
                    ),
                    (2, retry, FailureKind::Invalid, "text too long", None),
                ] {
                    events.push((
                        Actor::System,
                        at,
                        PostEvent::PublishStarted {
                            occurrence: past,
                            attempt,
                        },
                    ));
                    events.push((
                        Actor::System,
                        at + chrono::Duration::seconds(1),
                        PostEvent::PublishFailed {
                            occurrence: past,
                            attempt,
                            kind,
                            message: message.into(),
                            retry_at,
                        },
                    ));
                }
            }
        }
        for (i, (actor, at, event)) in events.iter().enumerate() {
            out.push(EventRow::new(
                "Post",
                id,
                i as i64 + 1,
                event,
                &self.meta(actor.clone(), *at),
            ));
        }
        Ok(id)
    }
}

// ---------------------------------------------------------------------------
// The run

/// One request's outcome.
struct Outcome {
    kind: Kind,
    latency: Duration,
    error: Option<String>,
}

/// The outcomes of one phase.
struct Phase {
    outcomes: Vec<Outcome>,
    elapsed: Duration,
}

impl Phase {
    fn errors(&self) -> usize {
        self.outcomes.iter().filter(|o| o.error.is_some()).count()
    }

    /// Latencies of the requests of `kind` (all, when `None`), errors
    /// included, and how many of them failed.
    fn summary(&self, kind: Option<Kind>) -> (Summary, usize) {
        let chosen = || {
            self.outcomes
                .iter()
                .filter(move |o| kind.is_none_or(|k| o.kind == k))
        };
        let errors = chosen().filter(|o| o.error.is_some()).count();
        (
            Summary::of(chosen().map(|o| o.latency).collect(), self.elapsed),
            errors,
        )
    }

    /// The first few distinct error messages.
    fn first_errors(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for message in self.outcomes.iter().filter_map(|o| o.error.as_deref()) {
            if !seen.contains(&message) {
                seen.push(message);
                if seen.len() == 3 {
                    break;
                }
            }
        }
        seen
    }
}

/// What one run measured.
struct Report {
    backend: &'static str,
    campaigns: usize,
    events: usize,
    counts: [i64; 6],
    seeding: Duration,
    catch_up: Duration,
    open: Phase,
    closed: Phase,
}

impl Report {
    fn print(&self, options: &Options) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let counts: Vec<String> = PostStatus::ALL
            .iter()
            .zip(self.counts)
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{} {n}", s.as_str()))
            .collect();
        println!(
            "herald bench dashboard: {}, one `herald {}` process; a tenant with {} posts in {} campaigns ({})",
            self.backend,
            if self.backend == "PostgreSQL" {
                "api"
            } else {
                "serve"
            },
            options.posts,
            self.campaigns,
            counts.join(", ")
        );
        println!(
            "seeding (not measured): {} events appended in {:.1} s; read models caught up (/ready) {:.1} s after the restart",
            self.events,
            self.seeding.as_secs_f64(),
            self.catch_up.as_secs_f64()
        );
        println!(
            "open loop: {} req/s for {} s, {OPEN_CONNECTIONS} keep-alive connections; latency from each request's scheduled send time",
            options.rate, options.seconds
        );
        println!(
            "{:<30} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8}",
            "query", "requests", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms"
        );
        let row = |label: &str, (s, errors): (Summary, usize)| {
            println!(
                "{label:<30} {:>8} {errors:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                s.ops,
                ms(s.p50),
                ms(s.p95),
                ms(s.p99),
                ms(s.max)
            );
        };
        for kind in Kind::ALL {
            row(kind.label(), self.open.summary(Some(kind)));
        }
        let (all, errors) = self.open.summary(None);
        row("all", self.open.summary(None));
        println!(
            "open loop: p95 {:.2} ms at {} req/s, {errors} errors   target p95 < {} ms, no errors   {}",
            ms(all.p95),
            options.rate,
            TARGET_P95.as_millis(),
            verdict(errors == 0 && all.p95 < TARGET_P95),
        );
        println!(
            "SPEC §3 (p95 < {} ms at 200 req/s with 100,000 posts): {}",
            SPEC_P95.as_millis(),
            verdict(errors == 0 && all.p95 < SPEC_P95)
        );
        let (closed, closed_errors) = self.closed.summary(None);
        println!(
            "closed loop: {} clients for {:.0} s: {:.0} req/s at most; p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {closed_errors} errors",
            options.clients,
            options.closed.as_secs_f64(),
            closed.per_sec,
            ms(closed.p50),
            ms(closed.p95),
            ms(closed.p99),
            ms(closed.max)
        );
        for (phase, name) in [(&self.open, "open loop"), (&self.closed, "closed loop")] {
            for message in phase.first_errors() {
                println!("{name} error: {message}");
            }
        }
    }
}

async fn run(db_url: String, options: Options) -> anyhow::Result<Report> {
    let mut server = Server::start(
        &db_url,
        // Quiet: `/ready` answers 503 until the read models caught up, and
        // catching up on a bulk-loaded log runs slow statements; failed
        // requests are counted by the bench itself.
        &[(
            "RUST_LOG",
            "warn,sqlx::query=error,tower_http=off,workers::mail=error",
        )],
    )
    .await?;
    let result = measure(&mut server, &db_url, &options).await;
    server.stop().await?;
    result
}

async fn measure(server: &mut Server, db_url: &str, options: &Options) -> anyhow::Result<Report> {
    let backend = if is_postgres(db_url) {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let mut client = Client::of(server, 1)?;
    let owner = client.sign_up("Bench dashboard").await?;
    let token = client.token.clone().context("signed up without a token")?;

    // The history goes in while the server is down, so that its restart
    // pins the log's head and `/ready` says when the read models hold it.
    server.stop().await?;
    let started = Instant::now();
    let db = connect(db_url, 4).await?;
    let tenant = seed(&db, &owner, options.posts).await;
    close(db).await;
    let tenant = tenant.context("seeding the tenant")?;
    let seeding = started.elapsed();
    eprintln!(
        "{} events of {} posts appended in {:.1} s; waiting for the read models",
        tenant.events,
        options.posts,
        seeding.as_secs_f64()
    );
    let started = Instant::now();
    server.resume().await?;
    server.wait_for("/ready", CATCH_UP_TIMEOUT).await?;
    let catch_up = started.elapsed();
    if is_postgres(db_url) {
        // Autovacuum analyzes a table this changed within a minute or so; a
        // dashboard in use has statistics on its read models.
        let db = connect(db_url, 1).await?;
        let analyzed = match &db.backend {
            Backend::Postgres(pool) => sqlx::query("ANALYZE").execute(pool).await.map(|_| ()),
            Backend::Sqlite(_) => Ok(()),
        };
        close(db).await;
        analyzed.context("analyzing the read models")?;
    }
    let counts = counts_shown(&client).await?;
    let expected = expected_counts(options.posts);
    if counts != expected {
        bail!("the dashboard counts {counts:?} posts per status, the bench seeded {expected:?}");
    }

    let base = format!("http://{}", server.address);
    let open = Arc::new(Requests::new(&base, &token, &tenant, OPEN_CONNECTIONS)?);
    closed_loop(
        open.clone(),
        OPEN_CONNECTIONS,
        Duration::from_secs(WARM_UP_SECONDS),
    )
    .await?;
    let open_phase = open_loop(open, options.rate, options.seconds).await?;
    let closed = Arc::new(Requests::new(&base, &token, &tenant, options.clients)?);
    let closed_phase = closed_loop(closed, options.clients, options.closed).await?;
    Ok(Report {
        backend,
        campaigns: tenant.campaigns.len(),
        events: tenant.events,
        counts,
        seeding,
        catch_up,
        open: open_phase,
        closed: closed_phase,
    })
}

/// Posts per status over all the tenant's campaigns, as the dashboard shows
/// them (in [`PostStatus::ALL`] order).
async fn counts_shown(client: &Client) -> anyhow::Result<[i64; 6]> {
    let mut counts = [0; 6];
    let mut after = Value::Null;
    loop {
        let data = client
            .gql(
                "query($after: String) { campaigns(first: 100, after: $after) { edges { node { postCounts { draft pending running done failed cancelled } } } pageInfo { hasNextPage endCursor } } }",
                json!({"after": after}),
            )
            .await
            .context("reading the campaigns' post counts")?;
        let page = &data["campaigns"];
        for edge in page["edges"].as_array().context("no campaigns")? {
            let shown = &edge["node"]["postCounts"];
            for (count, status) in counts.iter_mut().zip(PostStatus::ALL) {
                *count += shown[status.as_str().to_lowercase()]
                    .as_i64()
                    .context("a post count is missing")?;
            }
        }
        if page["pageInfo"]["hasNextPage"] != true {
            return Ok(counts);
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
}

/// Requests due `rate` times a second for `seconds`, at most
/// [`OPEN_CONNECTIONS`] in flight; each timed from when it was due.
async fn open_loop(requests: Arc<Requests>, rate: u32, seconds: u64) -> anyhow::Result<Phase> {
    let total = u64::from(rate) * seconds;
    let gate = Arc::new(Semaphore::new(OPEN_CONNECTIONS));
    let (done, mut outcomes) = mpsc::unbounded_channel();
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    for i in 0..total {
        let scheduled = start + due(i, rate);
        tokio::time::sleep_until(scheduled).await;
        let (requests, gate, done) = (requests.clone(), gate.clone(), done.clone());
        tokio::spawn(async move {
            let result = match gate.acquire().await {
                Ok(_permit) => requests.send(i).await,
                Err(_) => Err("the connection gate closed".to_string()),
            };
            let _ = done.send(Outcome {
                kind: kind_of(i),
                latency: scheduled.elapsed(),
                error: result.err(),
            });
        });
    }
    drop(done);
    let mut all = Vec::with_capacity(total as usize);
    while let Some(outcome) = outcomes.recv().await {
        all.push(outcome);
    }
    if all.len() as u64 != total {
        bail!(
            "{} of {total} requests never reported",
            total - all.len() as u64
        );
    }
    Ok(Phase {
        outcomes: all,
        elapsed: start.elapsed(),
    })
}

/// `clients` clients, each sending its next request as soon as the last
/// answered, for `length`; each request timed from when it went out.
async fn closed_loop(
    requests: Arc<Requests>,
    clients: usize,
    length: Duration,
) -> anyhow::Result<Phase> {
    let started = Instant::now();
    let deadline = started + length;
    let tasks: Vec<_> = (0..clients as u64)
        .map(|client| {
            let requests = requests.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                let mut i = client;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let result = requests.send(i).await;
                    outcomes.push(Outcome {
                        kind: kind_of(i),
                        latency: sent.elapsed(),
                        error: result.err(),
                    });
                    i += clients as u64;
                }
                outcomes
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await?);
    }
    // Until the last request in flight answered: that work counts.
    Ok(Phase {
        outcomes: all,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_is_three_tenths_campaigns_queue_and_post_one_tenth_campaign_queue() {
        let count = |kind| (0..1_000).filter(|i| kind_of(*i) == kind).count();
        assert_eq!(count(Kind::Campaigns), 300);
        assert_eq!(count(Kind::Queue), 300);
        assert_eq!(count(Kind::CampaignQueue), 100);
        assert_eq!(count(Kind::Post), 300);
    }

    #[test]
    fn mix_never_sends_the_same_query_three_times_in_a_row() {
        for i in 0..100 {
            assert!(
                !(kind_of(i) == kind_of(i + 1) && kind_of(i + 1) == kind_of(i + 2)),
                "requests {i}..{} are all {:?}",
                i + 2,
                kind_of(i)
            );
        }
    }

    #[test]
    fn schedule_spaces_requests_evenly_within_the_phase() {
        assert_eq!(due(0, 200), Duration::ZERO);
        assert_eq!(due(1, 200), Duration::from_millis(5));
        assert_eq!(due(200, 200), Duration::from_secs(1));
        // The last of 30 s at 200/s is due 5 ms before the end, not after.
        assert_eq!(due(5_999, 200), Duration::from_millis(29_995));
        assert_eq!(due(2, 3), Duration::from_nanos(666_666_666));
    }

    #[test]
    fn picks_cover_every_row_and_stay_in_range() {
        let mut seen = [0; 7];
        for i in 0..700 {
            seen[pick(i, 7)] += 1;
        }
        assert!(seen.iter().all(|n| *n > 0), "{seen:?}");
        assert_eq!(pick(5, 1), 0);
        assert_ne!(
            (0..5).map(|i| pick(i, 1_000)).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn fates_give_the_documented_status_shares() {
        let counts = expected_counts(100_000);
        let share =
            |status: PostStatus| counts[PostStatus::ALL.iter().position(|s| *s == status).unwrap()];
        assert_eq!(share(PostStatus::Draft), 15_000);
        assert_eq!(share(PostStatus::Pending), 40_000);
        assert_eq!(share(PostStatus::Running), 0);
        assert_eq!(share(PostStatus::Done), 30_000);
        assert_eq!(share(PostStatus::Failed), 5_000);
        assert_eq!(share(PostStatus::Cancelled), 10_000);
    }

    #[test]
    fn check_rejects_errors_other_statuses_and_the_wrong_post() {
        let ok = reqwest::StatusCode::OK;
        let post = json!({"data": {"post": {"id": "a"}}});
        assert!(check(Kind::Post, ok, &post, Some("a")).is_ok());
        assert!(check(Kind::Post, ok, &post, Some("b")).is_err());
        assert!(check(Kind::Post, ok, &json!({"data": {"post": null}}), Some("a")).is_err());
        let errors = json!({"data": null, "errors": [{"message": "no"}]});
        assert!(check(Kind::Queue, ok, &errors, None).is_err());
        let queue = json!({"data": {"posts": {"edges": []}}});
        assert!(check(Kind::Queue, ok, &queue, None).is_ok());
        assert!(check(Kind::Queue, reqwest::StatusCode::BAD_GATEWAY, &queue, None).is_err());
        let no_campaigns = json!({"data": {"campaigns": {"edges": []}}});
        assert!(check(Kind::Campaigns, ok, &no_campaigns, None).is_err());
    }
}
