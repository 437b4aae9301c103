//! Bluesky handles. A handle is a domain name (<https://atproto.com/specs/handle>);
//! one rule serves the accounts a tenant connects and the mentions found in
//! post text.

use std::fmt;

use crate::DomainError;

/// Longest handle, in characters (a domain name's limit).
const MAX_LEN: usize = 253;
/// Longest label between dots.
const MAX_LABEL: usize = 63;

/// A syntactically valid handle, in lower case (handles are
/// case-insensitive): at least two labels of ASCII letters, digits and
/// hyphens, each 1 to 63 characters and neither starting nor ending with a
/// hyphen, 253 characters at most, and a last label (the top-level domain)
/// that does not start with a digit. Whether it resolves to an account is
/// the platform's to say.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Handle(String);

impl Handle {
    /// Validates `raw` as it is (no trimming, no leading `@`); `field` names
    /// the input in the error.
    pub fn parse(raw: &str, field: &str) -> Result<Self, DomainError> {
        if is_valid(raw) {
            Ok(Self(raw.to_ascii_lowercase()))
        } else {
            Err(DomainError::invalid(
                field,
                "a handle looks like name.bsky.social",
            ))
        }
    }

    /// The handle itself, in lower case.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Handle> for String {
    fn from(handle: Handle) -> Self {
        handle.0
    }
}

fn is_valid(handle: &str) -> bool {
    let labels: Vec<&str> = handle.split('.').collect();
    handle.len() <= MAX_LEN
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= MAX_LABEL
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.as_bytes()[0].is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(raw: &str) -> bool {
        Handle::parse(raw, "handle").is_ok()
    }

    #[test]
    fn handles_are_domain_names() {
        assert!(valid("alice.test"));
        assert!(valid("herald.bsky.social"));
        assert!(valid("xn--ls8h.test"));
        assert!(valid("a-b.c-d.social"));
        assert!(!valid("alice"));
        assert!(!valid("alice..test"));
        assert!(!valid(".alice.test"));
        assert!(!valid("alice.test."));
        assert!(!valid("-a.test"));
        assert!(!valid("a-.test"));
        assert!(!valid("a b.test"));
        assert!(!valid("@alice.test"));
        assert!(!valid("ålice.test"));
        assert!(!valid(""));
    }

    #[test]
    fn the_top_level_domain_does_not_start_with_a_digit() {
        assert!(valid("alice.t3st"));
        assert!(valid("123.test"));
        assert!(!valid("alice.3test"));
        assert!(!valid("1.2.3.4"));
    }

    #[test]
    fn labels_and_the_whole_name_have_length_limits() {
        let label = "a".repeat(MAX_LABEL);
        assert!(valid(&format!("{label}.test")));
        assert!(!valid(&format!("a{label}.test")));
        let longest = format!("{}tests", "a.".repeat(124));
        assert_eq!(longest.len(), MAX_LEN);
        assert!(valid(&longest));
        assert!(!valid(&format!("b{longest}")));
    }

    #[test]
    fn handles_are_stored_in_lower_case_and_errors_name_the_field() {
        let handle = Handle::parse("Alice.Bsky.Social", "handle").unwrap();
        assert_eq!(handle.as_str(), "alice.bsky.social");
        // The Kelvin sign lower-cases to an ASCII "k" but is not ASCII.
        assert!(!valid("\u{212a}.test"));
        assert_eq!(
            Handle::parse("alice", "handle"),
            Err(DomainError::invalid(
                "handle",
                "a handle looks like name.bsky.social"
            ))
        );
    }
}
