//! The brute-force guard: per-key attempt limits in a fixed window and an
//! exponential lock-out after consecutive failures, kept in the shared
//! `rate_limits` table so that every `herald api` process sees the same
//! counts. Each operation is one `INSERT … ON CONFLICT (key) DO UPDATE …
//! RETURNING` statement (PostgreSQL, and SQLite ≥ 3.35), so concurrent
//! attempts in several processes cannot race past a limit.
//!
//! A caller builds a key from a [`Policy`] and a subject (a client IP through
//! [`ip_subject`], or an account's e-mail address) with [`key`], which keyed-
//! hashes the subject, so neither addresses nor IPs are stored in plaintext.
//! Then, around the guarded attempt:
//!
//! ```text
//! limiter.hit(&Policy::LOGIN_PER_ACCOUNT, &k).await?;      // refused while over the limit or locked
//! if credential_ok { limiter.success(&Policy::LOGIN_PER_ACCOUNT, &k).await?; }
//! else { limiter.failure(&Policy::LOGIN_PER_ACCOUNT, &k).await?; }
//! ```
//!
//! The window is fixed, not sliding: at a window boundary a client can make
//! up to twice `max_hits` attempts in quick succession. The lock-out is what
//! bounds guessing over time. Times come from the process clock
//! ([`RateLimiter::with_clock`] replaces it in tests); processes sharing a
//! database should keep their clocks in sync (NTP), as they do for tokens.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use projections::micros;
use sha2::Sha256;
use sqlx::{AnyPool, Row};

use crate::error::ApiError;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// How often a kind of attempt may be made and how failures are punished.
/// Plain data: the presets below cover the guarded operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Stable name; the prefix of every key of this policy in the table.
    pub name: &'static str,
    /// Attempts allowed per window and key.
    pub max_hits: u32,
    /// Length of the fixed window.
    pub window: Duration,
    /// Consecutive failures that lock the key; 0 disables the lock-out.
    pub lockout_after: u32,
    /// The first lock-out; each further failure doubles it.
    pub lockout_base: Duration,
    /// The longest lock-out.
    pub lockout_max: Duration,
    /// Failures are forgotten after this long without another one. Longer
    /// than `lockout_max`, so that waiting out the longest lock-out does not
    /// also wipe the count that earned it.
    pub forget_after: Duration,
}

impl Policy {
    /// `POST /display/v1/register` per client IP; `max_hits` comes from
    /// configuration. No lock-out: nothing is guessed here.
    pub const DISPLAY_REGISTER: Policy = Policy {
        name: "display_register",
        max_hits: 10,
        window: Duration::from_secs(60),
        lockout_after: 0,
        lockout_base: Duration::from_secs(60),
        lockout_max: Duration::from_secs(60),
        forget_after: Duration::from_secs(120),
    };

    /// `logIn` per client IP (see [`ip_subject`]). Generous, because offices
    /// share an address; its lock-out stops spraying many accounts from one
    /// host. Call only `hit` and `failure` for it: a success must not reset
    /// it, or one valid account would launder an attacker's failures.
    pub const LOGIN_PER_IP: Policy = Policy {
        name: "login_ip",
        max_hits: 30,
        window: Duration::from_secs(5 * 60),
        lockout_after: 50,
        lockout_base: Duration::from_secs(5 * 60),
        lockout_max: HOUR,
        forget_after: Duration::from_secs(2 * 3600),
    };

    /// `logIn` per account (the normalised e-mail address, whether or not
    /// such a user exists, so that a lock-out reveals nothing). 5 wrong
    /// passwords lock for 30 s, then 1, 2, 4, 8 and at most 15 minutes.
    pub const LOGIN_PER_ACCOUNT: Policy = Policy {
        name: "login_account",
        max_hits: 10,
        window: Duration::from_secs(5 * 60),
        lockout_after: 5,
        lockout_base: Duration::from_secs(30),
        lockout_max: Duration::from_secs(15 * 60),
        forget_after: HOUR,
    };

    /// `refreshSession` per client IP. Refresh tokens cannot be guessed, so
    /// this only caps floods; many invalid tokens from one host lock it.
    pub const REFRESH_PER_IP: Policy = Policy {
        name: "refresh_ip",
        max_hits: 60,
        window: MINUTE,
        lockout_after: 30,
        lockout_base: MINUTE,
        lockout_max: Duration::from_secs(15 * 60),
        forget_after: HOUR,
    };

    /// Password-reset requests and token redemptions per client IP; invalid
    /// reset tokens count as failures.
    pub const PASSWORD_RESET_PER_IP: Policy = Policy {
        name: "reset_ip",
        max_hits: 10,
        window: HOUR,
        lockout_after: 10,
        lockout_base: Duration::from_secs(5 * 60),
        lockout_max: HOUR,
        forget_after: Duration::from_secs(24 * 3600),
    };

    /// Password-reset requests per account (the e-mail address), so nobody
    /// can flood someone's inbox. No lock-out: a wrong token names no account.
    pub const PASSWORD_RESET_PER_ACCOUNT: Policy = Policy {
        name: "reset_account",
        max_hits: 3,
        window: HOUR,
        lockout_after: 0,
        lockout_base: Duration::ZERO,
        lockout_max: Duration::ZERO,
        forget_after: HOUR,
    };

    /// TOTP and backup-code attempts per account (at sign-in, enrolment
    /// confirmation and `disableTotp`). 5 wrong codes lock for 1 minute,
    /// doubling up to 1 hour, which keeps a 6-digit code out of reach.
    pub const TOTP_PER_ACCOUNT: Policy = Policy {
        name: "totp_account",
        max_hits: 10,
        window: Duration::from_secs(5 * 60),
        lockout_after: 5,
        lockout_base: MINUTE,
        lockout_max: HOUR,
        forget_after: Duration::from_secs(24 * 3600),
    };

    /// Every preset, for documentation and tests.
    pub const PRESETS: [Policy; 6] = [
        Self::LOGIN_PER_IP,
        Self::LOGIN_PER_ACCOUNT,
        Self::REFRESH_PER_IP,
        Self::PASSWORD_RESET_PER_IP,
        Self::PASSWORD_RESET_PER_ACCOUNT,
        Self::TOTP_PER_ACCOUNT,
    ];

    /// How long `failures` consecutive failures lock a key:
    /// `lockout_base · 2^(failures − lockout_after)`, at most `lockout_max`;
    /// `None` below the threshold or when the lock-out is disabled.
    pub fn lockout(&self, failures: u32) -> Option<Duration> {
        if self.lockout_after == 0 || failures < self.lockout_after {
            return None;
        }
        let exponent = (failures - self.lockout_after).min(self.max_exponent());
        let us = (micros_of(self.lockout_base) << exponent).min(micros_of(self.lockout_max));
        Some(Duration::from_micros(us as u64))
    }

    /// The smallest exponent at which the doubling reaches `lockout_max`.
    /// Capping the shift there keeps `base << exponent` below twice the
    /// maximum, so it cannot overflow, in Rust or in SQL.
    fn max_exponent(&self) -> u32 {
        let (base, max) = (micros_of(self.lockout_base), micros_of(self.lockout_max));
        let mut exponent = 0;
        while base > 0 && (base << exponent) < max && exponent < 62 {
            exponent += 1;
        }
        exponent
    }
}

/// A duration in microseconds, saturated so that doubling it up to
/// [`Policy::max_exponent`] times stays within `i64`.
fn micros_of(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).map_or(i64::MAX / 4, |us| us.min(i64::MAX / 4))
}

/// The key under which `policy` counts attempts of `subject`:
/// `"<policy name>:<hex HMAC-SHA256(secret, policy name ‖ 0 ‖ subject)>"`.
/// The subject is trimmed and lower-cased first, so `Alice@Example.org ` and
/// `alice@example.org` share a count. Without `secret` the hash of a known
/// address could be recomputed, so pass a server-side key.
pub fn key(policy: &Policy, subject: &str, secret: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(policy.name.as_bytes());
    mac.update(&[0]);
    mac.update(subject.trim().to_lowercase().as_bytes());
    format!(
        "{}:{}",
        policy.name,
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The subject for per-IP policies: an IPv4 address as is (also when it
/// arrives IPv4-mapped), an IPv6 address as its /64 network, because one
/// host usually controls a whole /64.
pub fn ip_subject(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// An attempt was refused: the key is over its limit or locked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// When an attempt may succeed again.
    pub retry_after: Duration,
}

impl fmt::Display for Limited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate limited; retry after {:?}", self.retry_after)
    }
}

impl std::error::Error for Limited {}

impl Limited {
    /// `retry_after` in whole seconds, rounded up and at least 1, as the API
    /// reports it (a client told "0 seconds" would retry at once).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

/// Why [`RateLimiter::hit`] did not admit an attempt.
#[derive(Debug)]
pub enum RateLimitError {
    /// Over the limit or locked out.
    Limited(Limited),
    /// The table could not be read or written.
    Database(sqlx::Error),
}

impl fmt::Display for RateLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Limited(l) => l.fmt(f),
            Self::Database(_) => f.write_str("rate-limit table unavailable"),
        }
    }
}

impl std::error::Error for RateLimitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Limited(_) => None,
            Self::Database(e) => Some(e),
        }
    }
}

impl From<sqlx::Error> for RateLimitError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e)
    }
}

impl From<Limited> for ApiError {
    fn from(l: Limited) -> Self {
        ApiError::RateLimited {
            retry_after_secs: l.retry_after_secs(),
        }
    }
}

impl From<RateLimitError> for ApiError {
    fn from(e: RateLimitError) -> Self {
        match e {
            RateLimitError::Limited(l) => l.into(),
            RateLimitError::Database(e) => ApiError::internal(e),
        }
    }
}

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

    const SECRET: &[u8] = b"server secret";

    #[test]
    fn lockout_doubles_from_the_threshold_and_caps() {
        let p = Policy::LOGIN_PER_ACCOUNT;
        let secs = |n| p.lockout(n).map(|d| d.as_secs());
        assert_eq!(secs(0), None);
        assert_eq!(secs(4), None);
        assert_eq!(secs(5), Some(30));
        assert_eq!(secs(6), Some(60));
        assert_eq!(secs(7), Some(120));
        assert_eq!(secs(9), Some(480));
        assert_eq!(secs(10), Some(900));
        assert_eq!(secs(11), Some(900));
        assert_eq!(secs(u32::MAX), Some(900));
    }

    #[test]
    fn lockout_disabled_never_locks() {
        let p = Policy::PASSWORD_RESET_PER_ACCOUNT;
        assert_eq!(p.lockout(1), None);
        assert_eq!(p.lockout(u32::MAX), None);
    }

    #[test]
    fn lockout_survives_extreme_durations() {
        let p = Policy {
            lockout_after: 1,
            lockout_base: Duration::from_secs(1),
            lockout_max: Duration::MAX,
            ..Policy::LOGIN_PER_ACCOUNT
        };
        let longest = p.lockout(u32::MAX).unwrap();
        assert!(longest >= p.lockout(40).unwrap());
        assert_eq!(p.lockout(1), Some(Duration::from_secs(1)));
        let zero_base = Policy {
            lockout_base: Duration::ZERO,
            ..p
        };
        assert_eq!(zero_base.lockout(9), Some(Duration::ZERO));
    }

    #[test]
    fn exponent_cap_is_where_doubling_reaches_the_max() {
        let p = Policy::LOGIN_PER_ACCOUNT; // 30 s → 900 s: 30·2^5 = 960 ≥ 900
        assert_eq!(p.max_exponent(), 5);
        assert_eq!(Policy::PASSWORD_RESET_PER_ACCOUNT.max_exponent(), 0);
    }

    #[test]
    fn presets_are_sane() {
        let mut names: Vec<_> = Policy::PRESETS.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Policy::PRESETS.len(), "names are unique");
        for p in Policy::PRESETS {
            assert!(p.max_hits > 0 && !p.window.is_zero(), "{}", p.name);
            assert!(p.forget_after >= p.lockout_max, "{}", p.name);
            assert!(p.lockout_base <= p.lockout_max, "{}", p.name);
            assert!(!p.name.contains(':'), "{}", p.name);
        }
    }

    #[test]
    fn key_hides_the_subject_and_separates_policies() {
        let k = key(&Policy::LOGIN_PER_ACCOUNT, "alice@example.org", SECRET);
        let (prefix, mac) = k.split_once(':').unwrap();
        assert_eq!(prefix, "login_account");
        assert_eq!(mac.len(), 64);
        assert!(mac.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(!k.contains("alice"));
        assert_ne!(
            mac,
            key(&Policy::TOTP_PER_ACCOUNT, "alice@example.org", SECRET)
                .split_once(':')
                .unwrap()
                .1
        );
    }

    #[test]
    fn key_is_stable_normalised_and_secret_dependent() {
        let p = Policy::LOGIN_PER_ACCOUNT;
        let k = key(&p, "alice@example.org", SECRET);
        assert_eq!(k, key(&p, "  Alice@Example.ORG ", SECRET));
        assert_ne!(k, key(&p, "bob@example.org", SECRET));
        assert_ne!(k, key(&p, "alice@example.org", b"another secret"));
    }

    #[test]
    fn key_is_hmac_sha256() {
        // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
        let p = Policy {
            name: "what do ya want ",
            ..Policy::LOGIN_PER_IP
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // The key MACs name ‖ 0 ‖ subject, so only that exact input matches.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want \0for nothing?");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(
            key(&p, "for nothing?", b"Jefe"),
            format!("what do ya want :{expected}")
        );
    }

    #[test]
    fn ip_subject_groups_ipv6_by_64_and_unmaps_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(ip_subject(ip("203.0.113.7")), "203.0.113.7");
        assert_eq!(ip_subject(ip("::ffff:203.0.113.7")), "203.0.113.7");
        assert_eq!(
            ip_subject(ip("2001:db8:1:2:aaaa::1")),
            ip_subject(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_eq!(ip_subject(ip("2001:db8:1:2::1")), "2001:db8:1:2::/64");
        assert_ne!(
            ip_subject(ip("2001:db8:1:2::1")),
            ip_subject(ip("2001:db8:1:3::1"))
        );
    }

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

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let l = |ms| Limited {
            retry_after: Duration::from_millis(ms),
        };
        assert_eq!(l(0).retry_after_secs(), 1);
        assert_eq!(l(1).retry_after_secs(), 1);
        assert_eq!(l(1000).retry_after_secs(), 1);
        assert_eq!(l(1001).retry_after_secs(), 2);
    }

    #[test]
    fn rate_limited_maps_to_its_api_error() {
        let e: ApiError = RateLimitError::Limited(Limited {
            retry_after: Duration::from_millis(29_500),
        })
        .into();
        assert_eq!(e.code(), "RATE_LIMITED");
        assert_eq!(e.message(), "too many attempts; retry after 30 seconds");
        let gql = async_graphql::Error::from(e);
        assert_eq!(gql.message, "too many attempts; retry after 30 seconds");
        let ext = gql.extensions.expect("extensions");
        assert_eq!(
            ext.get("code"),
            Some(&async_graphql::Value::from("RATE_LIMITED"))
        );
        assert_eq!(
            ext.get("retryAfter"),
            Some(&async_graphql::Value::from(30u64))
        );
    }
}
