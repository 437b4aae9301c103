//! The publish scheduler, a process manager: it claims due posts from the
//! `schedule` index (any number of worker processes share it), decides from
//! each post's *current* state whether to publish, and publishes the
//! occurrence entry by entry at deterministic record keys, recording every
//! step as an event. A crash at any point leaves a state the next claim
//! resumes from: entries already recorded are skipped, and an entry created
//! on the platform but not yet recorded is found at its record key instead
//! of being created twice.
//!
//! It reaches platforms only through [`Platform`], the one of each post's
//! connection. Its pure rules are the domain's (`Post::fire_decision`,
//! `RetryPolicy`) and `admit` and `pause_until` here; `tests.rs` drives it
//! against a scripted fake platform.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::Scoped;
use domain::connection::{Connection, ConnectionCommand, ConnectionStatus};
use domain::media::MediaAsset;
use domain::metadata::{Actor, EventMetadata};
use domain::post::{FireDecision, Post, PostCommand, PostEntry};
use domain::publish::{FailureKind, PublishedEntry, RetryPolicy};
use domain::rkey::record_key;
use projections::publishing::{Claim, ScheduleIndex};
use projections::{CommandError, Loaded, Repository, StoreError, micros};
use rand::Rng;
use tokio::sync::{Mutex, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::media::MediaStore;
use crate::platform::{
    Account, Entry, Media, Platform, PlatformError, Platforms, Published, Record, Thread,
};

/// Claims given back per statement.
const RELEASE_BATCH: usize = 500;

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// Posts claimed per round.
    pub batch: i64,
    /// Posts published at once by this process.
    pub concurrency: usize,
    /// Posts of one connection published at once by this process.
    pub per_connection: usize,
    /// How long a claim holds before another worker may take the post over.
    pub lease: Duration,
    /// Longest sleep between rounds when nothing is due.
    pub idle: Duration,
    pub retry: RetryPolicy,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        Self {
            batch: 256,
            concurrency: 64,
            per_connection: 8,
            lease: Duration::from_secs(60),
            idle: Duration::from_millis(500),
            retry: RetryPolicy::default(),
        }
    }
}

/// The publish scheduler of one process.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    owner: String,
    index: ScheduleIndex,
    posts: Repository<Post>,
    connections: Repository<Connection>,
    media: Repository<MediaAsset>,
    platforms: Platforms,
    store: MediaStore,
    config: PublisherConfig,
    slots: Arc<Semaphore>,
    per_connection: Mutex<HashMap<Uuid, Arc<Semaphore>>>,
    /// Connections the platform asked to slow down, until when.
    paused: Mutex<HashMap<Uuid, DateTime<Utc>>>,
    /// The time every decision is taken at (the tests move it by hand).
    clock: Clock,
}

type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Why a post cannot be published when it names no usable connection.
const NO_CONNECTION: &str = "the post names no Bluesky connection";

/// Whether a due post may be attempted now, from its connection alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// Not an attempt: look again at this time (soon, when `None`).
    Wait(Option<DateTime<Utc>>),
    /// An attempt that fails at once, for this reason: retrying cannot help.
    Refuse(&'static str),
    Go,
}

/// Decides on a due post's `connection` (as loaded; `None` when the post
/// names none) for `tenant`, when the connection is paused until `paused`.
/// A degraded or paused connection makes its posts wait without spending
/// attempts; a missing, foreign or revoked one fails them.
fn admit(
    connection: Option<&Connection>,
    tenant: Uuid,
    paused: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Admission {
    if let Some(c) = connection {
        if c.status == Some(ConnectionStatus::Degraded) {
            return Admission::Wait(None);
        }
        if let Some(until) = paused
            && until > now
        {
            return Admission::Wait(Some(until));
        }
    }
    match connection.filter(|c| c.tenant_id == Some(tenant)) {
        Some(c) => match c.status {
            Some(ConnectionStatus::Revoked) => {
                Admission::Refuse("the post's connection was disconnected")
            }
            Some(_) => Admission::Go,
            None => Admission::Refuse(NO_CONNECTION),
        },
        None => Admission::Refuse(NO_CONNECTION),
    }
}

/// How long a connection waits after `error` at `now`: a rate limit pauses
/// it until the platform's reset, or a minute when it named none.
fn pause_until(error: &PlatformError, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match error {
        PlatformError::RateLimited { retry_after, .. } => {
            Some(retry_after.unwrap_or(now + chrono::Duration::seconds(60)))
        }
        _ => None,
    }
}

/// Where the next entry of a thread goes, after the entries in `done`.
fn thread(done: &[Record]) -> Option<Thread> {
    Some(Thread {
        root: done.first()?.clone(),
        parent: done.last()?.clone(),
    })
}

impl Publisher {
    /// A scheduler publishing through `platforms`.
    pub fn new(
        index: ScheduleIndex,
        posts: Repository<Post>,
        connections: Repository<Connection>,
        media: Repository<MediaAsset>,
        platforms: Platforms,
        store: MediaStore,
        config: PublisherConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                owner: format!("publisher-{}", Uuid::new_v4()),
                index,
                posts,
                connections,
                media,
                platforms,
                store,
                slots: Arc::new(Semaphore::new(config.concurrency)),
                config,
                per_connection: Mutex::default(),
                paused: Mutex::default(),
                clock: Arc::new(Utc::now),
            }),
        }
    }

    /// The same scheduler taking its decisions at the times `clock` tells.
    #[cfg(test)]
    fn with_clock(self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        let inner = Arc::into_inner(self.inner).expect("not shared yet");
        Self {
            inner: Arc::new(Inner {
                clock: Arc::new(clock),
                ..inner
            }),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        (self.inner.clock)()
    }

    /// Claims and publishes due posts until `shutdown`.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let (give_back, returned) = mpsc::unbounded_channel();
        let releaser = tokio::spawn(self.clone().release(returned));
        let mut tasks = JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let claimed = match self.round(&mut tasks, &give_back, &shutdown).await {
                Ok(n) => n,
                Err(error) => {
                    tracing::warn!(%error, "publisher round failed");
                    0
                }
            };
            while tasks.try_join_next().is_some() {}
            if claimed > 0 {
                continue;
            }
            // Busy: look again when a post is done. Idle: when the next is due.
            let sleep = if tasks.is_empty() {
                self.idle_for().await
            } else {
                self.inner.config.idle
            };
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = shutdown.changed() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        // Let attempts in flight finish and record what they did.
        while tasks.join_next().await.is_some() {}
        drop(give_back);
        let _ = releaser.await;
    }

    /// Claims a batch and starts a task per post. Up to one batch waits
    /// behind the posts in flight, so that one claim statement serves many
    /// posts; the next claim happens once fewer than `concurrency` are left.
    async fn round(
        &self,
        tasks: &mut JoinSet<()>,
        give_back: &mpsc::UnboundedSender<(Uuid, i64)>,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<usize, StoreError> {
        let concurrency = self.inner.config.concurrency;
        if tasks.len() >= concurrency {
            return Ok(0);
        }
        let limit = (2 * concurrency - tasks.len()) as i64;
        let now = self.now();
        let lease = chrono::Duration::from_std(self.inner.config.lease).unwrap_or_default();
        let claims = self
            .inner
            .index
            .claim(
                &self.inner.owner,
                micros(now),
                micros(now + lease),
                self.inner.config.batch.min(limit),
            )
            .await?;
        let n = claims.len();
        for claim in claims {
            let me = self.clone();
            let give_back = give_back.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                let _permit = me
                    .inner
                    .slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore is never closed");
                // A post still waiting at shutdown goes back to the queue
                // at once, for another worker.
                let not_before = if *shutdown.borrow() {
                    micros(me.now())
                } else {
                    me.fire(&claim).await
                };
                // The releaser is gone only after every task finished.
                let _ = give_back.send((claim.post_id, not_before));
            });
        }
        Ok(n)
    }

    async fn idle_for(&self) -> Duration {
        let idle = self.inner.config.idle;
        match self.inner.index.next_due().await {
            Ok(Some(at)) => {
                let wait = at - micros(self.now());
                Duration::from_micros(wait.max(0) as u64).min(idle)
            }
            _ => idle,
        }
    }

    /// Handles one claimed post; answers when the claim may be taken again.
    async fn fire(&self, claim: &Claim) -> i64 {
        match self.publish(claim).await {
            Ok(at) => at,
            Err(error) => {
                tracing::warn!(post = %claim.post_id, %error, "publishing could not proceed; will look again");
                micros(self.now()) + 5_000_000
            }
        }
    }

    /// Gives claims back as the posts are done, many per statement: a
    /// statement per post would cost a commit each. A claim that is never
    /// given back (the process died) is free again when its lease ends.
    async fn release(self, mut returned: mpsc::UnboundedReceiver<(Uuid, i64)>) {
        let mut batch = Vec::with_capacity(RELEASE_BATCH);
        while returned.recv_many(&mut batch, RELEASE_BATCH).await > 0 {
            if let Err(error) = self.inner.index.release(&self.inner.owner, &batch).await {
                tracing::warn!(count = batch.len(), %error, "could not give claims back; their leases will expire");
            }
            batch.clear();
        }
    }

    fn metadata(&self, tenant: Uuid, correlation: Uuid) -> EventMetadata {
        EventMetadata::new(tenant, Actor::System, correlation, Utc::now())
    }

    /// Runs `command` against the post as this worker last saw it (one
    /// round trip; a concurrent change is detected and decided afresh).
    async fn command(
        &self,
        claim: &Claim,
        post: &mut Loaded<Post>,
        correlation: Uuid,
        command: PostCommand,
    ) -> Result<(), CommandError<domain::DomainError>> {
        self.inner
            .posts
            .execute_loaded(
                post,
                Scoped {
                    tenant_id: claim.tenant_id,
                    command,
                },
                &self.metadata(claim.tenant_id, correlation),
            )
            .await
            .map(|_| ())
    }

    /// Soon after this worker's own change, by which time the index shows it.
    fn settle(&self) -> i64 {
        micros(self.now()) + 1_000_000
    }

    /// Publishes a claimed post if it is due; answers when to look at it
    /// again (microseconds), which becomes the claim's release time.
    async fn publish(&self, claim: &Claim) -> Result<i64, PublishError> {
        let now = self.now();
        // The post and (as the index knows it) its connection, in parallel.
        let post_id = claim.post_id.to_string();
        let (mut post, indexed) =
            tokio::try_join!(self.inner.posts.load_versioned(&post_id), async {
                match claim.connection_id {
                    Some(id) => self.inner.connections.load(&id.to_string()).await.map(Some),
                    None => Ok(None),
                }
            })?;
        let (occurrence, resume_from) = match post.state.fire_decision(now) {
            FireDecision::Publish {
                occurrence,
                resume_from,
            } => (occurrence, resume_from),
            FireDecision::NotUntil(at) => return Ok(micros(at)),
            // Cancelled, deleted or finished: the index catches up shortly.
            FireDecision::Nothing => return Ok(self.settle()),
        };
        // An earlier attempt at this occurrence may have created the entry
        // it stopped at, whatever it recorded.
        let tried_before = post.state.occurrence == Some(occurrence);
        let connection = match (post.state.connection_id, indexed) {
            (Some(id), Some(c)) if claim.connection_id == Some(id) => Some((id, c)),
            (Some(id), _) => Some((id, self.inner.connections.load(&id.to_string()).await?)),
            (None, _) => None,
        };
        let paused = match &connection {
            Some((id, _)) => self.inner.paused.lock().await.get(id).copied(),
            None => None,
        };
        // Connection checks come first: a degraded account is not an attempt.
        let admission = admit(
            connection.as_ref().map(|(_, c)| c),
            claim.tenant_id,
            paused,
            now,
        );
        if let Admission::Wait(at) = admission {
            return Ok(at.map_or_else(|| self.settle(), micros));
        }
        let correlation = Uuid::now_v7();
        match self
            .command(
                claim,
                &mut post,
                correlation,
                PostCommand::StartPublish { now },
            )
            .await
        {
            Ok(()) => {}
            // Someone changed the post since it was loaded: look again.
            Err(CommandError::Rejected(_)) => return Ok(self.settle()),
            Err(other) => return Err(other.into()),
        }
        let fail = |kind: FailureKind, message: String, not_before: Option<DateTime<Utc>>| {
            PostCommand::FailPublish {
                occurrence,
                kind,
                message,
                now: self.now(),
                jitter: rand::thread_rng().r#gen::<f64>(),
                not_before,
                policy: self.inner.config.retry,
            }
        };
        let target = match (admission, connection) {
            (Admission::Go, Some((id, c))) => match self.inner.platforms.of(&c) {
                Some(platform) => Ok((id, c, platform)),
                None => Err("Herald cannot publish to this connection's platform"),
            },
            (Admission::Refuse(message), _) => Err(message),
            _ => Err(NO_CONNECTION),
        };
        let (connection_id, connection, platform) = match target {
            Ok(target) => target,
            Err(message) => {
                let command = fail(FailureKind::Invalid, message.into(), None);
                self.record(claim, &mut post, correlation, command).await?;
                return Ok(self.settle());
            }
        };
        let account = Account {
            id: connection_id,
            tenant: claim.tenant_id,
            connection: &connection,
        };
        let gate = self.gate(connection_id).await;
        let _slot = gate.acquire().await.expect("semaphore is never closed");
        let result = self
            .publish_entries(
                claim,
                correlation,
                &mut post,
                occurrence,
                resume_from,
                tried_before,
                platform.as_ref(),
                account,
            )
            .await;
        match result {
            Ok(last) => {
                self.record(
                    claim,
                    &mut post,
                    correlation,
                    PostCommand::CompletePublish {
                        occurrence,
                        now: self.now(),
                        last,
                    },
                )
                .await?;
                tracing::info!(post = %claim.post_id, %occurrence, "published");
            }
            Err(PublishError::Platform(error)) => {
                let kind = error.kind();
                tracing::warn!(post = %claim.post_id, kind = kind.as_str(), error = %error, "attempt failed");
                if kind == FailureKind::Auth {
                    self.degrade(claim, connection_id, error.message()).await?;
                }
                if let Some(until) = pause_until(&error, self.now()) {
                    self.inner.paused.lock().await.insert(connection_id, until);
                }
                let retry_after = error.retry_after();
                let command = fail(kind, error.message().to_string(), retry_after);
                self.record(claim, &mut post, correlation, command).await?;
            }
            Err(other) => return Err(other),
        }
        Ok(self.settle())
    }

    /// The per-connection concurrency limit.
    async fn gate(&self, connection: Uuid) -> Arc<Semaphore> {
        self.inner
            .per_connection
            .lock()
            .await
            .entry(connection)
            .or_insert_with(|| Arc::new(Semaphore::new(self.inner.config.per_connection)))
            .clone()
    }

    /// Records a publishing step; a conflict means another worker took over.
    async fn record(
        &self,
        claim: &Claim,
        post: &mut Loaded<Post>,
        correlation: Uuid,
        command: PostCommand,
    ) -> Result<(), PublishError> {
        match self.command(claim, post, correlation, command).await {
            Ok(()) => Ok(()),
            Err(CommandError::Rejected(error)) => Err(PublishError::Superseded(error.to_string())),
            Err(other) => Err(other.into()),
        }
    }

    /// The credentials stopped working: the connection is degraded, and its
    /// posts wait instead of consuming attempts.
    async fn degrade(
        &self,
        claim: &Claim,
        connection: Uuid,
        reason: &str,
    ) -> Result<(), PublishError> {
        let result = self
            .inner
            .connections
            .execute(
                &connection.to_string(),
                Scoped {
                    tenant_id: claim.tenant_id,
                    command: ConnectionCommand::Degrade {
                        reason: reason.to_string(),
                    },
                },
                &self.metadata(claim.tenant_id, Uuid::now_v7()),
            )
            .await;
        match result {
            Ok(_) | Err(CommandError::Rejected(_)) => Ok(()),
            Err(other) => Err(other.into()),
        }
    }

    /// Runs `call`; when the platform refuses the credentials, renews them
    /// (once per attempt, `refreshed`) and runs it again.
    async fn authorized<T, F, Fut>(
        refreshed: &mut bool,
        platform: &dyn Platform,
        account: Account<'_>,
        call: F,
    ) -> Result<T, PlatformError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, PlatformError>>,
    {
        match call().await {
            Err(PlatformError::Auth(_)) if !*refreshed => {
                *refreshed = true;
                platform.refresh(account).await?;
                call().await
            }
            result => result,
        }
    }

    /// Publishes `entry` at `key` exactly once: when the outcome is unknown,
    /// the key is looked up before anything else happens.
    async fn create(
        refreshed: &mut bool,
        platform: &dyn Platform,
        account: Account<'_>,
        key: &str,
        entry: &Entry,
    ) -> Result<Published, PlatformError> {
        let created = Self::authorized(refreshed, platform, account, || {
            platform.publish(account, key, entry)
        })
        .await;
        let message = match created {
            Err(PlatformError::Ambiguous(message)) => message,
            other => return other,
        };
        let found =
            Self::authorized(refreshed, platform, account, || platform.find(account, key)).await;
        match found {
            Ok(Some(record)) => Ok(Published {
                record,
                warnings: vec![],
            }),
            // The create may still land: the next attempt looks first.
            Ok(None) => Err(PlatformError::Ambiguous(message)),
            Err(read) => Err(PlatformError::Ambiguous(format!(
                "{message}; reading the key back failed too: {read}"
            ))),
        }
    }

    /// An entry's images as stored.
    async fn media(&self, claim: &Claim, entry: &PostEntry) -> Result<Vec<Media>, PublishError> {
        let mut media = Vec::with_capacity(entry.media.len());
        for used in &entry.media {
            let asset = self.inner.media.load(&used.asset_id.to_string()).await?;
            let facts = match asset.facts {
                Some(facts) if asset.usable_by(claim.tenant_id) => facts,
                _ => {
                    return Err(PublishError::Platform(PlatformError::Invalid(format!(
                        "image {} was deleted",
                        used.asset_id
                    ))));
                }
            };
            let bytes = self
                .inner
                .store
                .get(&asset.key)
                .await
                .map_err(|e| PublishError::Platform(PlatformError::Transient(e.to_string())))?;
            media.push(Media {
                bytes,
                mime: facts.mime,
                alt: used.alt.clone(),
                width: facts.width,
                height: facts.height,
            });
        }
        Ok(media)
    }

    #[allow(clippy::too_many_arguments)]
    async fn publish_entries(
        &self,
        claim: &Claim,
        correlation: Uuid,
        post: &mut Loaded<Post>,
        occurrence: DateTime<Utc>,
        resume_from: usize,
        tried_before: bool,
        platform: &dyn Platform,
        account: Account<'_>,
    ) -> Result<Option<PublishedEntry>, PublishError> {
        let mut refreshed = false;
        let mut last = None;
        let entries = post.state.entries.clone();
        let mut done: Vec<Record> = post
            .state
            .published
            .iter()
            .map(|e| Record {
                uri: e.uri.clone(),
                cid: e.cid.clone(),
            })
            .collect();
        for (index, entry) in entries.iter().enumerate().skip(resume_from) {
            let rkey = record_key(claim.post_id, occurrence, index);
            let key = rkey.as_str();
            // Only the entry an earlier attempt stopped at can exist unrecorded.
            let found = if tried_before && index == resume_from {
                Self::authorized(&mut refreshed, platform, account, || {
                    platform.find(account, key)
                })
                .await?
            } else {
                None
            };
            let published = match found {
                Some(record) => Published {
                    record,
                    warnings: vec![],
                },
                None => {
                    let out = Entry {
                        text: entry.text.as_str().to_string(),
                        langs: entry.langs.clone(),
                        facets: entry.facets.clone(),
                        created_at: occurrence,
                        reply_to: thread(&done),
                        media: self.media(claim, entry).await?,
                    };
                    Self::create(&mut refreshed, platform, account, key, &out).await?
                }
            };
            let entry = PublishedEntry {
                index: index as u32,
                rkey: key.to_string(),
                uri: published.record.uri.clone(),
                cid: published.record.cid.clone(),
                warnings: published.warnings,
            };
            if index + 1 == entries.len() {
                // Recorded together with the success: one append, not two.
                last = Some(entry);
            } else {
                self.record(
                    claim,
                    post,
                    correlation,
                    PostCommand::RecordEntry { occurrence, entry },
                )
                .await?;
            }
            done.push(published.record);
            if index + 1 < entries.len() {
                // A long thread keeps its claim while the next entry goes out.
                let lease = chrono::Duration::from_std(self.inner.config.lease).unwrap_or_default();
                let _ = self
                    .inner
                    .index
                    .extend(&self.inner.owner, claim.post_id, micros(self.now() + lease))
                    .await;
            }
        }
        Ok(last)
    }
}

/// Why publishing a claimed post stopped.
#[derive(Debug, thiserror::Error)]
enum PublishError {
    /// The platform refused or failed: recorded as a failed attempt.
    #[error(transparent)]
    Platform(PlatformError),
    /// Herald's own side failed while talking to the platform.
    #[error("{0}")]
    Internal(String),
    /// Another worker or a user changed the post meanwhile.
    #[error("the post changed while publishing: {0}")]
    Superseded(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CommandError<domain::DomainError>> for PublishError {
    fn from(error: CommandError<domain::DomainError>) -> Self {
        match error {
            CommandError::Rejected(e) => Self::Superseded(e.to_string()),
            CommandError::Conflict(what) => Self::Superseded(format!("the {what} kept changing")),
            CommandError::Store(e) => Self::Store(e),
        }
    }
}

impl From<PlatformError> for PublishError {
    fn from(error: PlatformError) -> Self {
        match error {
            PlatformError::Internal(message) => Self::Internal(message),
            other => Self::Platform(other),
        }
    }
}

#[cfg(test)]
mod tests;
