//! Publishing rules shared by the Post aggregate and the scheduler: how a
//! failure is classified, when a failed attempt is retried (exponential
//! backoff with full jitter), and what a published entry records.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Why an attempt failed; decides whether and when it is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureKind {
    /// Network trouble or a server error: retried with backoff.
    Transient,
    /// The platform asked us to slow down: retried after its reset time.
    RateLimited,
    /// The credentials stopped working: the connection is degraded and the
    /// post waits for it without consuming attempts.
    Auth,
    /// The platform refused the content (or there is nothing to publish
    /// to): retrying cannot help.
    Invalid,
}

impl FailureKind {
    /// Stable upper-case name used in read models and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "TRANSIENT",
            Self::RateLimited => "RATE_LIMITED",
            Self::Auth => "AUTH",
            Self::Invalid => "INVALID",
        }
    }
}

/// How failed attempts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per occurrence before the post is FAILED (dead letter).
    pub max_attempts: u32,
    /// Upper bound of the first retry's delay; doubles per attempt.
    pub base: Duration,
    /// Largest delay.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base: Duration::seconds(2),
            cap: Duration::minutes(10),
        }
    }
}

impl RetryPolicy {
    /// When to try again after `attempt` (1-based) failed with `kind` at
    /// `now`; `None` means give up. `jitter` is a uniform sample in [0, 1)
    /// (full jitter: the delay is uniform between zero and the exponential
    /// bound, which spreads a burst of failures instead of synchronising it).
    /// `not_before` is the platform's rate-limit reset, if it sent one.
    pub fn retry_at(
        &self,
        kind: FailureKind,
        attempt: u32,
        now: DateTime<Utc>,
        jitter: f64,
        not_before: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        match kind {
            FailureKind::Invalid => None,
            // Not an attempt of the post's: it waits for the connection.
            FailureKind::Auth => Some(now),
            FailureKind::Transient | FailureKind::RateLimited if attempt >= self.max_attempts => {
                None
            }
            FailureKind::Transient | FailureKind::RateLimited => {
                let exponent = attempt.saturating_sub(1).min(30);
                let bound = self
                    .base
                    .checked_mul(1 << exponent)
                    .unwrap_or(self.cap)
                    .min(self.cap);
                let millis = (bound.num_milliseconds() as f64 * jitter.clamp(0.0, 1.0)) as i64;
                let at = now + Duration::milliseconds(millis);
                Some(not_before.map_or(at, |reset| at.max(reset)))
            }
        }
    }
}

/// One entry as it exists on the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedEntry {
    /// Index of the entry in its thread (0-based).
    pub index: u32,
    /// The record key, derived from post, occurrence and index.
    pub rkey: String,
    pub uri: String,
    pub cid: String,
    /// What was published differently from the draft (a mention whose
    /// handle did not resolve went out as plain text).
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl PublishedEntry {
    /// The web address of the post on bsky.app, from its `at://` URI.
    pub fn web_url(&self) -> Option<String> {
        let rest = self.uri.strip_prefix("at://")?;
        let mut parts = rest.split('/');
        let (did, collection, rkey) = (parts.next()?, parts.next()?, parts.next()?);
        (collection == "app.bsky.feed.post")
            .then(|| format!("https://bsky.app/profile/{did}/post/{rkey}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2027-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn backoff_grows_exponentially_with_full_jitter_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base: Duration::seconds(2),
            cap: Duration::seconds(60),
        };
        let at = |attempt, jitter| {
            policy
                .retry_at(FailureKind::Transient, attempt, now(), jitter, None)
                .unwrap()
                - now()
        };
        assert_eq!(at(1, 0.0), Duration::zero());
        assert_eq!(at(1, 0.5), Duration::seconds(1));
        assert_eq!(at(3, 0.5), Duration::seconds(4));
        // 2 s · 2^8 = 512 s, capped at 60 s.
        assert_eq!(at(9, 0.5), Duration::seconds(30));
        assert!(at(9, 0.999_999) < Duration::seconds(60));
    }

    #[test]
    fn gives_up_after_the_last_attempt_and_never_retries_invalid_content() {
        let policy = RetryPolicy::default();
        let max = policy.max_attempts;
        assert!(
            policy
                .retry_at(FailureKind::Transient, max, now(), 0.3, None)
                .is_none()
        );
        assert!(
            policy
                .retry_at(FailureKind::Transient, max - 1, now(), 0.3, None)
                .is_some()
        );
        assert!(
            policy
                .retry_at(FailureKind::Invalid, 1, now(), 0.3, None)
                .is_none()
        );
    }

    #[test]
    fn rate_limits_wait_for_the_reset_and_auth_waits_for_the_connection() {
        let policy = RetryPolicy::default();
        let reset = now() + Duration::minutes(5);
        assert_eq!(
            policy.retry_at(FailureKind::RateLimited, 1, now(), 0.9, Some(reset)),
            Some(reset)
        );
        assert_eq!(
            policy.retry_at(FailureKind::Auth, 99, now(), 0.9, None),
            Some(now())
        );
    }

    #[test]
    fn web_url_is_derived_from_the_at_uri() {
        let entry = PublishedEntry {
            index: 0,
            rkey: "3ke6kg42cm222".into(),
            uri: "at://did:plc:abc/app.bsky.feed.post/3ke6kg42cm222".into(),
            cid: "bafy".into(),
            warnings: vec![],
        };
        assert_eq!(
            entry.web_url().as_deref(),
            Some("https://bsky.app/profile/did:plc:abc/post/3ke6kg42cm222")
        );
    }
}
