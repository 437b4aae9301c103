//! Persistence and the read side of Herald, in two module trees.
//!
//! - [`infra`]: the write side and what the read side runs on: the database
//!   handle (`db`), commands on aggregates with bounded conflict retries
//!   (`store`) and the one-statement appends under them, the global
//!   commit-ordered event log (`log`), the SQL placeholder helpers both
//!   sides share (`sql`), envelope encryption (`crypto`), the projector
//!   runner with durable checkpoints and leases (`runner`) and the live
//!   `push` hub that signals connected displays. It never imports a read
//!   model.
//! - [`read`]: the read models fed by the runner (`dashboard`, the
//!   hash-chained `audit` trail, `identity`, `publishing`, `media`,
//!   `analytics`, `signage`). Read models never load aggregates: they are
//!   plain tables that `herald replay` can rebuild from the log.
//!
//! Every module is also re-exported at the crate root (`projections::store`,
//! `projections::dashboard`, …), the paths the other crates use.

pub mod error;
pub mod infra;
pub mod read;
pub mod time;

pub use infra::{crypto, db, log, push, replay, runner, store};
pub use read::{analytics, audit, dashboard, identity, media, publishing, signage};

pub use crypto::{Keyring, MasterKey, Opened, Scope};
pub use db::Database;
pub use error::StoreError;
pub use log::{GlobalLog, Position, StoredEvent};
pub use replay::Replayed;
pub use runner::{Projection, Projector, Projectors};
pub use store::{CommandError, Loaded, Repository};
pub use time::{from_micros, micros};
