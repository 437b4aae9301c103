//! The read side: read models built by projections from the global log, each
//! owning its tables, and the queries over them. A read model imports the
//! infrastructure (`crate::infra`, with the shared SQL helpers in
//! `infra::sql`), never another read model's internals.

use std::sync::Arc;

use crate::infra::push::Hub;
use crate::{Database, Projectors};

pub mod analytics;
pub mod audit;
pub mod dashboard;
pub mod identity;
pub mod media;
pub mod publishing;
pub mod signage;

impl Projectors {
    /// Herald's projections over `db`, pushing to no local display.
    pub fn new(db: Database) -> Self {
        Self::with_push(db, Hub::new())
    }

    /// Herald's projections over `db`; the signage projection pushes to the
    /// displays connected to `hub` (SQLite; PostgreSQL notifies every process).
    pub fn with_push(db: Database, hub: Hub) -> Self {
        Self::of(
            db,
            vec![
                Arc::new(dashboard::Dashboard),
                Arc::new(identity::Identity),
                Arc::new(audit::Audit),
                Arc::new(publishing::Connections),
                Arc::new(publishing::Schedule),
                Arc::new(media::Media),
                Arc::new(analytics::Analytics),
                Arc::new(signage::SignageProjection::new(hub)),
            ],
        )
    }
}
