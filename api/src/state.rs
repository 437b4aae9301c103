//! Shared application state: repositories (write side), read-model queries
//! (read side), sessions, and the projectors mutations wait on.

use std::time::Duration;

use chrono::Utc;
use cqrs_es::Aggregate;
use domain::DomainError;
use domain::campaign::Campaign;
use domain::metadata::{Actor, EventMetadata};
use domain::post::Post;
use domain::tenant::Tenant;
use domain::user::User;
use projections::dashboard::DashboardQueries;
use projections::store::Committed;
use projections::{Database, Projectors, Repository};
use uuid::Uuid;

use crate::auth::{Principal, Sessions};
use crate::error::{ApiError, ApiResult};

/// How long a mutation waits for the read models to show its change: longer
/// than a projector lease, so a crashed lease holder is replaced in time.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Everything a request handler needs.
pub struct AppState {
    pub db: Database,
    pub projectors: Projectors,
    pub tenants: Repository<Tenant>,
    pub users: Repository<User>,
    pub campaigns: Repository<Campaign>,
    pub posts: Repository<Post>,
    pub dashboard: DashboardQueries,
    pub sessions: Sessions,
}

impl AppState {
    /// State over `db`.
    pub fn new(db: Database, access_ttl_seconds: i64) -> Self {
        let projectors = Projectors::new(db.clone());
        let appended = projectors.appended.clone();
        Self {
            tenants: Repository::new(&db, appended.clone()),
            users: Repository::new(&db, appended.clone()),
            campaigns: Repository::new(&db, appended.clone()),
            posts: Repository::new(&db, appended),
            dashboard: DashboardQueries::new(db.any.clone()),
            sessions: Sessions::new(db.any.clone(), access_ttl_seconds),
            projectors,
            db,
        }
    }

    /// Metadata for a command issued by `principal` within request `correlation`.
    pub fn metadata(&self, principal: &Principal, correlation: Uuid) -> EventMetadata {
        EventMetadata::new(
            principal.tenant_id,
            Actor::User(principal.user_id),
            correlation,
            Utc::now(),
        )
    }

    /// Executes a command and waits until the read models show it, so the
    /// caller can read its own write.
    pub async fn run<A>(
        &self,
        repo: &Repository<A>,
        id: Uuid,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> ApiResult<Committed>
    where
        A: Aggregate<Services = (), Error = DomainError>,
        A::Command: Clone,
    {
        let committed = repo.execute(&id.to_string(), command, metadata).await?;
        if let Some(position) = repo.position(&committed).await?
            && !self.projectors.wait_for(position, SETTLE_TIMEOUT).await?
        {
            tracing::warn!(%position, "read models lag behind a committed change");
        }
        Ok(committed)
    }

    /// Loads an aggregate (for look-ups a command needs before it is built).
    pub async fn load<A>(&self, repo: &Repository<A>, id: Uuid) -> ApiResult<A>
    where
        A: Aggregate<Services = ()>,
        A::Command: Clone,
    {
        repo.load(&id.to_string()).await.map_err(ApiError::from)
    }
}
