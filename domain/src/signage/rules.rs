//! What the signage aggregates share: the text checks, the severity of an
//! emergency and the limits.

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::text::graphemes;

/// Most plays in one report.
pub const MAX_PLAYS_PER_REPORT: usize = 500;
/// Most items in a playlist.
pub const MAX_PLAYLIST_ITEMS: usize = 200;
/// How far in the future a reported play may lie (clock skew).
pub const PLAY_CLOCK_SKEW_SECONDS: i64 = 120;

/// Checks a required, bounded text; answers it trimmed.
pub fn required_text(raw: &str, field: &str, max: usize) -> Result<String, DomainError> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    bounded_text(text, field, max)
}

/// Checks an optional text's length.
pub fn bounded_text(raw: &str, field: &str, max: usize) -> Result<String, DomainError> {
    let n = graphemes(raw);
    if n > max {
        return Err(DomainError::invalid(
            field,
            format!("{n} characters; at most {max}"),
        ));
    }
    Ok(raw.to_string())
}

/// Severity of an emergency override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    /// The lowest: information.
    Info,
    /// A warning.
    Warning,
    /// High.
    High,
    /// The highest.
    Critical,
}

impl Severity {
    /// The name as stored and shown (`"CRITICAL"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}
