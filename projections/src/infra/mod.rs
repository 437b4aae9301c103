//! The write side and the machinery the read side runs on: database handles
//! ([`db`]), the cqrs-es event store ([`store`]), the global commit-ordered
//! log ([`log`]), envelope encryption ([`crypto`]), the projector runner
//! ([`runner`]) with the identity its leases carry ([`process`]), and the
//! live push hub ([`push`]). Nothing here imports a
//! read model: projections reach the runner only as `dyn Projection`.

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
pub mod store;
