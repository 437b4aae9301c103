//! The publisher against a scripted fake platform, on a fresh SQLite file:
//! its pure rules first, then whole attempts, checked by the events they
//! record and the platform calls they make. Time is the test's clock.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex as StdMutex;

use async_trait::async_trait;
use chrono::TimeDelta;
use domain::connection::ConnectionStatus;
use domain::handle::Handle;
use domain::post::{
    CampaignFacts, ConnectionFacts, EntryInput, PostEvent, PostStatus, ScheduleWindow,
    parse_entries,
};
use domain::schedule::TimeZone;
use domain::sealed::Sealed;
use projections::Database;

use super::*;
use crate::platform::{Counts, PlatformKind};

fn at(rfc3339: &str) -> DateTime<Utc> {
    rfc3339.parse().unwrap()
}

fn t0() -> DateTime<Utc> {
    at("2030-03-01T09:00:00Z")
}

fn connection(tenant: Uuid, status: ConnectionStatus) -> Connection {
    Connection {
        tenant_id: Some(tenant),
        status: Some(status),
        ..Connection::default()
    }
}

// ---------------------------------------------------------------------------
// Pure rules
// ---------------------------------------------------------------------------

#[test]
fn a_degraded_or_paused_connection_makes_posts_wait_and_a_missing_one_fails_them() {
    let tenant = Uuid::from_u128(1);
    let active = connection(tenant, ConnectionStatus::Active);
    let later = t0() + TimeDelta::minutes(5);
    assert_eq!(admit(Some(&active), tenant, None, t0()), Admission::Go);
    assert_eq!(
        admit(Some(&active), tenant, Some(later), t0()),
        Admission::Wait(Some(later))
    );
    assert_eq!(
        admit(Some(&active), tenant, Some(t0()), t0()),
        Admission::Go,
        "a pause that ended holds nothing back"
    );
    assert_eq!(
        admit(
            Some(&connection(tenant, ConnectionStatus::Degraded)),
            tenant,
            None,
            t0()
        ),
        Admission::Wait(None)
    );
    assert_eq!(
        admit(
            Some(&connection(tenant, ConnectionStatus::Revoked)),
            tenant,
            None,
            t0()
        ),
        Admission::Refuse("the post's connection was disconnected")
    );
    assert_eq!(
        admit(Some(&active), Uuid::from_u128(2), None, t0()),
        Admission::Refuse(NO_CONNECTION),
        "another tenant's connection is no connection"
    );
    assert_eq!(
        admit(Some(&Connection::default()), tenant, None, t0()),
        Admission::Refuse(NO_CONNECTION)
    );
    assert_eq!(
        admit(None, tenant, None, t0()),
        Admission::Refuse(NO_CONNECTION)
    );
}

#[test]
fn only_a_rate_limit_pauses_a_connection_until_its_reset_or_a_minute() {
    let reset = t0() + TimeDelta::minutes(15);
    let limited = |retry_after| PlatformError::RateLimited {
        message: "429".into(),
        retry_after,
    };
    assert_eq!(pause_until(&limited(Some(reset)), t0()), Some(reset));
    assert_eq!(
        pause_until(&limited(None), t0()),
        Some(t0() + TimeDelta::seconds(60))
    );
    assert_eq!(
        pause_until(&PlatformError::Transient("reset".into()), t0()),
        None
    );
    assert_eq!(pause_until(&PlatformError::Auth("no".into()), t0()), None);
}

// ---------------------------------------------------------------------------
// The fake platform
// ---------------------------------------------------------------------------

/// A call the fake platform received.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Publish {
        key: String,
        created_at: DateTime<Utc>,
        root: Option<String>,
        parent: Option<String>,
    },
    Find(String),
    Refresh,
}

/// How the fake answers the next publish.
enum Answer {
    /// Fails; nothing is created.
    Fail(PlatformError),
    /// The entry is created, but the answer is lost with this error.
    LandsButFails(PlatformError),
}

#[derive(Default)]
struct FakeState {
    calls: Vec<Call>,
    /// Answers to publishes, in order; once empty, publishes succeed.
    script: VecDeque<Answer>,
    records: HashMap<String, Record>,
    /// Whether `refresh` works.
    refresh_refused: bool,
}

/// An in-memory platform: records every call, answers from a script.
#[derive(Clone, Default)]
struct Fake(Arc<StdMutex<FakeState>>);

impl Fake {
    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.0.lock().unwrap()
    }

    fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state().script.extend(answers);
    }

    fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    fn publishes(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| matches!(c, Call::Publish { .. }))
            .count()
    }

    /// A publish that failed ambiguously lands after all.
    fn land(&self, key: &str) {
        let record = Self::record(key);
        self.state().records.insert(key.into(), record);
    }

    fn record(key: &str) -> Record {
        Record {
            uri: format!("fake://records/{key}"),
            cid: format!("cid-{key}"),
        }
    }
}

#[async_trait]
impl Platform for Fake {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Bluesky
    }

    async fn publish(
        &self,
        _: Account<'_>,
        key: &str,
        entry: &Entry,
    ) -> Result<Published, PlatformError> {
        let mut state = self.state();
        state.calls.push(Call::Publish {
            key: key.into(),
            created_at: entry.created_at,
            root: entry.reply_to.as_ref().map(|t| t.root.uri.clone()),
            parent: entry.reply_to.as_ref().map(|t| t.parent.uri.clone()),
        });
        let record = Self::record(key);
        match state.script.pop_front() {
            Some(Answer::Fail(error)) => Err(error),
            Some(Answer::LandsButFails(error)) => {
                state.records.insert(key.into(), record);
                Err(error)
            }
            None => {
                // Like Bluesky: a key is created once.
                if state.records.contains_key(key) {
                    return Err(PlatformError::Ambiguous("the key exists".into()));
                }
                state.records.insert(key.into(), record.clone());
                Ok(Published {
                    record,
                    warnings: vec![],
                })
            }
        }
    }

    async fn find(&self, _: Account<'_>, key: &str) -> Result<Option<Record>, PlatformError> {
        let mut state = self.state();
        state.calls.push(Call::Find(key.into()));
        Ok(state.records.get(key).cloned())
    }

    async fn delete(&self, _: Account<'_>, key: &str) -> Result<(), PlatformError> {
        self.state().records.remove(key);
        Ok(())
    }

    async fn engagement(&self, _: Account<'_>, _: &[String]) -> Result<Vec<Counts>, PlatformError> {
        Ok(vec![])
    }

    async fn refresh(&self, _: Account<'_>) -> Result<(), PlatformError> {
        let mut state = self.state();
        state.calls.push(Call::Refresh);
        if state.refresh_refused {
            return Err(PlatformError::Auth("the app password was revoked".into()));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------

struct Fixture {
    publisher: Publisher,
    platform: Fake,
    posts: Repository<Post>,
    connections: Repository<Connection>,
    db: Database,
    path: std::path::PathBuf,
    clock: Arc<StdMutex<DateTime<Utc>>>,
    tenant: Uuid,
    connection: Uuid,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

/// Retries after 10 s, 20 s, …; three attempts.
fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base: TimeDelta::seconds(10),
        cap: TimeDelta::hours(1),
    }
}

async fn fixture() -> Fixture {
    let path =
        std::env::temp_dir().join(format!("herald-publisher-{}.db", Uuid::new_v4().simple()));
    let db = Database::connect(&format!("sqlite://{}", path.display()), 4)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let appended = Arc::new(watch::channel(0).0);
    let platform = Fake::default();
    let clock = Arc::new(StdMutex::new(t0()));
    let now = clock.clone();
    let publisher = Publisher::new(
        ScheduleIndex::new(&db),
        Repository::new(&db, appended.clone()),
        Repository::new(&db, appended.clone()),
        Repository::new(&db, appended.clone()),
        Platforms::new().with(platform.clone()),
        MediaStore::memory(),
        PublisherConfig {
            retry: policy(),
            ..PublisherConfig::default()
        },
    )
    .with_clock(move || *now.lock().unwrap());
    let fixture = Fixture {
        publisher,
        platform,
        posts: Repository::new(&db, appended.clone()),
        connections: Repository::new(&db, appended),
        db,
        path,
        clock,
        tenant: Uuid::now_v7(),
        connection: Uuid::now_v7(),
    };
    fixture
        .connections
        .execute(
            &fixture.connection.to_string(),
            Scoped {
                tenant_id: fixture.tenant,
                command: ConnectionCommand::ConnectBluesky {
                    handle: Handle::parse("alice.test", "handle").unwrap(),
                    did: "did:plc:alice".into(),
                    service_url: "http://pds.invalid".into(),
                    credentials: Sealed::from_stored("sealed"),
                },
            },
            &fixture.metadata(),
        )
        .await
        .unwrap();
    fixture
}

impl Fixture {
    fn metadata(&self) -> EventMetadata {
        EventMetadata::new(self.tenant, Actor::System, Uuid::now_v7(), Utc::now())
    }

    fn now(&self) -> DateTime<Utc> {
        *self.clock.lock().unwrap()
    }

    fn set_now(&self, now: DateTime<Utc>) {
        *self.clock.lock().unwrap() = now;
    }

    /// A post of `texts` (a thread when more than one) scheduled for `due`.
    async fn post(&self, texts: &[&str], due: DateTime<Utc>) -> Uuid {
        let id = Uuid::now_v7();
        let inputs: Vec<EntryInput> = texts
            .iter()
            .map(|text| EntryInput {
                text: text.to_string(),
                ..EntryInput::default()
            })
            .collect();
        let commands = [
            PostCommand::Create {
                campaign: CampaignFacts {
                    id: Uuid::now_v7(),
                    archived: false,
                },
                connection: Some(ConnectionFacts {
                    id: self.connection,
                    status: ConnectionStatus::Active,
                }),
                entries: parse_entries(&inputs, false).unwrap(),
            },
            PostCommand::Schedule {
                at: due,
                recurrence: None,
                window: ScheduleWindow {
                    time_zone: TimeZone::parse("UTC").unwrap(),
                    starts_on: "2030-01-01".parse().unwrap(),
                    ends_on: "2030-12-31".parse().unwrap(),
                },
                now: self.now(),
            },
        ];
        for command in commands {
            self.posts
                .execute(
                    &id.to_string(),
                    Scoped {
                        tenant_id: self.tenant,
                        command,
                    },
                    &self.metadata(),
                )
                .await
                .unwrap();
        }
        id
    }

    /// What a worker does with the post once claimed; answers when it
    /// would look again.
    async fn fire(&self, post: Uuid) -> DateTime<Utc> {
        let claim = Claim {
            post_id: post,
            tenant_id: self.tenant,
            connection_id: Some(self.connection),
        };
        let again = self.publisher.publish(&claim).await.unwrap();
        projections::from_micros(again)
    }

    async fn state(&self, post: Uuid) -> Post {
        self.posts.load(&post.to_string()).await.unwrap()
    }

    /// The post's events from the store, in order.
    async fn events(&self, post: Uuid) -> Vec<PostEvent> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT CAST(payload AS text) FROM events
              WHERE aggregate_type = 'Post' AND aggregate_id = $1 ORDER BY sequence",
        )
        .bind(post.to_string())
        .fetch_all(&self.db.any)
        .await
        .unwrap();
        rows.iter()
            .map(|(payload,)| serde_json::from_str(payload).unwrap())
            .collect()
    }

    /// The events after creation and scheduling.
    async fn publishing_events(&self, post: Uuid) -> Vec<PostEvent> {
        let mut events = self.events(post).await;
        assert!(matches!(events[0], PostEvent::PostCreated { .. }));
        assert!(matches!(events[1], PostEvent::PostScheduled { .. }));
        events.drain(..2);
        events
    }
}

fn key(post: Uuid, occurrence: DateTime<Utc>, index: usize) -> String {
    record_key(post, occurrence, index).as_str().to_string()
}

fn uri(post: Uuid, occurrence: DateTime<Utc>, index: usize) -> String {
    Fake::record(&key(post, occurrence, index)).uri
}

fn publish(post: Uuid, occurrence: DateTime<Utc>, index: usize) -> Call {
    Call::Publish {
        key: key(post, occurrence, index),
        created_at: occurrence,
        root: None,
        parent: None,
    }
}

/// A publish of entry `index` replying to entry `parent` of the thread.
fn reply(post: Uuid, occurrence: DateTime<Utc>, index: usize, parent: usize) -> Call {
    Call::Publish {
        key: key(post, occurrence, index),
        created_at: occurrence,
        root: Some(uri(post, occurrence, 0)),
        parent: Some(uri(post, occurrence, parent)),
    }
}

fn find(post: Uuid, occurrence: DateTime<Utc>, index: usize) -> Call {
    Call::Find(key(post, occurrence, index))
}

/// The `retry_at` of a `PublishFailed`, with its attempt and kind.
fn failed(event: &PostEvent) -> (u32, FailureKind, Option<DateTime<Utc>>) {
    match event {
        PostEvent::PublishFailed {
            attempt,
            kind,
            retry_at,
            ..
        } => (*attempt, *kind, *retry_at),
        other => panic!("expected PublishFailed, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Attempts
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_post_fires_at_its_time_and_not_before() {
    let f = fixture().await;
    let due = t0() + TimeDelta::hours(1);
    let post = f.post(&["good morning"], due).await;

    for now in [t0(), due - TimeDelta::milliseconds(1)] {
        f.set_now(now);
        assert_eq!(f.fire(post).await, due, "looks again when it is due");
    }
    assert_eq!(f.platform.calls(), vec![]);
    assert_eq!(f.publishing_events(post).await, vec![]);

    f.set_now(due);
    f.fire(post).await;
    assert_eq!(f.platform.calls(), vec![publish(post, due, 0)]);
    let events = f.publishing_events(post).await;
    assert_eq!(
        events[0],
        PostEvent::PublishStarted {
            occurrence: due,
            attempt: 1
        }
    );
    assert!(
        matches!(&events[1], PostEvent::EntryPublished { occurrence, entry }
            if *occurrence == due && entry.uri == uri(post, due, 0) && entry.rkey == key(post, due, 0))
    );
    assert_eq!(
        events[2],
        PostEvent::PublishSucceeded {
            occurrence: due,
            next_at: None
        }
    );
    assert_eq!(events.len(), 3);
    assert_eq!(f.state(post).await.status, Some(PostStatus::Done));

    // Done: firing again does nothing.
    f.set_now(due + TimeDelta::days(1));
    f.fire(post).await;
    assert_eq!(f.platform.publishes(), 1);
}

#[tokio::test]
async fn a_transient_failure_is_retried_with_backoff_up_to_the_attempt_limit_then_failed() {
    let f = fixture().await;
    let due = t0() + TimeDelta::minutes(1);
    let post = f.post(&["flaky network"], due).await;
    f.platform.script((0..3).map(|_| {
        Answer::Fail(PlatformError::Transient(
            "createRecord: connection refused".into(),
        ))
    }));

    let mut now = due;
    for attempt in 1..=3u32 {
        f.set_now(now);
        f.fire(post).await;
        let events = f.publishing_events(post).await;
        let (n, kind, retry_at) = failed(events.last().unwrap());
        assert_eq!((n, kind), (attempt, FailureKind::Transient));
        assert_eq!(f.platform.publishes(), attempt as usize);
        if attempt == 3 {
            assert_eq!(retry_at, None, "the last attempt gives up");
            break;
        }
        // Full jitter under a bound that doubles: 10 s, then 20 s.
        let retry_at = retry_at.expect("retried");
        let bound = policy().base * (1 << (attempt - 1));
        assert!(
            retry_at >= now && retry_at <= now + bound,
            "attempt {attempt}: retry at {retry_at}, bound {bound}"
        );
        let state = f.state(post).await;
        assert_eq!(state.status, Some(PostStatus::Pending));
        assert_eq!(state.next_attempt_at, Some(retry_at));
        if retry_at > now {
            f.set_now(retry_at - TimeDelta::microseconds(1));
            assert_eq!(
                f.fire(post).await,
                retry_at,
                "no attempt before the backoff"
            );
            assert_eq!(f.platform.publishes(), attempt as usize);
        }
        now = retry_at;
    }

    let state = f.state(post).await;
    assert_eq!(state.status, Some(PostStatus::Failed));
    assert_eq!(
        state.last_error,
        Some((
            FailureKind::Transient,
            "createRecord: connection refused".into()
        ))
    );
    f.set_now(now + TimeDelta::days(1));
    f.fire(post).await;
    assert_eq!(
        f.platform.publishes(),
        3,
        "a FAILED post is not tried again"
    );
    let starts = f
        .events(post)
        .await
        .iter()
        .filter(|e| matches!(e, PostEvent::PublishStarted { .. }))
        .count();
    assert_eq!(starts, 3);
}

#[tokio::test]
async fn a_rate_limit_pauses_the_connection_until_retry_after() {
    let f = fixture().await;
    let due = t0() + TimeDelta::minutes(1);
    let reset = due + TimeDelta::minutes(15);
    let first = f.post(&["first"], due).await;
    let second = f.post(&["second"], due).await;
    f.platform.script([Answer::Fail(PlatformError::RateLimited {
        message: "createRecord: HTTP 429 RateLimitExceeded".into(),
        retry_after: Some(reset),
    })]);

    f.set_now(due);
    f.fire(first).await;
    let events = f.publishing_events(first).await;
    assert_eq!(
        failed(&events[1]),
        (1, FailureKind::RateLimited, Some(reset)),
        "retried at the platform's reset, not sooner"
    );

    // The other post of the connection waits, without an attempt.
    assert_eq!(f.fire(second).await, reset);
    f.set_now(reset - TimeDelta::seconds(1));
    assert_eq!(f.fire(second).await, reset);
    assert_eq!(f.platform.publishes(), 1);
    assert_eq!(f.publishing_events(second).await, vec![]);

    f.set_now(reset);
    f.fire(second).await;
    f.fire(first).await;
    assert_eq!(
        f.platform.calls(),
        vec![
            publish(first, due, 0),
            publish(second, due, 0),
            find(first, due, 0),
            publish(first, due, 0),
        ]
    );
    for post in [first, second] {
        assert_eq!(f.state(post).await.status, Some(PostStatus::Done));
    }
}

#[tokio::test]
async fn an_entry_created_despite_an_ambiguous_failure_is_found_and_not_published_twice() {
    let f = fixture().await;
    let due = t0() + TimeDelta::minutes(1);
    let post = f.post(&["timed out after sending"], due).await;
    f.platform
        .script([Answer::LandsButFails(PlatformError::Ambiguous(
            "createRecord: operation timed out".into(),
        ))]);

    f.set_now(due);
    f.fire(post).await;
    assert_eq!(
        f.platform.calls(),
        vec![publish(post, due, 0), find(post, due, 0)]
    );
    let events = f.publishing_events(post).await;
    assert!(
        matches!(&events[1], PostEvent::EntryPublished { entry, .. } if entry.uri == uri(post, due, 0))
    );
    assert!(matches!(events[2], PostEvent::PublishSucceeded { .. }));
    assert_eq!(f.platform.state().records.len(), 1);
}

#[tokio::test]
async fn after_an_ambiguous_failure_the_retry_looks_the_entry_up_before_publishing() {
    let f = fixture().await;
    let due = t0() + TimeDelta::minutes(1);
    let post = f.post(&["slow platform"], due).await;
    f.platform.script([Answer::Fail(PlatformError::Ambiguous(
        "createRecord: HTTP 502".into(),
    ))]);

    f.set_now(due);
    f.fire(post).await;
    assert_eq!(
        f.platform.calls(),
        vec![publish(post, due, 0), find(post, due, 0)],
        "not there yet"
    );
    let events = f.publishing_events(post).await;
    let (_, kind, retry_at) = failed(&events[1]);
    assert_eq!(kind, FailureKind::Transient);

    // The create lands late, before the retry.
    f.platform.land(&key(post, due, 0));
    f.set_now(retry_at.unwrap());
    f.fire(post).await;
    assert_eq!(
        f.platform.calls(),
        vec![
            publish(post, due, 0),
            find(post, due, 0),
            find(post, due, 0)
        ],
        "found, so not published again"
    );
    let events = f.publishing_events(post).await;
    assert!(
        matches!(&events[3], PostEvent::EntryPublished { entry, .. } if entry.uri == uri(post, due, 0))
    );
    assert!(matches!(events[4], PostEvent::PublishSucceeded { .. }));
    assert_eq!(f.platform.state().records.len(), 1);
}

#[tokio::test]
async fn content_the_platform_refuses_is_not_retried() {
    let f = fixture().await;
    let due = t0() + TimeDelta::minutes(1);
    let post = f.post(&["refused"], due).await;
    f.platform.script([Answer::Fail(PlatformError::Invalid(
        "createRecord: HTTP 400 InvalidRequest".into(),
    ))]);

    f.set_now(due);
    f.fire(post).await;
    let events = f.publishing_events(post).await;
    assert_eq!(failed(&events[1]), (1, FailureKind::Invalid, None));
    assert_eq!(f.state(post).await.status, Some(PostStatus::Failed));

    f.set_now(due + TimeDelta::days(1));
    f.fire(post).await;
    assert_eq!(f.platform.calls(), vec![publish(post, due, 0)]);
}

#[tokio::test]
async fn refused_credentials_are_renewed_once_then_the_connection_degrades_and_posts_wait() {
    let f = fixture().await;
    let due = t0() + TimeDelta::minutes(1);
    let post = f.post(&["expired session"], due).await;
    let refused = || Answer::Fail(PlatformError::Auth("createRecord: ExpiredToken".into()));
    f.platform.script([refused(), refused()]);

    f.set_now(due);
    f.fire(post).await;
    assert_eq!(
        f.platform.calls(),
        vec![publish(post, due, 0), Call::Refresh, publish(post, due, 0)]
    );
    let connection = f.connections.load(&f.connection.to_string()).await.unwrap();
    assert_eq!(connection.status, Some(ConnectionStatus::Degraded));
    let events = f.publishing_events(post).await;
    assert_eq!(failed(&events[1]), (1, FailureKind::Auth, Some(due)));
    let state = f.state(post).await;
    assert_eq!(state.status, Some(PostStatus::Pending));
    assert_eq!(
        state.attempt, 0,
        "waiting for the connection spends nothing"
    );

    f.fire(post).await;
    assert_eq!(f.platform.calls().len(), 3, "a degraded connection waits");
    assert_eq!(f.publishing_events(post).await.len(), 2);
}

#[tokio::test]
async fn renewed_credentials_publish_on_the_same_attempt() {
    let f = fixture().await;
    let due = t0() + TimeDelta::minutes(1);
    let post = f.post(&["stale session"], due).await;
    f.platform.script([Answer::Fail(PlatformError::Auth(
        "createRecord: ExpiredToken".into(),
    ))]);

    f.set_now(due);
    f.fire(post).await;
    assert_eq!(
        f.platform.calls(),
        vec![publish(post, due, 0), Call::Refresh, publish(post, due, 0)]
    );
    assert_eq!(f.state(post).await.status, Some(PostStatus::Done));
    let connection = f.connections.load(&f.connection.to_string()).await.unwrap();
    assert_eq!(connection.status, Some(ConnectionStatus::Active));
}

#[tokio::test]
async fn a_thread_resumes_after_its_last_recorded_entry_replying_to_it() {
    let f = fixture().await;
    let due = t0() + TimeDelta::minutes(1);
    let post = f.post(&["one", "two", "three"], due).await;
    f.platform.script([
        Answer::LandsButFails(PlatformError::Ambiguous("createRecord: timed out".into())),
        Answer::Fail(PlatformError::Transient("createRecord: HTTP 503".into())),
    ]);

    f.set_now(due);
    f.fire(post).await;
    let state = f.state(post).await;
    assert_eq!(state.published.len(), 1, "the first entry is recorded");
    assert_eq!(state.status, Some(PostStatus::Pending));

    f.set_now(state.next_attempt_at.unwrap());
    f.fire(post).await;
    assert_eq!(
        f.platform.calls(),
        vec![
            publish(post, due, 0),
            find(post, due, 0),
            reply(post, due, 1, 0),
            // The retry: only the entry it stopped at is looked up.
            find(post, due, 1),
            reply(post, due, 1, 0),
            reply(post, due, 2, 1),
        ]
    );
    let state = f.state(post).await;
    assert_eq!(state.status, Some(PostStatus::Done));
    let uris: Vec<String> = state.records.iter().map(|r| r.uri.clone()).collect();
    assert_eq!(uris, (0..3).map(|i| uri(post, due, i)).collect::<Vec<_>>());
}
