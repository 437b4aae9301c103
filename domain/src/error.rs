//! Domain rejections. Infrastructure failures never appear here; the store wraps
//! these in its own error type.

/// Why a command was refused. Each variant maps to one stable API error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The input breaks a rule; `field` names the offending input.
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    /// The aggregate does not exist, was deleted, or belongs to another tenant.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The command is valid but not in the aggregate's current state.
    #[error("{0}")]
    Conflict(String),
    /// The caller's role does not allow the action.
    #[error("your role does not allow {0}")]
    Forbidden(String),
}

impl DomainError {
    /// Shorthand for a validation error on `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Validation {
            field: field.to_string(),
            message: message.into(),
        }
    }
}
