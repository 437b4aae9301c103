//! How a refused attempt is reported: [`Limited`] with the time until an
//! attempt may succeed, [`RateLimitError`] when the table failed too, and
//! their mapping to the API's `RATE_LIMITED` and `INTERNAL` errors.

use std::fmt;
use std::time::Duration;

use crate::error::ApiError;

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

/// Why [`RateLimiter::hit`](super::store::RateLimiter::hit) did not admit
/// an attempt.
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

#[cfg(test)]
mod tests {
    use super::*;

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
