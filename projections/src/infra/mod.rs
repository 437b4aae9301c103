//! The write side and the machinery the read side runs on: database handles
//! ([`db`]), commands on aggregates ([`store`]) and how their events are
//! written (`append`, together in `group`), the global commit-ordered log
//! ([`log`]), envelope encryption ([`crypto`]), the projector runner
//! ([`runner`]) with the identity its leases carry ([`process`]), the
//! shared SQL placeholder helpers (`sql`), and the live push hub
//! ([`push`]). Nothing here imports a read model: projections reach the
//! runner only as `dyn Projection`.

pub(crate) mod append;
pub mod crypto;
pub mod db;
pub(crate) mod group;
pub(crate) mod lease;
pub mod log;
pub mod process;
pub mod push;
pub mod replay;
pub mod runner;
mod shadow;
pub(crate) mod sql;
pub mod store;
