//! Text rules: the characters any text may hold ([`check_controls`]) and
//! those a single-line name may hold ([`check_single_line`]); post text with
//! the Bluesky length rule (graphemes, not bytes or code points) and
//! rich-text facets (links, mentions, hashtags) with UTF-8 byte offsets, the
//! way the AT Protocol's `app.bsky.richtext.facet` expects them.

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

use crate::DomainError;
use crate::handle::Handle;

/// Bluesky's limit per post, in grapheme clusters.
pub const MAX_GRAPHEMES: usize = 300;
/// Longest hashtag Bluesky indexes, in graphemes.
const MAX_TAG_GRAPHEMES: usize = 64;

/// Whether `c` is a control character no user means in any text: NUL
/// (PostgreSQL cannot even store it) and the other C0 controls except tab,
/// line feed and carriage return, DEL, and the C1 controls U+0080–U+009F.
pub fn is_stray_control(c: char) -> bool {
    matches!(c, '\0'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// Whether `c` is a bidi embedding, override or isolate control (U+202A–E,
/// U+2066–9). In a name they reorder what other people see ("Trojan
/// Source" spoofing: `exe.\u{202e}gpj` shows as `jpg.exe`). The marks
/// LRM, RLM and ALM (U+200E, U+200F, U+061C), which right-to-left names
/// need, are not among them.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Refuses text holding a [stray control character](is_stray_control), the
/// rule for every string input; `field` names it in the error.
pub fn check_controls(raw: &str, field: &str) -> Result<(), DomainError> {
    match raw.chars().find(|c| is_stray_control(*c)) {
        Some(c) => Err(control_error(field, c)),
        None => Ok(()),
    }
}

/// Refuses a single-line text (a name, title, tag…) holding any control
/// character, tab and line breaks included, or a
/// [bidi control](is_bidi_control); `field` names it in the error.
pub fn check_single_line(raw: &str, field: &str) -> Result<(), DomainError> {
    match raw.chars().find(|c| c.is_control() || is_bidi_control(*c)) {
        Some(c) if is_bidi_control(c) => Err(DomainError::invalid(
            field,
            format!("must not contain the bidi control U+{:04X}", c as u32),
        )),
        Some(c) => Err(control_error(field, c)),
        None => Ok(()),
    }
}

fn control_error(field: &str, c: char) -> DomainError {
    DomainError::invalid(
        field,
        format!("must not contain the control character U+{:04X}", c as u32),
    )
}

/// Length of `s` in grapheme clusters (what a reader counts as characters).
pub fn graphemes(s: &str) -> usize {
    s.graphemes(true).count()
}

/// Text of one post entry: 1 to 300 grapheme clusters, not only whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PostText(String);

impl PostText {
    /// Validates `raw`; `field` names the input in the error.
    pub fn parse(raw: &str, field: &str) -> Result<Self, DomainError> {
        if raw.trim().is_empty() {
            return Err(DomainError::invalid(field, "text must not be empty"));
        }
        let count = raw.graphemes(true).count();
        if count > MAX_GRAPHEMES {
            return Err(DomainError::invalid(
                field,
                format!("text is {count} graphemes long; the limit is {MAX_GRAPHEMES}"),
            ));
        }
        Ok(Self(raw.to_string()))
    }

    /// The text itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Links, mentions and hashtags found in the text.
    pub fn facets(&self) -> Vec<Facet> {
        detect_facets(&self.0)
    }
}

/// A span of the text, in UTF-8 bytes, end exclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ByteSlice {
    pub byte_start: usize,
    pub byte_end: usize,
}

/// What a facet points at. Mentions keep the handle; the DID is resolved when
/// the post is published, because handles can move between accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FacetFeature {
    Link { uri: String },
    Mention { handle: String },
    Tag { tag: String },
}

/// One rich-text annotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facet {
    pub index: ByteSlice,
    pub feature: FacetFeature,
}

fn trim_trailing_punctuation(token: &str) -> &str {
    let mut t = token.trim_end_matches(['.', ',', ';', ':', '!', '?', '"', '\'']);
    // A closing parenthesis belongs to the token only if it opened one.
    while t.ends_with(')') && t.matches('(').count() < t.matches(')').count() {
        t = t[..t.len() - 1].trim_end_matches(['.', ',', ';', ':', '!', '?', '"', '\'']);
    }
    t
}

/// Finds facets in whitespace-separated tokens, the way Bluesky clients do.
pub fn detect_facets(text: &str) -> Vec<Facet> {
    let mut facets = Vec::new();
    let mut offset = 0;
    for token in text.split_inclusive(char::is_whitespace) {
        let start = offset;
        offset += token.len();
        let word = token.trim_end_matches(char::is_whitespace);
        let (lead, word) = match word.strip_prefix('(') {
            Some(rest) => (1, rest),
            None => (0, word),
        };
        let word = trim_trailing_punctuation(word);
        let byte_start = start + lead;
        let slice = |len: usize| ByteSlice {
            byte_start,
            byte_end: byte_start + len,
        };
        if word.starts_with("https://") || word.starts_with("http://") {
            if word
                .split_once("://")
                .is_some_and(|(_, rest)| rest.contains('.'))
            {
                facets.push(Facet {
                    index: slice(word.len()),
                    feature: FacetFeature::Link { uri: word.into() },
                });
            }
        } else if let Some(handle) = word.strip_prefix('@') {
            if let Ok(handle) = Handle::parse(handle, "mention") {
                facets.push(Facet {
                    index: slice(word.len()),
                    feature: FacetFeature::Mention {
                        handle: handle.into(),
                    },
                });
            }
        } else if let Some((hash, tag)) = word
            .strip_prefix('#')
            .map(|t| ('#', t))
            .or_else(|| word.strip_prefix('＃').map(|t| ('＃', t)))
        {
            let tag_ok = !tag.is_empty()
                && !tag.chars().all(|c| c.is_ascii_digit())
                && !tag.starts_with('\u{fe0f}')
                && tag.graphemes(true).count() <= MAX_TAG_GRAPHEMES;
            if tag_ok {
                facets.push(Facet {
                    index: slice(hash.len_utf8() + tag.len()),
                    feature: FacetFeature::Tag { tag: tag.into() },
                });
            }
        }
    }
    facets
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAMILY: &str = "👨\u{200d}👩\u{200d}👧\u{200d}👦";

    #[test]
    fn three_hundred_family_emoji_are_exactly_the_limit() {
        let text = FAMILY.repeat(300);
        assert_eq!(
            text.chars().count(),
            2100,
            "ZWJ sequences are many code points"
        );
        assert!(PostText::parse(&text, "text").is_ok());
    }

    #[test]
    fn three_hundred_and_one_graphemes_are_rejected() {
        let err = PostText::parse(&FAMILY.repeat(301), "entries.0.text").unwrap_err();
        assert_eq!(
            err,
            DomainError::invalid(
                "entries.0.text",
                "text is 301 graphemes long; the limit is 300"
            )
        );
        assert!(PostText::parse(&"a".repeat(301), "t").is_err());
    }

    #[test]
    fn empty_or_blank_text_is_rejected() {
        assert!(PostText::parse("", "t").is_err());
        assert!(PostText::parse(" \n\t", "t").is_err());
    }

    #[test]
    fn stray_controls_are_refused_in_any_text() {
        for text in [
            "a\0b",
            "\u{1}",
            "bell\u{7}",
            "\u{b}",
            "\u{1b}[31m",
            "del\u{7f}",
            "\u{80}",
            "nel\u{85}",
            "\u{9f}",
        ] {
            let err = check_controls(text, "body").unwrap_err();
            assert!(
                matches!(&err, DomainError::Validation { field, .. } if field == "body"),
                "{text:?}"
            );
        }
        assert_eq!(
            check_controls("a\0", "name"),
            Err(DomainError::invalid(
                "name",
                "must not contain the control character U+0000"
            ))
        );
        // Tab and line breaks are text; so are the bidi controls and the
        // characters right after the C1 block.
        assert!(check_controls("one\ttwo\r\nthree\u{202e}\u{a0}é", "body").is_ok());
    }

    #[test]
    fn single_line_text_refuses_every_control_and_the_reordering_bidi_controls() {
        for text in [
            "a\tb",
            "a\nb",
            "a\rb",
            "a\0b",
            "\u{85}",
            "exe.\u{202e}gpj",
            "\u{202a}",
            "\u{2066}x\u{2069}",
            "\u{2068}",
        ] {
            assert!(check_single_line(text, "name").is_err(), "{text:?}");
        }
        assert_eq!(
            check_single_line("exe.\u{202e}gpj", "name"),
            Err(DomainError::invalid(
                "name",
                "must not contain the bidi control U+202E"
            ))
        );
        // Right-to-left names keep their marks.
        for text in [
            "שלום\u{200f} 1",
            "\u{200e}Tel Aviv",
            "\u{61c}١٢",
            "Grüße, Zoë",
        ] {
            assert!(check_single_line(text, "name").is_ok(), "{text:?}");
        }
    }

    #[test]
    fn facets_use_utf8_byte_offsets() {
        let text = "Grüße an @alice.bsky.social — siehe https://herald.example/a?b=1. #Früh";
        let facets = detect_facets(text);
        assert_eq!(facets.len(), 3, "{facets:?}");
        for facet in &facets {
            let s = &text[facet.index.byte_start..facet.index.byte_end];
            match &facet.feature {
                FacetFeature::Mention { handle } => {
                    assert_eq!(s, "@alice.bsky.social");
                    assert_eq!(handle, "alice.bsky.social");
                }
                FacetFeature::Link { uri } => {
                    assert_eq!(s, "https://herald.example/a?b=1");
                    assert_eq!(uri, s);
                }
                FacetFeature::Tag { tag } => {
                    assert_eq!(s, "#Früh");
                    assert_eq!(tag, "Früh");
                }
            }
        }
        // "Grüße an " is 11 bytes: ü and ß take two each.
        assert_eq!(facets[0].index.byte_start, 11);
    }

    #[test]
    fn non_facets_are_ignored() {
        assert!(detect_facets("#123 @nodot mail@example.com http://localhost #").is_empty());
    }

    #[test]
    fn parenthesised_link_drops_the_closing_paren() {
        let facets = detect_facets("(see https://example.com/x)");
        assert_eq!(
            facets[0].feature,
            FacetFeature::Link {
                uri: "https://example.com/x".into()
            }
        );
    }
}
