//! [`RateLimiter`]: the counts in the shared `rate_limits` table, each
//! operation one atomic upsert, and the decision whether a counted attempt
//! is refused.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use projections::micros;
use sqlx::{AnyPool, Row};

use super::error::{Limited, RateLimitError};
use super::policy::{Policy, micros_of};

/// The time source of a [`RateLimiter`].
type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Counts attempts and failures per key in the `rate_limits` table.
#[derive(Clone)]
pub struct RateLimiter {
    pool: AnyPool,
    clock: Clock,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter").finish_non_exhaustive()
    }
}

// Parameters: $1 key, $2 now, $3 window, $4 now + window (all µs).
const HIT: &str = "
INSERT INTO rate_limits (key, window_start, hits, updated_at, expires_at)
VALUES ($1, $2, 1, $2, $4)
ON CONFLICT (key) DO UPDATE SET
    window_start = CASE WHEN rate_limits.window_start + $3 <= $2
                        THEN $2 ELSE rate_limits.window_start END,
    hits         = CASE WHEN rate_limits.window_start + $3 <= $2
                        THEN 1 ELSE rate_limits.hits + 1 END,
    updated_at   = $2,
    expires_at   = CASE WHEN rate_limits.expires_at < $4
                        THEN $4 ELSE rate_limits.expires_at END
RETURNING window_start, hits, locked_until";

// Parameters: $1 key, $2 now, $3 forget_after, $4 lockout_after (0 = off),
// $5 lockout_base, $6 lockout_max, $7 the exponent cap, $8 the row's
// retention (now + the longer of forget_after and lockout_max), $9 the
// lock-out of a first failure (µs, 0 = none). `{F}` is the failure count
// after this one; the lock-out mirrors `Policy::lockout`.
static FAILURE: LazyLock<String> = LazyLock::new(|| {
    let failures = "(CASE WHEN rate_limits.failed_at + $3 <= $2 \
                    THEN 1 ELSE rate_limits.failures + 1 END)";
    let exponent = "(CASE WHEN {F} - $4 < $7 THEN {F} - $4 ELSE $7 END)";
    let doubled = "(CAST($5 AS bigint) << CAST({E} AS integer))";
    "
INSERT INTO rate_limits (key, failures, failed_at, locked_until, updated_at, expires_at)
VALUES ($1, 1, $2, CASE WHEN $9 > 0 THEN $2 + $9 ELSE 0 END, $2, $8)
ON CONFLICT (key) DO UPDATE SET
    failures     = {F},
    failed_at    = $2,
    locked_until = CASE WHEN $4 > 0 AND {F} >= $4
                        THEN $2 + CASE WHEN {D} < $6 THEN {D} ELSE $6 END
                        ELSE rate_limits.locked_until END,
    updated_at   = $2,
    expires_at   = CASE WHEN rate_limits.expires_at < $8
                        THEN $8 ELSE rate_limits.expires_at END
RETURNING failures, locked_until"
        .replace("{D}", doubled)
        .replace("{E}", exponent)
        .replace("{F}", failures)
});

impl RateLimiter {
    /// A limiter on the shared `Any` pool, reading the system clock.
    pub fn new(pool: AnyPool) -> Self {
        Self {
            pool,
            clock: Arc::new(Utc::now),
        }
    }

    /// Replaces the clock, so tests can move time instead of sleeping.
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Counts an attempt for `key`. Refused, with the time until an attempt
    /// can succeed, while the key is locked out or has used up its window.
    /// A refused attempt still counts; it cannot extend the window.
    #[tracing::instrument(skip_all, fields(policy = policy.name))]
    pub async fn hit(&self, policy: &Policy, key: &str) -> Result<(), RateLimitError> {
        let now = micros((self.clock)());
        let window = micros_of(policy.window);
        let row = sqlx::query(HIT)
            .bind(key)
            .bind(now)
            .bind(window)
            .bind(now.saturating_add(window))
            .fetch_one(&self.pool)
            .await?;
        let window_start: i64 = row.try_get("window_start")?;
        let hits: i64 = row.try_get("hits")?;
        let locked_until: i64 = row.try_get("locked_until")?;
        match refusal(policy, now, window_start, hits, locked_until) {
            None => Ok(()),
            Some(limited) => {
                tracing::info!(
                    retry_after_secs = limited.retry_after_secs(),
                    "attempt refused by rate limit"
                );
                Err(RateLimitError::Limited(limited))
            }
        }
    }

    /// Records a failed attempt (wrong password, code or token). Once
    /// `lockout_after` failures have come in a row, the key is locked; the
    /// answer is then the lock-out, which the caller may report instead of
    /// its usual error.
    #[tracing::instrument(skip_all, fields(policy = policy.name))]
    pub async fn failure(
        &self,
        policy: &Policy,
        key: &str,
    ) -> Result<Option<Limited>, sqlx::Error> {
        let now = micros((self.clock)());
        let forget = micros_of(policy.forget_after);
        let retain = forget.max(micros_of(policy.lockout_max));
        let first = policy.lockout(1).map_or(0, micros_of);
        let row = sqlx::query(&FAILURE)
            .bind(key)
            .bind(now)
            .bind(forget)
            .bind(i64::from(policy.lockout_after))
            .bind(micros_of(policy.lockout_base))
            .bind(micros_of(policy.lockout_max))
            .bind(i64::from(policy.max_exponent()))
            .bind(now.saturating_add(retain))
            .bind(first)
            .fetch_one(&self.pool)
            .await?;
        let failures: i64 = row.try_get("failures")?;
        let locked_until: i64 = row.try_get("locked_until")?;
        if locked_until <= now {
            return Ok(None);
        }
        let limited = Limited {
            retry_after: Duration::from_micros((locked_until - now) as u64),
        };
        tracing::warn!(
            failures,
            retry_after_secs = limited.retry_after_secs(),
            "key locked out after repeated failures"
        );
        Ok(Some(limited))
    }

    /// Records a successful attempt: the failures are forgotten and a
    /// lock-out ends. The window's count stays. `policy` names the span.
    #[tracing::instrument(skip_all, fields(policy = policy.name))]
    pub async fn success(&self, policy: &Policy, key: &str) -> Result<(), sqlx::Error> {
        let now = micros((self.clock)());
        sqlx::query(
            "UPDATE rate_limits SET failures = 0, locked_until = 0, updated_at = $2 WHERE key = $1",
        )
        .bind(key)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes rows whose window, lock-out and failure memory have all
    /// passed; returns how many. Callers run it now and then (hourly is
    /// plenty); a stale row does no harm meanwhile, it only takes space.
    #[tracing::instrument(skip_all)]
    pub async fn cleanup(&self) -> Result<u64, sqlx::Error> {
        let now = micros((self.clock)());
        let done = sqlx::query("DELETE FROM rate_limits WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

/// Whether a counted attempt is refused, and for how long: the later of the
/// lock-out's end and, when the window is used up, the window's end.
fn refusal(
    policy: &Policy,
    now: i64,
    window_start: i64,
    hits: i64,
    locked_until: i64,
) -> Option<Limited> {
    let mut until = None;
    if locked_until > now {
        until = Some(locked_until);
    }
    if hits > i64::from(policy.max_hits) {
        let window_end = window_start.saturating_add(micros_of(policy.window));
        until = Some(until.map_or(window_end, |u: i64| u.max(window_end)));
    }
    until.map(|until| Limited {
        retry_after: Duration::from_micros(until.saturating_sub(now).max(0) as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_reports_the_later_of_window_end_and_lock_end() {
        let p = Policy::LOGIN_PER_ACCOUNT; // 10 per 5 min
        let s = 1_000_000;
        let now = 100 * s;
        assert_eq!(refusal(&p, now, now - 10 * s, 10, 0), None);
        let over = refusal(&p, now, now - 10 * s, 11, 0).unwrap();
        assert_eq!(over.retry_after, Duration::from_secs(290));
        let locked = refusal(&p, now, now, 1, now + 30 * s).unwrap();
        assert_eq!(locked.retry_after, Duration::from_secs(30));
        let both = refusal(&p, now, now - 10 * s, 11, now + 900 * s).unwrap();
        assert_eq!(both.retry_after, Duration::from_secs(900));
        assert_eq!(
            refusal(&p, now, now, 1, now),
            None,
            "a lock ends at its time"
        );
    }
}
