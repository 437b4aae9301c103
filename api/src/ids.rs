//! Ids a request gives what it creates, and its commands.
//!
//! Outside a keyed request (see `http::idempotency`) a new aggregate gets a
//! fresh UUIDv7 and commands need no id. Within one, both are derived from
//! the request's seed (its tenant, `Idempotency-Key` and body) and counted
//! in order, so every attempt of the request makes the same ids, and a
//! command an earlier attempt applied is recognised by its id.

use std::cell::Cell;
use std::future::Future;

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// What the commands of a keyed request derive their ids from.
#[derive(Debug, Clone, Copy)]
struct Scope {
    seed: Uuid,
    started_at_millis: u64,
}

tokio::task_local! {
    static SCOPE: Scope;
    static COUNTERS: Cell<(u32, u32)>;
}

/// An id for an aggregate the request creates: a fresh UUIDv7, or, within
/// a keyed request, the same id on every attempt (a v7 of the first
/// attempt's time whose random part comes from the key).
pub fn new_id() -> Uuid {
    match next(0) {
        Some((scope, n)) => derived_v7(scope, "id", n),
        None => Uuid::now_v7(),
    }
}

/// The id of the next command of a keyed request (`None` outside one): the
/// command is applied at most once under it.
pub fn command_id() -> Option<Uuid> {
    next(1).map(|(scope, n)| Uuid::new_v5(&scope.seed, format!("command:{n}").as_bytes()))
}

fn next(which: usize) -> Option<(Scope, u32)> {
    let scope = SCOPE.try_with(|s| *s).ok()?;
    let n = COUNTERS
        .try_with(|c| {
            let (ids, commands) = c.get();
            let (n, next) = if which == 0 {
                (ids, (ids + 1, commands))
            } else {
                (commands, (ids, commands + 1))
            };
            c.set(next);
            n
        })
        .ok()?;
    Some((scope, n))
}

fn derived_v7(scope: Scope, kind: &str, n: u32) -> Uuid {
    let digest = Sha256::new()
        .chain_update(scope.seed.as_bytes())
        .chain_update(kind.as_bytes())
        .chain_update(n.to_be_bytes())
        .finalize();
    let mut random = [0u8; 10];
    random.copy_from_slice(&digest[..10]);
    uuid::Builder::from_unix_timestamp_millis(scope.started_at_millis, &random).into_uuid()
}

/// Runs `request` as a keyed request: its ids derive from `seed` and from
/// `started_at_millis`, the time of its first attempt.
pub async fn derived<F: Future>(seed: Uuid, started_at_millis: u64, request: F) -> F::Output {
    let scope = Scope {
        seed,
        started_at_millis,
    };
    SCOPE
        .scope(scope, COUNTERS.scope(Cell::new((0, 0)), request))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ids_repeat_within_a_keyed_request_and_differ_outside() {
        let run = || {
            derived(Uuid::from_u128(7), 1_700_000_000_000, async {
                (new_id(), new_id(), command_id(), command_id())
            })
        };
        let first = run().await;
        assert_eq!(first, run().await, "a retry derives the same ids");
        assert_ne!(first.0, first.1);
        assert_ne!(first.2, first.3);
        assert_eq!(first.0.get_version_num(), 7);
        assert_eq!(
            first.0.get_timestamp().unwrap().to_unix().0,
            1_700_000_000,
            "ids sort by the first attempt's time"
        );
        assert!(command_id().is_none(), "no key, no command id");
        assert_ne!(new_id(), new_id());
    }
}
