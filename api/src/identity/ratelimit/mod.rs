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
//!
//! Layout: `policy` (the limits and the lock-out arithmetic), `keys` (what
//! a count is keyed by), `store` (the table and [`RateLimiter`]) and `error`
//! (what a refusal looks like to callers and to the API).

mod error;
mod keys;
mod policy;
mod store;

pub use error::{Limited, RateLimitError};
pub use keys::{ip_subject, key};
pub use policy::Policy;
pub use store::RateLimiter;
