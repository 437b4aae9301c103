//! Deterministic Bluesky record keys: every entry of every occurrence of a
//! post gets the same key on every attempt, so a retry after an ambiguous
//! failure can look the record up (`getRecord`) instead of posting twice.
//!
//! A record key for `app.bsky.feed.post` must be a TID: 13 characters of
//! base32-sortable (`234567abcdefghijklmnopqrstuvwxyz`) encoding a 64-bit value
//! whose top bit is 0. The PDS checks only that shape (verified against the
//! local network), so all 63 bits come from a hash of (post, occurrence,
//! entry): two different entries of one account collide with probability
//! about n²/2⁶⁴, negligible even for millions of posts. Feeds order by
//! `createdAt`, not by key, so nothing is lost by the key not being a time.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// A TID record key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey(String);

impl RecordKey {
    /// The key as sent to the PDS.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Encodes a 63-bit value as a TID (the top bit is cleared).
pub fn tid(value: u64) -> RecordKey {
    let v = value & 0x7FFF_FFFF_FFFF_FFFF;
    RecordKey(
        (0..13)
            .map(|i| ALPHABET[((v >> (60 - 5 * i)) & 0x1F) as usize] as char)
            .collect(),
    )
}

/// Whether `s` is a TID this module could have made.
pub fn is_tid(s: &str) -> bool {
    s.len() == 13
        && s.bytes().all(|b| ALPHABET.contains(&b))
        && s.as_bytes()[0] <= b'b'
        && s.as_bytes()[0] >= b'2'
}

/// The record key of entry `entry` (0-based) of the occurrence of `post`
/// scheduled at `occurrence`.
pub fn record_key(post: Uuid, occurrence: DateTime<Utc>, entry: usize) -> RecordKey {
    let digest = Sha256::new()
        .chain_update(b"herald/bluesky-rkey/v1")
        .chain_update(post.as_bytes())
        .chain_update(occurrence.timestamp_micros().to_be_bytes())
        .chain_update((entry as u64).to_be_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    tid(u64::from_be_bytes(first))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn tids_encode_like_the_at_protocol() {
        // Reference values: zero and the largest 63-bit value.
        assert_eq!(tid(0).as_str(), "2222222222222");
        assert_eq!(tid(u64::MAX).as_str(), "bzzzzzzzzzzzz", "top bit cleared");
        // What atrium's `Tid::from_datetime` gives for 1_700_000_000.123456 s,
        // clock id 0 (computed with atrium-api 0.26).
        assert_eq!(tid(1_700_000_000_123_456 << 10).as_str(), "3ke6kg42cm222");
        for value in [0, 1, 42, u64::MAX / 3, u64::MAX] {
            assert!(is_tid(tid(value).as_str()));
        }
        assert!(!is_tid("not-a-tid") && !is_tid("czzzzzzzzzzzz"));
    }

    #[test]
    fn keys_are_deterministic_and_distinct() {
        let post = Uuid::from_u128(7);
        let at = DateTime::parse_from_rfc3339("2027-03-01T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(record_key(post, at, 0), record_key(post, at, 0));
        assert_ne!(record_key(post, at, 0), record_key(post, at, 1));
        assert_ne!(
            record_key(post, at, 0),
            record_key(post, at + chrono::Duration::days(7), 0),
            "each occurrence of a recurring post has its own keys"
        );
        assert_ne!(
            record_key(post, at, 0),
            record_key(Uuid::from_u128(8), at, 0)
        );
        let mut seen = HashSet::new();
        for p in 0..20_000u128 {
            for entry in 0..5 {
                let key = record_key(Uuid::from_u128(p), at, entry);
                assert!(is_tid(key.as_str()));
                assert!(seen.insert(key), "collision");
            }
        }
    }
}
