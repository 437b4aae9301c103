//! Shared application state: repositories (write side), read-model queries
//! (read side), sessions, and the projectors mutations wait on.

use std::time::Duration;

use chrono::Utc;
use cqrs_es::Aggregate;
use domain::campaign::Campaign;
use domain::connection::Connection;
use domain::media::MediaAsset;
use domain::metadata::EventMetadata;
use domain::post::Post;
use domain::signage::{
    Display, DisplayGroup, Emergency, Notice, NoticeCategory, PlayReport, Playlist, SignageSchedule,
};
use domain::tenant::Tenant;
use domain::user::User;
use domain::{DomainError, Scoped};
use projections::analytics::AnalyticsQueries;
use projections::dashboard::{Dashboard, DashboardQueries};
use projections::identity::{Identity, IdentityQueries};
use projections::media::{Media, MediaQueries};
use projections::publishing::{ConnectionQueries, Connections};
use projections::push::Hub;
use projections::signage::{SignageProjection, SignageQueries};
use projections::store::{Committed, Staged, append_all};
use projections::{Database, GlobalLog, Keyring, Position, Projectors, Repository};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::identity::auth::{Principal, Sessions};

/// How long a mutation waits for the read models to show its change: longer
/// than a projector lease, so a crashed lease holder is replaced in time.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a query of a read model no mutation waits for (the audit log,
/// analytics) waits for it to show this process's latest write.
pub const FRESH_TIMEOUT: Duration = Duration::from_secs(5);

/// The read models an aggregate's state is read back from. A command's
/// answer reads them, so the command waits for them, and only for them:
/// the audit log, analytics, the publisher's schedule and the mail intents
/// follow at their own pace (their queries wait with
/// [`AppState::fresh`]). An operation whose answer reads more names them
/// itself ([`AppState::commit_all`]).
pub trait ShownIn {
    const READ_MODELS: &'static [&'static str];
}

macro_rules! shown_in {
    ($($aggregate:ty => $($model:expr),+;)+) => {
        $(impl ShownIn for $aggregate {
            const READ_MODELS: &'static [&'static str] = &[$($model),+];
        })+
    };
}

shown_in! {
    Tenant => Identity::NAME;
    User => Identity::NAME;
    Campaign => Dashboard::NAME;
    Post => Dashboard::NAME;
    Connection => Connections::NAME;
    MediaAsset => Media::NAME;
    Display => SignageProjection::NAME;
    DisplayGroup => SignageProjection::NAME;
    NoticeCategory => SignageProjection::NAME;
    Notice => SignageProjection::NAME;
    Playlist => SignageProjection::NAME;
    SignageSchedule => SignageProjection::NAME;
    Emergency => SignageProjection::NAME;
    PlayReport => SignageProjection::NAME;
}

/// The aggregate a command goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A new aggregate under an id the caller just generated: the first
    /// attempt decides on the empty state without loading it.
    New(Uuid),
    /// An aggregate that exists (its own rule answers NOT_FOUND otherwise).
    Existing(Uuid),
}

/// Everything a request handler needs.
pub struct AppState {
    pub db: Database,
    /// The global event log (positions of committed changes).
    pub log: GlobalLog,
    pub projectors: Projectors,
    pub tenants: Repository<Tenant>,
    pub users: Repository<User>,
    pub campaigns: Repository<Campaign>,
    pub posts: Repository<Post>,
    pub connections: Repository<Connection>,
    pub media: Repository<MediaAsset>,
    pub displays: Repository<Display>,
    pub display_groups: Repository<DisplayGroup>,
    pub categories: Repository<NoticeCategory>,
    pub notices: Repository<Notice>,
    pub playlists: Repository<Playlist>,
    pub signage_schedules: Repository<SignageSchedule>,
    pub emergencies: Repository<Emergency>,
    pub play_reports: Repository<PlayReport>,
    pub signage: SignageQueries,
    /// Displays connected to this process.
    pub hub: Hub,
    pub dashboard: DashboardQueries,
    pub identity: IdentityQueries,
    pub connection_reads: ConnectionQueries,
    pub media_reads: MediaQueries,
    /// Where uploaded images are stored.
    pub media_store: workers::media::MediaStore,
    pub analytics: AnalyticsQueries,
    /// Connected platform accounts and their sessions.
    pub accounts: workers::accounts::Accounts,
    pub sessions: Sessions,
    pub keyring: Keyring,
    /// Brute-force limits shared by every process.
    pub limiter: crate::identity::ratelimit::RateLimiter,
    /// Sign-ups allowed per client IP and hour (`identity.sign_ups_per_hour`).
    pub sign_ups_per_hour: u32,
    /// Base URL for links in e-mails.
    pub public_url: String,
    /// The log position of this process's latest committed change.
    written: std::sync::Mutex<Position>,
}

impl AppState {
    /// State over `db`.
    pub fn new(
        db: Database,
        keyring: Keyring,
        access_ttl_seconds: i64,
        public_url: String,
        accounts: workers::accounts::Accounts,
        media_store: workers::media::MediaStore,
        node_id: Option<String>,
    ) -> Self {
        let hub = Hub::new();
        let projectors =
            workers::projectors(db.clone(), &keyring, &public_url, hub.clone()).on_node(node_id);
        let appended = projectors.appended.clone();
        Self {
            displays: Repository::new(&db, appended.clone()),
            display_groups: Repository::new(&db, appended.clone()),
            categories: Repository::new(&db, appended.clone()),
            notices: Repository::new(&db, appended.clone()),
            playlists: Repository::new(&db, appended.clone()),
            signage_schedules: Repository::new(&db, appended.clone()),
            emergencies: Repository::new(&db, appended.clone()),
            play_reports: Repository::new(&db, appended.clone()),
            signage: SignageQueries::new(&db),
            hub,
            tenants: Repository::new(&db, appended.clone()),
            users: Repository::new(&db, appended.clone()),
            campaigns: Repository::new(&db, appended.clone()),
            posts: Repository::new(&db, appended.clone()),
            connections: Repository::new(&db, appended.clone()),
            media: Repository::new(&db, appended),
            dashboard: DashboardQueries::new(db.any.clone()),
            identity: IdentityQueries::new(db.any.clone()),
            connection_reads: ConnectionQueries::new(db.any.clone()),
            media_reads: MediaQueries::new(db.any.clone()),
            media_store,
            analytics: AnalyticsQueries::new(db.any.clone()),
            accounts,
            sessions: Sessions::new(db.any.clone(), keyring.clone(), access_ttl_seconds),
            limiter: crate::identity::ratelimit::RateLimiter::new(db.any.clone()),
            sign_ups_per_hour: crate::identity::ratelimit::Policy::SIGN_UP_PER_IP.max_hits,
            keyring,
            public_url,
            projectors,
            log: GlobalLog::new(db.clone()),
            written: Default::default(),
            db,
        }
    }

    /// Metadata for a command issued by `principal` within request `correlation`.
    pub fn metadata(&self, principal: &Principal, correlation: Uuid) -> EventMetadata {
        EventMetadata::new(
            principal.tenant_id,
            principal.actor.clone(),
            correlation,
            Utc::now(),
        )
    }

    /// The one way the edge runs a command: `command` goes to `target` in
    /// `principal`'s tenant (`Scoped`), with metadata naming the principal
    /// and the request's `correlation`; the store decides and appends,
    /// retrying a bounded number of times when another writer got there
    /// first; the answer comes once the read models show the change, so the
    /// caller reads its own write.
    pub async fn execute<A, C>(
        &self,
        repo: &Repository<A>,
        principal: &Principal,
        correlation: Uuid,
        target: Target,
        command: C,
    ) -> ApiResult<Committed>
    where
        A: Aggregate<Command = Scoped<C>, Services = (), Error = DomainError>
            + ShownIn
            + Clone
            + 'static,
        C: Clone,
    {
        let metadata = self.metadata(principal, correlation);
        let command = Scoped {
            tenant_id: principal.tenant_id,
            command,
        };
        self.execute_as(repo, target, command, &metadata).await
    }

    /// [`AppState::execute`] with metadata the caller built: for the identity
    /// flows that run before anyone is signed in (sign-up, a password reset
    /// from a mailed link) and for tenant-less aggregates (Tenant, User).
    pub async fn execute_as<A>(
        &self,
        repo: &Repository<A>,
        target: Target,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> ApiResult<Committed>
    where
        A: Aggregate<Services = (), Error = DomainError> + ShownIn + Clone + 'static,
        A::Command: Clone,
    {
        // Within a request sent with an Idempotency-Key, each command has
        // an id of its own and is applied at most once.
        let once = crate::ids::command_id();
        let keyed;
        let metadata = match once {
            Some(command_id) => {
                keyed = EventMetadata {
                    causation_id: command_id,
                    ..metadata.clone()
                };
                &keyed
            }
            None => metadata,
        };
        let committed = match (target, once) {
            (Target::New(id), None) => repo.create(&id.to_string(), command, metadata).await?,
            (Target::Existing(id), None) => {
                repo.execute(&id.to_string(), command, metadata).await?
            }
            (Target::New(id), Some(_)) => {
                repo.execute_once(&id.to_string(), command, metadata, true)
                    .await?
            }
            (Target::Existing(id), Some(_)) => {
                repo.execute_once(&id.to_string(), command, metadata, false)
                    .await?
            }
        };
        self.settle(&committed, A::READ_MODELS).await?;
        Ok(committed)
    }

    /// Appends the staged changes of several aggregates all or nothing
    /// (see [`projections::store::append_all`]) and waits until the read
    /// models named `reads` show them. `None` when a stream moved on since
    /// it was loaded: nothing was written, and the caller decides again.
    pub async fn commit_all(
        &self,
        staged: &[Staged],
        reads: &[&str],
    ) -> ApiResult<Option<Vec<Committed>>> {
        let Some(committed) = append_all(&self.db, staged).await? else {
            return Ok(None);
        };
        if let Some(last) = committed.iter().rev().find(|c| c.last_sequence.is_some()) {
            self.settle(last, reads).await?;
        }
        Ok(Some(committed))
    }

    /// Waits until the read models named `reads` show `committed`.
    async fn settle(&self, committed: &Committed, reads: &[&str]) -> ApiResult<()> {
        let Some(position) = committed.locate(&self.log).await? else {
            return Ok(());
        };
        {
            let mut written = self.written.lock().expect("written lock");
            *written = (*written).max(position);
        }
        if !self
            .projectors
            .wait_for(position, reads, SETTLE_TIMEOUT)
            .await?
        {
            tracing::warn!(%position, ?reads, "read models lag behind a committed change");
        }
        Ok(())
    }

    /// Waits (up to [`FRESH_TIMEOUT`]) until the read models named `reads`
    /// show every change this process committed so far: for queries of
    /// read models that mutations do not wait for, so that a client reads
    /// its own writes there too.
    pub async fn fresh(&self, reads: &[&str]) -> ApiResult<()> {
        let written = *self.written.lock().expect("written lock");
        if written > Position::default()
            && !self
                .projectors
                .wait_for(written, reads, FRESH_TIMEOUT)
                .await?
        {
            tracing::warn!(position = %written, ?reads, "answering from a read model that lags behind");
        }
        Ok(())
    }

    /// Loads an aggregate (for look-ups a command needs before it is built).
    pub async fn load<A>(&self, repo: &Repository<A>, id: Uuid) -> ApiResult<A>
    where
        A: Aggregate<Services = ()> + Clone + 'static,
        A::Command: Clone,
    {
        repo.load(&id.to_string()).await.map_err(ApiError::from)
    }
}
