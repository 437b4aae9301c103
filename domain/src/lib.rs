//! Herald's domain: aggregates, commands, events, domain errors and the pure rules
//! they rely on. Nothing here performs I/O; every decision takes what it needs
//! (the current time, the campaign's time zone) as command data, so the
//! given/when/then tests beside each aggregate need no database.
//!
//! Layout: one module per aggregate (`tenant`, `user`, `campaign`, `post`,
//! `connection`, `media`; `signage` holds one submodule per signage aggregate,
//! and `manifest` resolves what a display shows), the publishing rules
//! (`publish`: failure kinds, backoff), the shared rules (`text` for grapheme
//! limits and facets, `handle` for Bluesky handles, `schedule` for time zones and RRULEs, `access` for the
//! permission matrix, `audit` for the audit trail's hash chain, `rkey` for
//! deterministic Bluesky record keys), `sealed` values (ciphertext the domain
//! carries but never opens), event `metadata`, and the `upcast` registry that
//! loads old event shapes.

pub mod access;
pub mod audit;
pub mod bounds;
pub mod campaign;
pub mod connection;
pub mod error;
pub mod handle;
pub mod manifest;
pub mod media;
pub mod metadata;
pub mod post;
pub mod publish;
pub mod rkey;
pub mod schedule;
pub mod sealed;
pub mod signage;
pub mod tenant;
pub mod text;
pub mod upcast;
pub mod user;

pub use error::DomainError;

/// Records a pure decision: writes each decided event to the sink (which
/// applies it) in order, or passes the rejection on. Every aggregate's
/// `handle` is this one call around its synchronous `decide`.
pub(crate) async fn record<A: cqrs_es::Aggregate>(
    decision: Result<Vec<A::Event>, A::Error>,
    aggregate: &mut A,
    sink: &cqrs_es::event_sink::EventSink<A>,
) -> Result<(), A::Error> {
    for event in decision? {
        sink.write(event, aggregate).await;
    }
    Ok(())
}

/// Implements `cqrs_es::DomainEvent` for an event enum whose variants are
/// serialized with serde's external tagging: the event type is the variant name
/// and the version is the given schema version.
#[macro_export]
macro_rules! domain_event {
    ($ty:ty, $version:expr) => {
        impl cqrs_es::DomainEvent for $ty {
            fn event_type(&self) -> String {
                let value = serde_json::to_value(self).expect("events serialize");
                match value {
                    serde_json::Value::Object(map) => {
                        map.keys().next().cloned().unwrap_or_default()
                    }
                    serde_json::Value::String(name) => name,
                    _ => String::new(),
                }
            }
            fn event_version(&self) -> String {
                $version.to_string()
            }
        }
    };
}

/// A command addressed to an aggregate on behalf of a tenant. Every aggregate
/// remembers its tenant and answers `NotFound` to any other, so an id from a
/// foreign tenant behaves exactly like an id that does not exist.
#[derive(Debug, Clone)]
pub struct Scoped<C> {
    pub tenant_id: uuid::Uuid,
    pub command: C,
}
