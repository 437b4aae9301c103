//! What the signage aggregates share: the text checks, the severity of an
//! emergency and the limits.

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::text::{check_single_line, graphemes};

/// Most plays in one report.
pub const MAX_PLAYS_PER_REPORT: usize = 500;
/// Most items in a playlist.
pub const MAX_PLAYLIST_ITEMS: usize = 200;
/// Most tags on a display.
pub const MAX_TAGS: usize = 20;
/// Most displays, and most groups, one schedule or emergency names.
pub const MAX_TARGETS: usize = 500;
/// Most dayparts in a schedule (three a day, every day).
pub const MAX_DAYPARTS: usize = 21;
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

/// Checks a required single-line text (a name, title or tag): what
/// [`required_text`] checks, and no control or bidi control character
/// ([`check_single_line`]).
pub fn required_name(raw: &str, field: &str, max: usize) -> Result<String, DomainError> {
    let name = required_text(raw, field, max)?;
    check_single_line(&name, field)?;
    Ok(name)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_text_trims_and_refuses_blank_or_overlong_text() {
        assert_eq!(required_text("  Lobby\n", "name", 5), Ok("Lobby".into()));
        assert_eq!(
            required_text(" \t ", "name", 5),
            Err(DomainError::invalid("name", "must not be empty"))
        );
        assert_eq!(
            required_text("Lobby!", "name", 5),
            Err(DomainError::invalid("name", "6 characters; at most 5"))
        );
    }

    #[test]
    fn required_name_is_one_line_without_reordering_controls() {
        assert_eq!(required_name(" Lobby\n", "name", 10), Ok("Lobby".into()));
        assert!(required_name("Lob\tby", "name", 10).is_err());
        assert!(required_name("a\u{202e}b", "name", 10).is_err());
        assert_eq!(
            required_name("", "name", 10),
            Err(DomainError::invalid("name", "must not be empty"))
        );
    }

    #[test]
    fn bounded_text_counts_graphemes_and_keeps_the_text_as_given() {
        // "é" as e + combining accent is one character to a reader.
        assert_eq!(bounded_text("e\u{301}", "body", 1), Ok("e\u{301}".into()));
        assert_eq!(bounded_text(" ", "body", 1), Ok(" ".into()));
        assert_eq!(bounded_text("", "body", 0), Ok(String::new()));
        assert_eq!(
            bounded_text("ab", "body", 1),
            Err(DomainError::invalid("body", "2 characters; at most 1"))
        );
    }

    #[test]
    fn severity_is_stored_and_shown_in_capitals() {
        for (severity, name) in [
            (Severity::Info, "INFO"),
            (Severity::Warning, "WARNING"),
            (Severity::High, "HIGH"),
            (Severity::Critical, "CRITICAL"),
        ] {
            assert_eq!(severity.as_str(), name);
            assert_eq!(serde_json::to_value(severity).unwrap(), name);
            assert_eq!(
                serde_json::from_value::<Severity>(name.into()).unwrap(),
                severity
            );
        }
    }
}
