//! The engagement collector: every `interval` it reads the like, repost,
//! reply and quote counts of every published post from the platform of each
//! post's connection (for Bluesky, an AppView: batched
//! `app.bsky.feed.getPosts`, through the connection) and records them
//! on the post as `EngagementSampled` (the aggregate skips a sample equal to
//! the previous one). The `analytics` projection turns the samples into time
//! series.
//!
//! One process collects at a time: it holds the `engagement` row of
//! `collector_leases`, renewed every round, so two workers do not sample the
//! same posts twice (that would be harmless, only wasteful). Errors are
//! logged and the round goes on with the next connection; an auth error
//! never degrades a connection here (the publisher does that when it
//! publishes).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::Scoped;
use domain::connection::Connection;
use domain::metadata::{Actor, EventMetadata};
use domain::post::{EntrySample, Post, PostCommand};
use projections::analytics::{PublishedPost, claim_lease, published_posts, release_lease};
use projections::{CommandError, Database, Repository, StoreError, micros};
use tokio::sync::watch;
use uuid::Uuid;

use crate::bluesky::Appview;
use crate::platform::{Account, Counts, PlatformError, Platforms};

/// Name of the collector's lease row.
const LEASE_NAME: &str = "engagement";
/// Posts read from the read model per query.
const PAGE: i64 = 1000;

/// How the collector runs.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// Time between rounds.
    pub interval: Duration,
    /// Where Bluesky's counts come from.
    pub appview: Appview,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(300),
            appview: Appview::Proxy {
                did: "did:web:api.bsky.app".into(),
            },
        }
    }
}

/// The engagement collector of one process.
#[derive(Clone)]
pub struct Collector {
    inner: Arc<Inner>,
}

struct Inner {
    owner: String,
    db: Database,
    posts: Repository<Post>,
    connections: Repository<Connection>,
    platforms: Platforms,
    config: CollectorConfig,
}

/// Why one connection's posts could not be sampled this round.
#[derive(Debug, thiserror::Error)]
enum CollectError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error("Herald has no adapter for the connection's platform")]
    NoPlatform,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Collector {
    pub fn new(
        db: Database,
        posts: Repository<Post>,
        connections: Repository<Connection>,
        platforms: Platforms,
        config: CollectorConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                owner: format!("collector-{}", Uuid::new_v4()),
                db,
                posts,
                connections,
                platforms,
                config,
            }),
        }
    }

    /// Lease length: a crashed holder is replaced after at most this long.
    fn lease(&self) -> Duration {
        (self.inner.config.interval * 3).max(Duration::from_secs(10))
    }

    /// Takes or renews the lease; `true` while this process collects.
    async fn hold(&self) -> bool {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(self.lease()).unwrap_or_default();
        match claim_lease(
            &self.inner.db.any,
            LEASE_NAME,
            &self.inner.owner,
            micros(now),
            micros(until),
        )
        .await
        {
            Ok(held) => held,
            Err(error) => {
                tracing::warn!(%error, "engagement collector could not claim its lease");
                false
            }
        }
    }

    /// Collects every `interval` until `shutdown`.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            if self.hold().await {
                match self.round().await {
                    Ok(sampled) => tracing::debug!(sampled, "engagement round done"),
                    Err(error) => tracing::warn!(%error, "engagement round failed"),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.inner.config.interval) => {}
                _ = shutdown.changed() => {}
            }
        }
        if let Err(error) = release_lease(&self.inner.db.any, LEASE_NAME, &self.inner.owner).await {
            tracing::warn!(%error, "engagement collector could not release its lease");
        }
    }

    /// One pass over every published post; returns how many posts were
    /// sampled.
    pub async fn round(&self) -> Result<usize, StoreError> {
        let mut by_connection: BTreeMap<Uuid, Vec<PublishedPost>> = BTreeMap::new();
        let mut after = None;
        loop {
            let page = published_posts(&self.inner.db.any, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.post_id);
            let full = page.len() as i64 == PAGE;
            for post in page.into_iter().filter(|p| !p.uris.is_empty()) {
                by_connection
                    .entry(post.connection_id)
                    .or_default()
                    .push(post);
            }
            if !full {
                break;
            }
        }
        let mut sampled = 0;
        for (connection, posts) in by_connection {
            // A long round keeps its lease; a lost lease ends the round.
            if !self.hold().await {
                break;
            }
            match self.collect(connection, &posts).await {
                Ok(n) => sampled += n,
                Err(error) => {
                    tracing::warn!(%connection, %error, "could not sample engagement")
                }
            }
        }
        Ok(sampled)
    }

    /// Samples the posts of one connection.
    async fn collect(
        &self,
        connection_id: Uuid,
        posts: &[PublishedPost],
    ) -> Result<usize, CollectError> {
        let connection = self
            .inner
            .connections
            .load(&connection_id.to_string())
            .await?;
        if !connection.is_active() {
            return Ok(0);
        }
        let platform = self
            .inner
            .platforms
            .of(&connection)
            .ok_or(CollectError::NoPlatform)?;
        let account = Account {
            id: connection_id,
            tenant: connection.tenant_id.unwrap_or_default(),
            connection: &connection,
        };
        let uris: Vec<String> = posts.iter().flat_map(|p| p.uris.clone()).collect();
        let counts = match platform.engagement(account, &uris).await {
            Err(PlatformError::Auth(_)) => {
                // The cached session may be stale: renew it once.
                platform.refresh(account).await?;
                platform.engagement(account, &uris).await?
            }
            other => other?,
        };
        let sampled_at = Utc::now();
        let by_uri: std::collections::HashMap<&str, &Counts> =
            counts.iter().map(|c| (c.uri.as_str(), c)).collect();
        let mut n = 0;
        for post in posts {
            // Records the AppView does not know (yet) count as zero: the
            // post exists, nobody has engaged with it that the AppView saw.
            let entries = post
                .uris
                .iter()
                .map(|uri| {
                    let c = by_uri.get(uri.as_str());
                    EntrySample {
                        uri: uri.clone(),
                        likes: c.map_or(0, |c| c.likes),
                        reposts: c.map_or(0, |c| c.reposts),
                        replies: c.map_or(0, |c| c.replies),
                        quotes: c.map_or(0, |c| c.quotes),
                    }
                })
                .collect();
            if self.record(post, sampled_at, entries).await {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Records one post's sample; `false` when it could not be recorded.
    async fn record(
        &self,
        post: &PublishedPost,
        sampled_at: chrono::DateTime<Utc>,
        entries: Vec<EntrySample>,
    ) -> bool {
        let metadata =
            EventMetadata::new(post.tenant_id, Actor::System, Uuid::now_v7(), Utc::now());
        let result = self
            .inner
            .posts
            .execute(
                &post.post_id.to_string(),
                Scoped {
                    tenant_id: post.tenant_id,
                    command: PostCommand::RecordEngagement {
                        sampled_at,
                        entries,
                    },
                },
                &metadata,
            )
            .await;
        match result {
            Ok(_) => true,
            // Deleted or unpublished since the read model was read.
            Err(CommandError::Rejected(error)) => {
                tracing::debug!(post = %post.post_id, %error, "engagement not recorded");
                false
            }
            Err(error) => {
                tracing::warn!(post = %post.post_id, %error, "could not record engagement");
                false
            }
        }
    }
}
