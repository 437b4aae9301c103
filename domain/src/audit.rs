//! The audit trail's chain rules: how an audit row is encoded and hashed, how
//! an event's payload becomes a summary without secrets, and how a sequence of
//! rows (from the database or an export) is verified.
//!
//! Each tenant has its own chain. Row `seq` (1-based, consecutive) carries
//!
//! ```text
//! hash = hex(SHA-256(prev_hash ‖ canonical(row)))
//! ```
//!
//! where `prev_hash` is the 64 lowercase hex characters of the previous row's
//! hash ([`GENESIS`], 64 zeros, for seq 1), hashed as those ASCII characters,
//! and `canonical(row)` is the UTF-8 of the compact JSON array
//!
//! ```text
//! ["herald-audit-1",tenant_id,seq,recorded_at,actor,action,target,summary]
//! ```
//!
//! (strings JSON-escaped as serde_json writes them: `"` `\` and control
//! characters escaped, everything else literal; numbers as integers;
//! `recorded_at` in microseconds since the Unix epoch). `prev_hash` has a
//! fixed length and JSON is self-delimiting, so the encoding is unambiguous.
//! Because `seq` and `tenant_id` are inside the hashed bytes, a row moved to
//! another position or tenant no longer matches its hash.
//!
//! The summary rules ([`summarize`]) are part of the format: changing them
//! changes every hash on the next replay, so they change only with a new
//! [`FORMAT`] tag.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Tag that opens every canonical row; a new encoding gets a new tag.
pub const FORMAT: &str = "herald-audit-1";

/// `prev_hash` of a chain's first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest summary, in characters (longer ones end in `…`).
pub const SUMMARY_MAX_CHARS: usize = 200;

/// Longest string value quoted in a summary, in characters.
const VALUE_MAX_CHARS: usize = 48;

/// Key fragments (lowercase) that mark a payload field as secret or personal.
const SENSITIVE_KEYS: [&str; 10] = [
    "hash",
    "token",
    "secret",
    "password",
    "email",
    "ip",
    "user_agent",
    "useragent",
    "code",
    "key",
];

/// Prefix of values sealed by envelope encryption (ciphertext, never shown).
pub const SEALED_PREFIX: &str = "hk1:";

/// The names of an audit row's fields in order: the columns of `rm_audit`
/// and the header of a CSV export.
pub const FIELDS: [&str; 9] = [
    "tenant_id",
    "seq",
    "recorded_at",
    "actor",
    "action",
    "target",
    "summary",
    "prev_hash",
    "hash",
];

/// One row of a tenant's audit chain: the only declaration of its fields,
/// whether the row is built, stored, exported or verified. `T` is how
/// `recorded_at` is written: microseconds since the Unix epoch as stored and
/// hashed (the default), or RFC 3339 text in an export ([`ExportRow`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow<T = i64> {
    /// The tenant's id (UUID text).
    pub tenant_id: String,
    /// Position in the tenant's chain, from 1 without gaps.
    pub seq: i64,
    /// When the event was recorded: microseconds since the Unix epoch, or
    /// RFC 3339 text in an [`ExportRow`].
    pub recorded_at: T,
    /// Who caused it (`user:<id>`, `api_key:<id>`, `display:<id>`, `system`).
    pub actor: String,
    /// The event type.
    pub action: String,
    /// `AggregateType:aggregate_id`.
    pub target: String,
    /// Short text without secrets or personal data ([`summarize`]).
    pub summary: String,
    /// Hash of the previous row ([`GENESIS`] for seq 1).
    pub prev_hash: String,
    /// `hex(SHA-256(prev_hash ‖ canonical row))`.
    pub hash: String,
}

/// A row as exported: the stored row with its time in RFC 3339 (UTC, with
/// microseconds, exactly the hashed instant).
pub type ExportRow = AuditRow<String>;

impl<T> AuditRow<T> {
    /// The same row with `recorded_at` written another way.
    fn with_time<U>(self, recorded_at: U) -> AuditRow<U> {
        AuditRow {
            tenant_id: self.tenant_id,
            seq: self.seq,
            recorded_at,
            actor: self.actor,
            action: self.action,
            target: self.target,
            summary: self.summary,
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

impl From<AuditRow> for ExportRow {
    fn from(row: AuditRow) -> Self {
        let at = chrono::DateTime::from_timestamp_micros(row.recorded_at).unwrap_or_default();
        let text = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        row.with_time(text)
    }
}

impl ExportRow {
    /// The stored row back; `Err` names what is malformed.
    pub fn into_row(self) -> Result<AuditRow, String> {
        let recorded_at = chrono::DateTime::parse_from_rfc3339(&self.recorded_at)
            .map_err(|_| format!("recorded_at {:?} is not RFC 3339", self.recorded_at))?
            .timestamp_micros();
        Ok(self.with_time(recorded_at))
    }
}

/// What an event contributes to a row; seq and hashes come from the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub recorded_at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub summary: String,
}

/// The end of a chain: its last seq (0 when empty) and that row's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

impl Head {
    /// The head of an empty chain.
    pub fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }

    /// Seals `entry` as the next row of `tenant_id`'s chain and moves the
    /// head to it.
    pub fn append(&mut self, tenant_id: &str, entry: Entry) -> AuditRow {
        let mut row = AuditRow {
            tenant_id: tenant_id.to_string(),
            seq: self.seq + 1,
            recorded_at: entry.recorded_at,
            actor: entry.actor,
            action: entry.action,
            target: entry.target,
            summary: entry.summary,
            prev_hash: std::mem::take(&mut self.hash),
            hash: String::new(),
        };
        row.hash = row.expected_hash();
        self.seq = row.seq;
        self.hash = row.hash.clone();
        row
    }
}

impl AuditRow {
    /// The canonical encoding hashed after `prev_hash` (see the module docs).
    pub fn canonical(&self) -> String {
        serde_json::to_string(&(
            FORMAT,
            &self.tenant_id,
            self.seq,
            self.recorded_at,
            &self.actor,
            &self.action,
            &self.target,
            &self.summary,
        ))
        .expect("strings and integers serialize")
    }

    /// The hash this row must carry given its content and `prev_hash`.
    pub fn expected_hash(&self) -> String {
        chain_hash(&self.prev_hash, &self.canonical())
    }

    /// This row as the head of its chain.
    pub fn head(&self) -> Head {
        Head {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }
}

/// `hex(SHA-256(prev_hash ‖ canonical))`.
pub fn chain_hash(prev_hash: &str, canonical: &str) -> String {
    let mut sha = Sha256::new();
    sha.update(prev_hash.as_bytes());
    sha.update(canonical.as_bytes());
    hex::encode(sha.finalize())
}

/// Where and why a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("broken at seq {seq}: {reason}")]
pub struct Broken {
    /// The first seq that does not check out.
    pub seq: i64,
    pub reason: BrokenReason,
}

/// Why a row does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokenReason {
    /// The row at this position has another seq: one was deleted, duplicated
    /// or moved.
    #[error("row missing or out of order (found seq {found} where this seq was due)")]
    Sequence { found: i64 },
    /// `prev_hash` is not the previous row's hash: a row before it was
    /// removed, or this one was moved or re-hashed.
    #[error("prev_hash does not match the hash of the row before")]
    PrevMismatch,
    /// The content does not match the stored hash: the row was altered.
    #[error("hash does not match the row's content (row altered)")]
    HashMismatch,
    /// A row of another tenant's chain.
    #[error("row belongs to tenant {found}, not to this chain")]
    ForeignTenant { found: String },
    /// The recorded head claims rows that are not there.
    #[error("row missing: the recorded head ends at seq {claimed}, the rows at seq {found}")]
    MissingAtEnd { claimed: i64, found: i64 },
    /// Rows continue past the recorded head.
    #[error("row beyond the recorded head (which ends at seq {claimed})")]
    BeyondHead { claimed: i64 },
    /// The last row's hash differs from the recorded head.
    #[error("hash differs from the recorded head {claimed}")]
    HeadMismatch { claimed: String },
    /// Fewer rows than recorded, though the rows present chain correctly:
    /// rows were removed from the start.
    #[error("row missing: {claimed} rows recorded, {found} present")]
    MissingAtStart { claimed: u64, found: u64 },
}

/// Result of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Rows checked.
    pub rows: u64,
    /// Seq of the first row (1 for a whole chain; 0 when there were none).
    pub first_seq: i64,
    /// The last row (the genesis head when there were none).
    pub head: Head,
}

/// Checks rows one at a time, so a caller can stream a million rows through
/// it in constant memory.
#[derive(Debug, Clone)]
pub struct Verifier {
    tenant_id: Option<String>,
    /// The head the next row must follow; `None` until the first row of a
    /// resumed chain has been seen.
    head: Option<Head>,
    rows: u64,
    first_seq: i64,
}

impl Verifier {
    /// A whole chain: the first row must be seq 1 after [`GENESIS`].
    pub fn from_genesis(tenant_id: Option<&str>) -> Self {
        Self {
            tenant_id: tenant_id.map(str::to_string),
            head: Some(Head::genesis()),
            rows: 0,
            first_seq: 0,
        }
    }

    /// A slice of a chain (a filtered export): its first row's seq and
    /// `prev_hash` are taken as given, everything after is checked. Only a
    /// first row with seq 1 is held to [`GENESIS`].
    pub fn resume(tenant_id: Option<&str>) -> Self {
        Self {
            head: None,
            ..Self::from_genesis(tenant_id)
        }
    }

    /// The seq the next row must have (`None` before the first row of a
    /// resumed chain, which may start anywhere).
    pub fn next_seq(&self) -> Option<i64> {
        self.head.as_ref().map(|h| h.seq + 1)
    }

    /// Checks the next row.
    pub fn push(&mut self, row: &AuditRow) -> Result<(), Broken> {
        let head = match &self.head {
            Some(head) => head.clone(),
            None if row.seq <= 1 => Head::genesis(),
            None => Head {
                seq: row.seq - 1,
                hash: row.prev_hash.clone(),
            },
        };
        let due = head.seq + 1;
        let broken = |reason| Broken { seq: due, reason };
        match &self.tenant_id {
            Some(t) if *t != row.tenant_id => {
                return Err(broken(BrokenReason::ForeignTenant {
                    found: row.tenant_id.clone(),
                }));
            }
            Some(_) => {}
            None => self.tenant_id = Some(row.tenant_id.clone()),
        }
        if row.seq != due {
            return Err(broken(BrokenReason::Sequence { found: row.seq }));
        }
        if row.prev_hash != head.hash {
            return Err(broken(BrokenReason::PrevMismatch));
        }
        if row.hash != row.expected_hash() {
            return Err(broken(BrokenReason::HashMismatch));
        }
        if self.rows == 0 {
            self.first_seq = row.seq;
        }
        self.rows += 1;
        self.head = Some(row.head());
        Ok(())
    }

    /// Ends the check, comparing with the head (and row count) recorded
    /// elsewhere, when known: the stored head of the database, or an export's
    /// trailer.
    pub fn finish(
        self,
        claimed: Option<&Head>,
        claimed_rows: Option<u64>,
    ) -> Result<Verified, Broken> {
        let head = self.head.unwrap_or_else(Head::genesis);
        if let Some(claimed) = claimed {
            if claimed.seq > head.seq {
                return Err(Broken {
                    seq: head.seq + 1,
                    reason: BrokenReason::MissingAtEnd {
                        claimed: claimed.seq,
                        found: head.seq,
                    },
                });
            }
            if claimed.seq < head.seq {
                return Err(Broken {
                    seq: claimed.seq + 1,
                    reason: BrokenReason::BeyondHead {
                        claimed: claimed.seq,
                    },
                });
            }
            if claimed.hash != head.hash {
                return Err(Broken {
                    seq: head.seq,
                    reason: BrokenReason::HeadMismatch {
                        claimed: claimed.hash.clone(),
                    },
                });
            }
        }
        if let Some(claimed_rows) = claimed_rows
            && claimed_rows != self.rows
        {
            // The rows present chain up to the head, so the difference lies
            // before the first of them.
            let missing_from = head.seq - claimed_rows as i64 + 1;
            return Err(Broken {
                seq: missing_from.max(1),
                reason: BrokenReason::MissingAtStart {
                    claimed: claimed_rows,
                    found: self.rows,
                },
            });
        }
        Ok(Verified {
            rows: self.rows,
            first_seq: self.first_seq,
            head,
        })
    }
}

/// Verifies a whole chain from [`GENESIS`], and its end against `claimed`
/// when given. Detects an altered row (hash), a deleted row (seq gap or
/// `prev_hash` mismatch), reordered rows (seq out of order), a row of another
/// tenant, and a head that does not match.
pub fn verify<'a>(
    rows: impl IntoIterator<Item = &'a AuditRow>,
    claimed: Option<&Head>,
) -> Result<Head, Broken> {
    let mut verifier = Verifier::from_genesis(None);
    for row in rows {
        verifier.push(row)?;
    }
    Ok(verifier.finish(claimed, None)?.head)
}

/// Whether a payload key names something secret or personal.
fn sensitive_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SENSITIVE_KEYS.iter().any(|s| key.contains(s))
}

/// Whether a string value must not be shown: sealed ciphertext, or something
/// shaped like an e-mail address.
fn sensitive_value(s: &str) -> bool {
    if s.starts_with(SEALED_PREFIX) {
        return true;
    }
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut clipped: String = s.chars().take(max - 1).collect();
        clipped.push('…');
        clipped
    }
}

/// `None` when the value is left out.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if sensitive_value(s) => None,
        Value::String(s) => Some(clip(s, VALUE_MAX_CHARS)),
        Value::Array(_) | Value::Object(_) => None,
    }
}

fn describe(prefix: &str, value: &Value, depth: usize, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for key in keys {
                if sensitive_key(key) || (depth == 0 && key == "tenant_id") {
                    continue;
                }
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                if depth < 2 {
                    describe(&path, &map[key], depth + 1, out);
                } else if let Some(s) = scalar(&map[key]) {
                    out.push(format!("{path}={s}"));
                }
            }
        }
        Value::Array(items) => {
            let shown: Option<Vec<String>> = items.iter().map(scalar).collect();
            match shown {
                Some(shown) if shown.len() <= 5 => {
                    out.push(format!("{prefix}=[{}]", shown.join(", ")))
                }
                _ => out.push(format!(
                    "{prefix}={} item{}",
                    items.len(),
                    if items.len() == 1 { "" } else { "s" }
                )),
            }
        }
        other => {
            if let Some(s) = scalar(other) {
                out.push(format!("{prefix}={s}"));
            }
        }
    }
}

/// A short, deterministic description of an event payload for the audit row:
/// its fields as `key=value`, sorted by key, nested objects flattened with
/// dots, lists of objects counted. Left out: any key whose name contains
/// hash, token, secret, password, email, ip, user_agent, code or key (ASCII
/// case-insensitive, so `description` goes too: better too little than a
/// leak), any string sealed by envelope encryption (`hk1:…`) or shaped like
/// an e-mail address, nulls, and `tenant_id` (the row has it). Strings are
/// clipped to 48 characters and the whole to [`SUMMARY_MAX_CHARS`].
///
/// Events are serialized externally tagged (`{"PostCreated": {…}}` or
/// `"PostCancelled"`); the tag equals the event type, so it is dropped.
pub fn summarize(event_type: &str, payload: &Value) -> String {
    let body = match payload {
        Value::Object(map) if map.len() == 1 && map.contains_key(event_type) => &map[event_type],
        Value::String(s) if s == event_type => return String::new(),
        other => other,
    };
    let mut parts = Vec::new();
    match body {
        Value::Object(_) => describe("", body, 0, &mut parts),
        other => {
            if let Some(s) = scalar(other) {
                parts.push(s);
            }
        }
    }
    clip(&parts.join(", "), SUMMARY_MAX_CHARS)
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (seq {})", self.hash, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const TENANT: &str = "0191f3a0-0000-7000-8000-000000000001";

    fn entry(i: i64) -> Entry {
        Entry {
            recorded_at: 1_700_000_000_000_000 + i,
            actor: "user:0191f3a0-0000-7000-8000-0000000000aa".into(),
            action: "PostCreated".into(),
            target: format!("Post:{i}"),
            summary: format!("campaign_id=c{i}"),
        }
    }

    fn chain(n: i64) -> Vec<AuditRow> {
        let mut head = Head::genesis();
        (1..=n).map(|i| head.append(TENANT, entry(i))).collect()
    }

    #[test]
    fn a_chain_starts_at_genesis_and_links_each_row_to_the_one_before() {
        let rows = chain(3);
        assert_eq!(rows[0].seq, 1);
        assert_eq!(rows[0].prev_hash, GENESIS);
        assert_eq!(rows[1].prev_hash, rows[0].hash);
        assert_eq!(rows[2].prev_hash, rows[1].hash);
        assert_eq!(rows[0].hash.len(), 64);
        assert_eq!(verify(&rows, Some(&rows[2].head())), Ok(rows[2].head()));
    }

    #[test]
    fn the_canonical_encoding_is_a_fixed_json_array() {
        let row = &chain(1)[0];
        assert_eq!(
            row.canonical(),
            format!(
                r#"["herald-audit-1","{TENANT}",1,1700000000000001,"user:0191f3a0-0000-7000-8000-0000000000aa","PostCreated","Post:1","campaign_id=c1"]"#
            )
        );
        // Pinned (computed independently with Python's json.dumps(row,
        // separators=(",", ":"), ensure_ascii=False) and hashlib), so an
        // accidental change of the encoding fails here rather than in every
        // stored chain.
        assert_eq!(
            row.hash,
            "61ff39ab59e0962a9d6fc204f2aef9c39f27bd7af9490c3df7dbb0e8422ad40a"
        );
        assert_eq!(row.hash, chain_hash(GENESIS, &row.canonical()));
    }

    #[test]
    fn field_boundaries_cannot_be_shifted() {
        let mut a = chain(1).remove(0);
        let mut b = a.clone();
        a.action = "Ab".into();
        a.target = "c".into();
        b.action = "A".into();
        b.target = "bc".into();
        assert_ne!(a.expected_hash(), b.expected_hash());
    }

    #[test]
    fn an_altered_row_is_detected() {
        let mut rows = chain(5);
        rows[2].summary = "nothing to see".into();
        let broken = verify(&rows, None).unwrap_err();
        assert_eq!(broken.seq, 3);
        assert_eq!(broken.reason, BrokenReason::HashMismatch);
    }

    #[test]
    fn an_altered_and_rehashed_row_breaks_the_next_link() {
        let mut rows = chain(5);
        rows[2].summary = "nothing to see".into();
        rows[2].hash = rows[2].expected_hash();
        let broken = verify(&rows, None).unwrap_err();
        assert_eq!((broken.seq, broken.reason), (4, BrokenReason::PrevMismatch));
    }

    #[test]
    fn a_deleted_row_is_detected() {
        let mut rows = chain(5);
        rows.remove(1);
        let broken = verify(&rows, None).unwrap_err();
        assert_eq!(
            (broken.seq, broken.reason),
            (2, BrokenReason::Sequence { found: 3 })
        );
    }

    #[test]
    fn a_deleted_row_with_renumbered_successors_is_detected() {
        let mut rows = chain(5);
        rows.remove(1);
        for row in &mut rows[1..] {
            row.seq -= 1;
        }
        let broken = verify(&rows, None).unwrap_err();
        assert_eq!((broken.seq, broken.reason), (2, BrokenReason::PrevMismatch));
    }

    #[test]
    fn reordered_rows_are_detected() {
        let mut rows = chain(5);
        rows.swap(1, 3);
        let broken = verify(&rows, None).unwrap_err();
        assert_eq!(
            (broken.seq, broken.reason),
            (2, BrokenReason::Sequence { found: 4 })
        );
        // Swapping the seq numbers too only moves the break to the hash.
        let mut rows = chain(5);
        rows.swap(1, 3);
        rows[1].seq = 2;
        rows[3].seq = 4;
        let broken = verify(&rows, None).unwrap_err();
        assert_eq!(broken.seq, 2);
    }

    #[test]
    fn a_wrong_or_short_head_is_detected() {
        let rows = chain(4);
        let mut wrong = rows[3].head();
        wrong.hash = GENESIS.into();
        assert_eq!(
            verify(&rows, Some(&wrong)).unwrap_err().reason,
            BrokenReason::HeadMismatch {
                claimed: GENESIS.into()
            }
        );
        // The last row deleted: the head still names seq 4.
        let broken = verify(&rows[..3], Some(&rows[3].head())).unwrap_err();
        assert_eq!(
            (broken.seq, broken.reason),
            (
                4,
                BrokenReason::MissingAtEnd {
                    claimed: 4,
                    found: 3
                }
            )
        );
        let broken = verify(&rows, Some(&rows[2].head())).unwrap_err();
        assert_eq!(
            (broken.seq, broken.reason),
            (4, BrokenReason::BeyondHead { claimed: 3 })
        );
    }

    #[test]
    fn a_row_of_another_tenant_is_detected() {
        let mut rows = chain(3);
        let mut other = Head::genesis();
        let foreign: Vec<AuditRow> = (1..=3)
            .map(|i| other.append("someone-else", entry(i)))
            .collect();
        rows[1] = foreign[1].clone();
        assert!(matches!(
            verify(&rows, None).unwrap_err().reason,
            BrokenReason::ForeignTenant { .. }
        ));
    }

    #[test]
    fn a_chain_must_start_at_seq_one_from_genesis() {
        let rows = chain(3);
        let broken = verify(&rows[1..], None).unwrap_err();
        assert_eq!(
            (broken.seq, broken.reason),
            (1, BrokenReason::Sequence { found: 2 })
        );
    }

    #[test]
    fn a_slice_resumes_from_its_first_prev_hash_and_checks_the_count() {
        let rows = chain(6);
        let mut verifier = Verifier::resume(Some(TENANT));
        for row in &rows[2..5] {
            verifier.push(row).unwrap();
        }
        let verified = verifier
            .clone()
            .finish(Some(&rows[4].head()), Some(3))
            .unwrap();
        assert_eq!((verified.rows, verified.first_seq), (3, 3));
        assert_eq!(verified.head, rows[4].head());
        // A slice that lost its first row still chains, but not to the count.
        let mut short = Verifier::resume(Some(TENANT));
        for row in &rows[3..5] {
            short.push(row).unwrap();
        }
        let broken = short.finish(Some(&rows[4].head()), Some(3)).unwrap_err();
        assert_eq!(broken.seq, 3);
        // A slice starting at seq 1 is held to genesis.
        let mut forged = rows[0].clone();
        forged.prev_hash = rows[1].hash.clone();
        forged.hash = forged.expected_hash();
        let mut verifier = Verifier::resume(None);
        assert_eq!(
            verifier.push(&forged).unwrap_err().reason,
            BrokenReason::PrevMismatch
        );
    }

    #[test]
    fn fields_name_the_row_in_declaration_order() {
        let json = serde_json::to_string(&chain(1)[0]).unwrap();
        let at: Vec<usize> = FIELDS
            .iter()
            .map(|f| json.find(&format!("\"{f}\":")).expect(f))
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{json}");
        assert_eq!(json.matches("\":").count(), FIELDS.len());
    }

    #[test]
    fn an_export_row_keeps_the_instant_to_the_microsecond() {
        let row = chain(1).remove(0);
        let exported = ExportRow::from(row.clone());
        assert_eq!(exported.recorded_at, "2023-11-14T22:13:20.000001Z");
        assert_eq!(exported.into_row(), Ok(row));
        let mut bad = ExportRow::from(chain(1).remove(0));
        bad.recorded_at = "yesterday".into();
        assert!(bad.into_row().unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn an_empty_chain_verifies_to_genesis() {
        assert_eq!(verify([], None), Ok(Head::genesis()));
        assert_eq!(verify([], Some(&Head::genesis())), Ok(Head::genesis()));
    }

    #[test]
    fn summaries_drop_secrets_and_personal_data() {
        let payload = json!({"UserRegistered": {
            "email": "ada@example.org",
            "password_hash": "$argon2id$v=19$…",
            "tenant_id": TENANT,
            "role": "Owner",
            "refreshToken": "hrt_x",
            "ClientSecret": "s",
            "ip_address": "10.0.0.1",
            "user_agent": "curl",
            "totp_code": "123456",
            "api_key_id": "k",
            "display_name": "hk1:AAAA",
            "contact": "bob@example.com",
            "note": "meet @ noon",
        }});
        assert_eq!(
            summarize("UserRegistered", &payload),
            "note=meet @ noon, role=Owner"
        );
    }

    #[test]
    fn summaries_flatten_nested_fields_and_count_lists() {
        let payload = json!({"CampaignCreated": {
            "tenant_id": TENANT,
            "settings": {"name": "Spring launch", "time_zone": "Europe/Berlin", "starts_on": "2026-01-01"},
        }});
        assert_eq!(
            summarize("CampaignCreated", &payload),
            "settings.name=Spring launch, settings.starts_on=2026-01-01, settings.time_zone=Europe/Berlin"
        );
        let payload = json!({"PostCreated": {
            "campaign_id": "c1",
            "entries": [{"text": "a"}, {"text": "b"}],
            "recurrence": null,
            "langs": ["de", "en"],
        }});
        assert_eq!(
            summarize("PostCreated", &payload),
            "campaign_id=c1, entries=2 items, langs=[de, en]"
        );
        assert_eq!(summarize("PostCancelled", &json!("PostCancelled")), "");
    }

    #[test]
    fn summaries_are_clipped() {
        let long = "x".repeat(500);
        let payload = json!({"E": {"a": long, "b": long, "c": long, "d": long, "e": long}});
        let summary = summarize("E", &payload);
        assert_eq!(summary.chars().count(), SUMMARY_MAX_CHARS);
        assert!(summary.ends_with('…'));
        assert!(summary.starts_with(&format!("a={}…", "x".repeat(VALUE_MAX_CHARS - 1))));
    }
}
