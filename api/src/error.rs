//! The API's error type and its mapping to stable codes. Internal detail is
//! logged with its cause chain and never returned to the caller.

use async_graphql::ErrorExtensions;
use domain::DomainError;
use projections::{CommandError, StoreError};

/// An error as the API reports it. It deliberately has no `Display`: the
/// message a caller sees comes from [`ApiError::message`], and internal causes
/// only ever reach the log.
#[derive(Debug, Clone)]
pub enum ApiError {
    Validation {
        field: String,
        message: String,
    },
    NotFound(&'static str),
    Forbidden(String),
    Unauthenticated(&'static str),
    Conflict(String),
    /// The account has 2FA on and the request carried no code.
    SecondFactorRequired,
    /// Too many attempts; retry after this many seconds.
    RateLimited {
        retry_after_secs: u64,
    },
    /// A platform Herald depends on, or its own database, did not answer;
    /// the caller may retry after `retry_after_secs`.
    Unavailable {
        message: String,
        retry_after_secs: u64,
    },
    Internal(std::sync::Arc<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// The stable `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation { .. } => "VALIDATION",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Conflict(_) => "CONFLICT",
            Self::SecondFactorRequired => "UNAUTHENTICATED",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::Unavailable { .. } => "UNAVAILABLE",
            Self::Internal(_) => "INTERNAL",
        }
    }

    /// The HTTP status of the REST routes for this error.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            Self::Validation { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Unauthenticated(_) | Self::SecondFactorRequired => StatusCode::UNAUTHORIZED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The human-readable message returned to the caller.
    pub fn message(&self) -> String {
        match self {
            Self::Validation { field, message } => format!("{field}: {message}"),
            Self::NotFound(what) => format!("{what} not found"),
            Self::Forbidden(m) => m.clone(),
            Self::Unauthenticated(m) => m.to_string(),
            Self::Conflict(m) => m.clone(),
            Self::SecondFactorRequired => {
                "two-factor authentication is on: send a TOTP code or a backup code".to_string()
            }
            Self::RateLimited { retry_after_secs } => {
                format!("too many attempts; retry after {retry_after_secs} seconds")
            }
            Self::Unavailable { message, .. } => message.clone(),
            Self::Internal(_) => "internal error".to_string(),
        }
    }

    /// Wraps an infrastructure failure; its detail is only logged.
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(std::sync::Arc::new(e))
    }

    /// A platform that did not answer: retry in half a minute.
    pub fn platform_unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable {
            message: message.into(),
            retry_after_secs: 30,
        }
    }

    /// The database did not answer: whether the request changed anything
    /// is not known, so a retry should carry the same `Idempotency-Key`.
    pub fn database_unavailable() -> Self {
        Self::Unavailable {
            message: "the database is unavailable; retry with the same Idempotency-Key".into(),
            retry_after_secs: DATABASE_RETRY_AFTER_SECS,
        }
    }

    /// How long the caller should wait before retrying, if it should.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_secs }
            | Self::Unavailable {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The input a validation error names.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Validation { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Shorthand for a validation error.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Validation {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let message = e.to_string();
        match e {
            DomainError::Validation { field, message } => Self::Validation { field, message },
            DomainError::NotFound(what) => Self::NotFound(what),
            DomainError::Conflict(m) => Self::Conflict(m),
            DomainError::Forbidden(_) => Self::Forbidden(message),
        }
    }
}

impl From<CommandError<DomainError>> for ApiError {
    fn from(e: CommandError<DomainError>) -> Self {
        match e {
            CommandError::Rejected(d) => d.into(),
            CommandError::Conflict(_) => Self::Conflict(e.to_string()),
            CommandError::Store(s) => s.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, cause = ?std::error::Error::source(&e), "database unavailable");
            return Self::database_unavailable();
        }
        Self::internal(e)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from(e).into()
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(e: ApiError) -> Self {
        if let ApiError::Internal(source) = &e {
            tracing::error!(error = %source, cause = ?source.source(), "request failed");
        }
        let code = e.code();
        let second_factor = matches!(e, ApiError::SecondFactorRequired);
        let field = match &e {
            ApiError::Validation { field, .. } => Some(field.clone()),
            _ => None,
        };
        let retry_after = e.retry_after();
        async_graphql::Error::new(e.message()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(field) = &field {
                ext.set("field", field.as_str());
            }
            if second_factor {
                ext.set("reason", "TOTP_REQUIRED");
            }
            if let Some(seconds) = retry_after {
                ext.set("retryAfter", seconds);
            }
        })
    }
}

/// What a caller is told to wait when the database does not answer.
pub const DATABASE_RETRY_AFTER_SECS: u64 = 2;

/// Result of a resolver.
pub type ApiResult<T> = Result<T, ApiError>;
