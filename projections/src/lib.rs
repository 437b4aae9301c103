//! Persistence and the read side of Herald: the database handle (`db`), the
//! cqrs-es event store on PostgreSQL or SQLite with bounded conflict retries
//! (`store`), the global commit-ordered event log (`log`), the projector runner
//! with durable checkpoints and leases (`runner`), and the read models fed by it
//! (`dashboard`, the hash-chained `audit` trail, publishing and `analytics`),
//! and the live `push` hub that signals connected displays. Read models never load
//! aggregates: they are plain tables that `herald replay` can rebuild from the
//! log.

pub mod analytics;
pub mod audit;
pub mod crypto;
pub mod dashboard;
pub mod db;
pub mod error;
pub mod identity;
pub mod log;
pub mod media;
pub mod publishing;
pub mod push;
pub mod runner;
pub mod signage;
pub mod store;

pub use crypto::{Keyring, MasterKey, Opened, Scope};
pub use db::Database;
pub use error::StoreError;
pub use log::{GlobalLog, Position, StoredEvent};
pub use runner::{Projection, Projector, Projectors};
pub use store::{CommandError, Loaded, Repository};

/// Microseconds since the Unix epoch, the time unit of every read-model column.
pub fn micros(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

/// Inverse of [`micros`].
pub fn from_micros(us: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default()
}
