//! The outbound side of a social platform, as the workers need it: publish
//! one entry at a key Herald chooses, find what a key became, delete it, read
//! engagement counts, and renew credentials the platform refused. Each
//! platform implements [`Platform`]; [`Platforms`] finds the one of a
//! connection. Bluesky (`bluesky`, over the clients and sessions of
//! `crate::accounts`) is the first.
//!
//! Exactly-once publishing is the publisher's, built on two promises every
//! implementation keeps: [`Platform::publish`] answers
//! [`PlatformError::Ambiguous`] whenever the entry may exist although the call
//! failed, and [`Platform::find`] tells from the key alone whether it does.
//! That serves platforms whose create is idempotent per key (Bluesky) and
//! those where it is not (X's `POST /2/tweets`, Instagram's `media_publish`)
//! alike. Uploads and processing steps (images today, videos later) happen
//! inside `publish`: nothing of them is visible until the entry is.

pub mod bluesky;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use domain::connection::Connection;
use domain::publish::FailureKind;
use domain::text::Facet;
use uuid::Uuid;

/// Which platform a connection is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlatformKind {
    /// Bluesky and other AT Protocol services.
    Bluesky,
}

impl PlatformKind {
    /// The platform of `connection`. Every connection is a Bluesky account
    /// today (the only connect event is `BlueskyConnected`); connections to
    /// other platforms will record theirs.
    pub fn of(_connection: &Connection) -> Self {
        Self::Bluesky
    }
}

/// The connection a platform call acts for.
#[derive(Debug, Clone, Copy)]
pub struct Account<'a> {
    /// The connection's id.
    pub id: Uuid,
    /// The tenant owning the connection, whose key seals its secrets.
    pub tenant: Uuid,
    pub connection: &'a Connection,
}

/// One version of a record on a platform: its address and a content id
/// (Bluesky: the `at://` URI and the CID; platforms without versions repeat
/// their id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub uri: String,
    pub cid: String,
}

/// Where a reply goes in its thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    /// The first entry of the thread.
    pub root: Record,
    /// The entry replied to.
    pub parent: Record,
}

/// A media file of an entry, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    pub bytes: Bytes,
    pub mime: String,
    pub alt: String,
    /// Pixel size; 0 when unknown.
    pub width: u32,
    pub height: u32,
}

/// One entry of a post, ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub text: String,
    /// BCP-47 language tags.
    pub langs: Vec<String>,
    /// Mentions (by handle), links and tags found in `text`.
    pub facets: Vec<Facet>,
    /// The occurrence's due time: the same for every attempt.
    pub created_at: DateTime<Utc>,
    pub reply_to: Option<Thread>,
    pub media: Vec<Media>,
}

/// An entry as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub record: Record,
    /// What went out differently from the draft (a mention that did not
    /// resolve became plain text).
    pub warnings: Vec<String>,
}

/// Engagement of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    pub uri: String,
    pub likes: i64,
    pub reposts: i64,
    pub replies: i64,
    pub quotes: i64,
}

/// A failed platform call, by what the caller should do about it. Messages
/// are shown to users: they never hold a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// Nothing happened; trying again later may work.
    #[error("{0}")]
    Transient(String),
    /// The call failed but may have taken effect (a timeout or a reset
    /// after sending, a 5xx): find out before doing it again.
    #[error("{0}")]
    Ambiguous(String),
    /// Slow down: nothing more for this connection until `retry_after`
    /// (when the platform named a time).
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: Option<DateTime<Utc>>,
    },
    /// The credentials were refused: renew them, else the user reconnects.
    #[error("{0}")]
    Auth(String),
    /// The platform refused the request itself; repeating it cannot help.
    #[error("{0}")]
    Invalid(String),
    /// Herald's own side failed (the session store, the key ring): not the
    /// platform's answer, and not an attempt; the caller looks again soon.
    #[error("{0}")]
    Internal(String),
}

impl PlatformError {
    /// How the domain classifies the failure of an attempt.
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Transient(_) | Self::Ambiguous(_) | Self::Internal(_) => FailureKind::Transient,
            Self::RateLimited { .. } => FailureKind::RateLimited,
            Self::Auth(_) => FailureKind::Auth,
            Self::Invalid(_) => FailureKind::Invalid,
        }
    }

    /// When the platform wants to hear from this connection again.
    pub fn retry_after(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// What happened, for logs and users.
    pub fn message(&self) -> &str {
        match self {
            Self::Transient(m)
            | Self::Ambiguous(m)
            | Self::Auth(m)
            | Self::Invalid(m)
            | Self::Internal(m)
            | Self::RateLimited { message: m, .. } => m,
        }
    }
}

/// A social platform's outbound operations for connected accounts.
#[async_trait]
pub trait Platform: Send + Sync {
    /// Which platform this is.
    fn kind(&self) -> PlatformKind;

    /// Publishes `entry` (with its media) at `key`, a record key derived from
    /// the post, the occurrence and the entry (`domain::rkey`). Answers
    /// [`PlatformError::Ambiguous`] when the entry may exist nonetheless.
    async fn publish(
        &self,
        account: Account<'_>,
        key: &str,
        entry: &Entry,
    ) -> Result<Published, PlatformError>;

    /// The record published at `key`, if there is one.
    async fn find(&self, account: Account<'_>, key: &str) -> Result<Option<Record>, PlatformError>;

    /// Removes the record at `key`; removing a missing one succeeds.
    async fn delete(&self, account: Account<'_>, key: &str) -> Result<(), PlatformError>;

    /// Counts of the records at `uris`; records the platform does not know
    /// (deleted, not indexed yet) are left out.
    async fn engagement(
        &self,
        account: Account<'_>,
        uris: &[String],
    ) -> Result<Vec<Counts>, PlatformError>;

    /// Renews the credentials after the platform refused them (Bluesky: a
    /// fresh login with the sealed app password). [`PlatformError::Auth`]
    /// means the user must reconnect.
    async fn refresh(&self, account: Account<'_>) -> Result<(), PlatformError>;
}

/// The platforms Herald publishes to, by kind.
#[derive(Clone, Default)]
pub struct Platforms {
    by_kind: HashMap<PlatformKind, Arc<dyn Platform>>,
}

impl Platforms {
    /// No platforms.
    pub fn new() -> Self {
        Self::default()
    }

    /// These platforms and `platform` (replacing one of the same kind).
    pub fn with(mut self, platform: impl Platform + 'static) -> Self {
        self.by_kind.insert(platform.kind(), Arc::new(platform));
        self
    }

    /// The platform of `connection`, if Herald has it.
    pub fn of(&self, connection: &Connection) -> Option<Arc<dyn Platform>> {
        self.by_kind.get(&PlatformKind::of(connection)).cloned()
    }
}
