//! The publish scheduler, a process manager: it claims due posts from the
//! `schedule` index (any number of worker processes share it), decides from
//! each post's *current* state whether to publish, and publishes the
//! occurrence entry by entry at deterministic record keys, recording every
//! step as an event. A crash at any point leaves a state the next claim
//! resumes from: entries already recorded are skipped, and an entry created
//! on the platform but not yet recorded is found at its record key instead
//! of being created twice.

use std::collections::HashMap;
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

use crate::accounts::{AccountError, Accounts};
use crate::bluesky::{BlueskyError, Client, ErrorKind, Image, PostRecord, Reply, StrongRef};
use crate::media::MediaStore;

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
    accounts: Accounts,
    store: MediaStore,
    config: PublisherConfig,
    slots: Arc<Semaphore>,
    per_connection: Mutex<HashMap<Uuid, Arc<Semaphore>>>,
    /// Connections the platform asked to slow down, until when.
    paused: Mutex<HashMap<Uuid, DateTime<Utc>>>,
}

fn map_kind(kind: ErrorKind) -> FailureKind {
    match kind {
        ErrorKind::Transient => FailureKind::Transient,
        ErrorKind::RateLimited => FailureKind::RateLimited,
        ErrorKind::Auth => FailureKind::Auth,
        ErrorKind::Invalid => FailureKind::Invalid,
    }
}

impl Publisher {
    pub fn new(
        index: ScheduleIndex,
        posts: Repository<Post>,
        connections: Repository<Connection>,
        media: Repository<MediaAsset>,
        accounts: Accounts,
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
                accounts,
                store,
                slots: Arc::new(Semaphore::new(config.concurrency)),
                config,
                per_connection: Mutex::default(),
                paused: Mutex::default(),
            }),
        }
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
        let now = Utc::now();
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
                    micros(Utc::now())
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
                let wait = at - micros(Utc::now());
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
                micros(Utc::now()) + 5_000_000
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
    fn settle() -> i64 {
        micros(Utc::now()) + 1_000_000
    }

    /// Publishes a claimed post if it is due; answers when to look at it
    /// again (microseconds), which becomes the claim's release time.
    async fn publish(&self, claim: &Claim) -> Result<i64, PublishError> {
        let now = Utc::now();
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
            FireDecision::Nothing => return Ok(Self::settle()),
        };
        // Connection checks come first: a degraded account is not an attempt.
        let connection = match (post.state.connection_id, indexed) {
            (Some(id), Some(c)) if claim.connection_id == Some(id) => Some((id, c)),
            (Some(id), _) => Some((id, self.inner.connections.load(&id.to_string()).await?)),
            (None, _) => None,
        };
        if let Some((id, c)) = &connection {
            if c.status == Some(ConnectionStatus::Degraded) {
                return Ok(Self::settle());
            }
            if let Some(until) = self.inner.paused.lock().await.get(id).copied()
                && until > now
            {
                return Ok(micros(until));
            }
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
            Err(CommandError::Rejected(_)) => return Ok(Self::settle()),
            Err(other) => return Err(other.into()),
        }
        let fail = |kind: FailureKind, message: String, not_before: Option<DateTime<Utc>>| {
            PostCommand::FailPublish {
                occurrence,
                kind,
                message,
                now: Utc::now(),
                jitter: rand::thread_rng().r#gen::<f64>(),
                not_before,
                policy: self.inner.config.retry,
            }
        };
        let (connection_id, connection) = match connection {
            Some((id, c)) if c.tenant_id == Some(claim.tenant_id) && c.status.is_some() => (id, c),
            _ => {
                let command = fail(
                    FailureKind::Invalid,
                    "the post names no Bluesky connection".into(),
                    None,
                );
                self.record(claim, &mut post, correlation, command).await?;
                return Ok(Self::settle());
            }
        };
        if connection.status == Some(ConnectionStatus::Revoked) {
            let command = fail(
                FailureKind::Invalid,
                "the post's connection was disconnected".into(),
                None,
            );
            self.record(claim, &mut post, correlation, command).await?;
            return Ok(Self::settle());
        }
        let gate = self.gate(connection_id).await;
        let _slot = gate.acquire().await.expect("semaphore is never closed");
        let result = self
            .publish_entries(
                claim,
                correlation,
                &mut post,
                occurrence,
                resume_from,
                connection_id,
                &connection,
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
                        now: Utc::now(),
                        last,
                    },
                )
                .await?;
                tracing::info!(post = %claim.post_id, %occurrence, "published");
            }
            Err(PublishError::Platform(error)) => {
                let kind = map_kind(error.kind);
                tracing::warn!(post = %claim.post_id, kind = kind.as_str(), error = %error.message, "attempt failed");
                match kind {
                    FailureKind::Auth => self.degrade(claim, connection_id, &error).await?,
                    FailureKind::RateLimited => {
                        let until = error
                            .retry_after
                            .unwrap_or_else(|| Utc::now() + chrono::Duration::seconds(60));
                        self.inner.paused.lock().await.insert(connection_id, until);
                    }
                    _ => {}
                }
                self.record(
                    claim,
                    &mut post,
                    correlation,
                    fail(kind, error.message, error.retry_after),
                )
                .await?;
            }
            Err(other) => return Err(other),
        }
        Ok(Self::settle())
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
        error: &BlueskyError,
    ) -> Result<(), PublishError> {
        self.inner.accounts.forget(connection).await;
        let result = self
            .inner
            .connections
            .execute(
                &connection.to_string(),
                Scoped {
                    tenant_id: claim.tenant_id,
                    command: ConnectionCommand::Degrade {
                        reason: error.message.clone(),
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

    /// A client whose session works: on an auth error the cached session is
    /// dropped and a fresh login with the sealed app password is tried once.
    async fn client(
        &self,
        claim: &Claim,
        id: Uuid,
        connection: &Connection,
        fresh: bool,
    ) -> Result<Arc<Client>, PublishError> {
        let result = if fresh {
            self.inner.accounts.forget(id).await;
            self.inner
                .accounts
                .log_in(id, claim.tenant_id, connection)
                .await
        } else {
            self.inner.accounts.client(id, connection).await
        };
        result.map_err(PublishError::from)
    }

    /// Uploads an entry's images (the PDS keeps one copy per content hash,
    /// so a retry uploading again stores nothing new).
    async fn images(
        &self,
        claim: &Claim,
        client: &Client,
        entry: &PostEntry,
    ) -> Result<Vec<Image>, PublishError> {
        let mut images = Vec::with_capacity(entry.media.len());
        for used in &entry.media {
            let asset = self.inner.media.load(&used.asset_id.to_string()).await?;
            let facts = match asset.facts {
                Some(facts) if asset.usable_by(claim.tenant_id) => facts,
                _ => {
                    return Err(PublishError::Platform(BlueskyError::new(
                        ErrorKind::Invalid,
                        format!("image {} was deleted", used.asset_id),
                    )));
                }
            };
            let bytes = self.inner.store.get(&asset.key).await.map_err(|e| {
                PublishError::Platform(BlueskyError {
                    ambiguous: false,
                    ..BlueskyError::new(ErrorKind::Transient, e.to_string())
                })
            })?;
            let blob = client
                .upload_blob(bytes.to_vec(), &facts.mime)
                .await
                .map_err(PublishError::Platform)?;
            images.push(Image {
                blob,
                alt: used.alt.clone(),
                width: facts.width,
                height: facts.height,
            });
        }
        Ok(images)
    }

    #[allow(clippy::too_many_arguments)]
    async fn publish_entries(
        &self,
        claim: &Claim,
        correlation: Uuid,
        post: &mut Loaded<Post>,
        occurrence: DateTime<Utc>,
        resume_from: usize,
        connection_id: Uuid,
        connection: &Connection,
    ) -> Result<Option<PublishedEntry>, PublishError> {
        let mut client = self.client(claim, connection_id, connection, false).await?;
        let mut refreshed = false;
        let mut last = None;
        let entries = post.state.entries.clone();
        let mut done: Vec<StrongRef> = post
            .state
            .published
            .iter()
            .map(|e| StrongRef {
                uri: e.uri.clone(),
                cid: e.cid.clone(),
            })
            .collect();
        for (index, entry) in entries.iter().enumerate().skip(resume_from) {
            let rkey = record_key(claim.post_id, occurrence, index);
            let reply = match (done.first(), done.last()) {
                (Some(root), Some(parent)) => Some(Reply {
                    root: root.clone(),
                    parent: parent.clone(),
                }),
                _ => None,
            };
            let record = PostRecord {
                text: entry.text.as_str().to_string(),
                langs: entry.langs.clone(),
                facets: entry.facets.clone(),
                // Part of the record's CID: the same for every attempt.
                created_at: occurrence,
                reply,
                images: self.images(claim, &client, entry).await?,
            };
            let (published, warnings) = loop {
                let (facets, warnings) = client.resolve_mentions(&record.facets).await;
                match client.ensure_post(rkey.as_str(), &record, &facets).await {
                    Ok(r) => break (r, warnings),
                    Err(e) if e.kind == ErrorKind::Auth && !refreshed => {
                        refreshed = true;
                        client = self.client(claim, connection_id, connection, true).await?;
                    }
                    Err(e) => return Err(PublishError::Platform(e)),
                }
            };
            let entry = PublishedEntry {
                index: index as u32,
                rkey: rkey.as_str().to_string(),
                uri: published.uri.clone(),
                cid: published.cid.clone(),
                warnings,
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
            done.push(published);
            if index + 1 < entries.len() {
                // A long thread keeps its claim while the next entry goes out.
                let lease = chrono::Duration::from_std(self.inner.config.lease).unwrap_or_default();
                let _ = self
                    .inner
                    .index
                    .extend(&self.inner.owner, claim.post_id, micros(Utc::now() + lease))
                    .await;
            }
        }
        if let Err(error) = self
            .inner
            .accounts
            .save_session(connection_id, claim.tenant_id, &client)
            .await
        {
            tracing::warn!(%error, "could not save the refreshed session");
        }
        Ok(last)
    }
}

/// Why publishing a claimed post stopped.
#[derive(Debug, thiserror::Error)]
enum PublishError {
    /// The platform refused or failed: recorded as a failed attempt.
    #[error(transparent)]
    Platform(BlueskyError),
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

impl From<AccountError> for PublishError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::Bluesky(e) => Self::Platform(e),
            AccountError::Store(e) => Self::Store(e),
        }
    }
}
