//! `herald audit verify --tenant ID [--file EXPORT]`: checks a tenant's audit
//! chain in the database (rows and stored head), or an exported file in any
//! of the export's formats (recognised by content). Both walk the rows one at
//! a time, in constant memory.
//!
//! Exit codes: 0 the chain verifies (`ok: N rows, head <hash>`), 1 it is
//! broken (`broken at seq N: <reason>`, naming the first broken row), 2 the
//! check could not run (unreadable file, database unreachable).

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use domain::audit::{Broken, Head, Verified, Verifier};
use projections::StoreError;
use projections::audit::AuditQueries;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use uuid::Uuid;

use crate::audit::export::{CSV_HEADER, CSV_TRAILER, ExportRow, Trailer};
use crate::settings::Settings;

/// Rows per database page while verifying.
pub const VERIFY_PAGE_ROWS: i64 = 1000;

/// Why a verification did not succeed.
#[derive(Debug)]
pub enum CheckError {
    /// A row does not check out.
    Broken(Broken),
    /// The file is not a well-formed export at this point.
    Malformed {
        /// The seq that was due there, when known.
        seq: Option<i64>,
        line: u64,
        message: String,
    },
    /// The check could not run.
    Cannot(anyhow::Error),
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Broken(b) => write!(f, "{b}"),
            Self::Malformed {
                seq: Some(seq),
                line,
                message,
            } => write!(f, "broken at seq {seq}: line {line}: {message}"),
            Self::Malformed {
                seq: None,
                line,
                message,
            } => write!(f, "broken at the first row: line {line}: {message}"),
            Self::Cannot(e) => write!(f, "cannot verify: {e:#}"),
        }
    }
}

impl From<Broken> for CheckError {
    fn from(b: Broken) -> Self {
        Self::Broken(b)
    }
}

impl From<StoreError> for CheckError {
    fn from(e: StoreError) -> Self {
        Self::Cannot(anyhow::Error::new(e))
    }
}

impl From<std::io::Error> for CheckError {
    fn from(e: std::io::Error) -> Self {
        Self::Cannot(anyhow::Error::new(e))
    }
}

/// Checks the tenant's rows in the database from seq 1 and the stored head.
pub async fn verify_database(
    queries: &AuditQueries,
    tenant: &str,
    page_rows: i64,
) -> Result<Verified, CheckError> {
    let mut claimed = queries.head(tenant).await?.unwrap_or_else(Head::genesis);
    let mut verifier = Verifier::from_genesis(Some(tenant));
    let mut after = 0;
    loop {
        let rows = queries.rows_after(tenant, after, None, page_rows).await?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        for row in &rows {
            verifier.push(row)?;
        }
    }
    // The projection may have appended since the head was read; rows and
    // head commit together, so a head read now covers every row read.
    if verifier
        .next_seq()
        .is_some_and(|next| next - 1 > claimed.seq)
        && let Some(head) = queries.head(tenant).await?
    {
        claimed = head;
    }
    Ok(verifier.finish(Some(&claimed), None)?)
}

/// Rows of a file checked as they are read.
struct FileCheck {
    verifier: Verifier,
    trailer: Option<Trailer>,
    /// Line of the last thing read, for messages.
    line: u64,
}

impl FileCheck {
    fn new(tenant: &str) -> Self {
        Self {
            // A filtered export starts wherever its range starts.
            verifier: Verifier::resume(Some(tenant)),
            trailer: None,
            line: 0,
        }
    }

    fn malformed(&self, message: impl Into<String>) -> CheckError {
        CheckError::Malformed {
            seq: self.verifier.next_seq(),
            line: self.line,
            message: message.into(),
        }
    }

    fn row(&mut self, row: ExportRow) -> Result<(), CheckError> {
        if self.trailer.is_some() {
            return Err(self.malformed("row after the trailer"));
        }
        let row = row.into_row().map_err(|m| self.malformed(m))?;
        Ok(self.verifier.push(&row)?)
    }

    fn trailer(&mut self, trailer: Trailer) -> Result<(), CheckError> {
        if self.trailer.is_some() {
            return Err(self.malformed("a second trailer"));
        }
        self.trailer = Some(trailer);
        Ok(())
    }

    fn finish(self) -> Result<Verified, CheckError> {
        let Some(trailer) = self.trailer else {
            return Err(
                self.malformed("the file ends without the export's trailer (incomplete download?)")
            );
        };
        Ok(self
            .verifier
            .finish(trailer.head.as_ref(), Some(trailer.rows))?)
    }
}

fn trailer_head(hash: Option<String>, seq: Option<i64>) -> Option<Head> {
    match (hash, seq) {
        (Some(hash), Some(seq)) if !hash.is_empty() => Some(Head { seq, hash }),
        _ => None,
    }
}

/// Which export format a file holds, judged by its first bytes.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Csv,
    Json,
    Ndjson,
}

/// An NDJSON export's first line is a complete object (a row or, when empty,
/// the trailer); a JSON export's first line opens an object with a `rows`
/// array (or, minified, is all of it). Anything else is CSV.
fn detect(buffer: &[u8]) -> Kind {
    let start = buffer
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(buffer.len());
    let rest = &buffer[start..];
    if rest.first() != Some(&b'{') {
        return Kind::Csv;
    }
    let Some(end) = rest.iter().position(|b| *b == b'\n') else {
        return Kind::Json;
    };
    match serde_json::from_slice::<Value>(&rest[..end]) {
        Ok(Value::Object(map)) if !map.get("rows").is_some_and(Value::is_array) => Kind::Ndjson,
        _ => Kind::Json,
    }
}

/// Checks an exported file of the tenant: its rows chain from the first
/// row's `prev_hash` (a filtered export starts past seq 1), and end at the
/// trailer's head with the trailer's row count.
pub fn verify_file(path: &Path, tenant: &str) -> Result<Verified, CheckError> {
    let file = File::open(path).map_err(|e| {
        CheckError::Cannot(anyhow::Error::new(e).context(path.display().to_string()))
    })?;
    verify_reader(BufReader::with_capacity(64 * 1024, file), tenant)
}

/// [`verify_file`] over any buffered reader.
pub fn verify_reader(mut reader: impl BufRead, tenant: &str) -> Result<Verified, CheckError> {
    let kind = detect(reader.fill_buf()?);
    let mut check = FileCheck::new(tenant);
    match kind {
        Kind::Ndjson => ndjson(reader, &mut check)?,
        Kind::Json => json(reader, &mut check)?,
        Kind::Csv => csv_rows(reader, &mut check)?,
    }
    check.finish()
}

fn ndjson(reader: impl BufRead, check: &mut FileCheck) -> Result<(), CheckError> {
    for line in reader.lines() {
        let line = line?;
        check.line += 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(&line).map_err(|e| check.malformed(format!("not JSON: {e}")))?;
        if value.get("hash").is_some() {
            let row: ExportRow = serde_json::from_value(value)
                .map_err(|e| check.malformed(format!("not an audit row: {e}")))?;
            check.row(row)?;
        } else if value.get("head").is_some() {
            let get_i64 = |k: &str| value.get(k).and_then(Value::as_i64);
            let trailer = Trailer {
                head: trailer_head(
                    value
                        .get("head")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    get_i64("seq"),
                ),
                first_seq: get_i64("first_seq").unwrap_or(0),
                rows: value
                    .get("rows")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| check.malformed("trailer without a row count"))?,
            };
            check.trailer(trailer)?;
        } else {
            return Err(check.malformed("neither an audit row nor the trailer"));
        }
    }
    Ok(())
}

fn csv_rows(reader: impl Read, check: &mut FileCheck) -> Result<(), CheckError> {
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let headers = csv
        .headers()
        .map_err(|e| check.malformed(format!("not CSV: {e}")))?
        .clone();
    check.line = 1;
    if headers.iter().ne(CSV_HEADER) {
        return Err(check.malformed(format!("the header is not {}", CSV_HEADER.join(","))));
    }
    for record in csv.records() {
        let record = record.map_err(|e| check.malformed(format!("not CSV: {e}")))?;
        check.line = record.position().map_or(check.line + 1, |p| p.line());
        if record.get(0) == Some(CSV_TRAILER) {
            let field = |i: usize| record.get(i).unwrap_or_default().to_string();
            let number = |i: usize| field(i).parse::<i64>().ok();
            let trailer = Trailer {
                head: trailer_head(Some(field(1)), number(2)),
                first_seq: number(3).unwrap_or(0),
                rows: field(4)
                    .parse()
                    .map_err(|_| check.malformed("trailer without a row count"))?,
            };
            check.trailer(trailer)?;
        } else {
            let row: ExportRow = record
                .deserialize(Some(&headers))
                .map_err(|e| check.malformed(format!("not an audit row: {e}")))?;
            check.row(row)?;
        }
    }
    Ok(())
}

fn json(reader: impl Read, check: &mut FileCheck) -> Result<(), CheckError> {
    let mut de = serde_json::Deserializer::from_reader(reader);
    // Rows go to the verifier one by one as the parser meets them; a broken
    // row stops the parse and is reported as it stands.
    let mut failure = None;
    let parsed = Document {
        check: &mut *check,
        failure: &mut failure,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if let Some(failure) = failure {
        return Err(failure);
    }
    parsed.map_err(|e| {
        check.line = e.line() as u64;
        check.malformed(format!("not a JSON export: {e}"))
    })
}

struct Document<'a> {
    check: &'a mut FileCheck,
    failure: &'a mut Option<CheckError>,
}

impl<'de> DeserializeSeed<'de> for Document<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Document<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an audit export object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (mut head, mut seq, mut first_seq, mut count) = (None, None, None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "rows" => map.next_value_seed(Rows {
                    check: &mut *self.check,
                    failure: &mut *self.failure,
                })?,
                "head" => head = map.next_value::<Option<String>>()?,
                "seq" => seq = map.next_value::<Option<i64>>()?,
                "first_seq" => first_seq = map.next_value::<Option<i64>>()?,
                "count" => count = map.next_value::<Option<u64>>()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if let Some(rows) = count {
            let trailer = Trailer {
                head: trailer_head(head, seq),
                first_seq: first_seq.unwrap_or(0),
                rows,
            };
            if let Err(e) = self.check.trailer(trailer) {
                *self.failure = Some(e);
                return Err(serde::de::Error::custom("invalid trailer"));
            }
        }
        Ok(())
    }
}

struct Rows<'a> {
    check: &'a mut FileCheck,
    failure: &'a mut Option<CheckError>,
}

impl<'de> DeserializeSeed<'de> for Rows<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of audit rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(row) = seq.next_element::<ExportRow>()? {
            self.check.line += 1;
            if let Err(e) = self.check.row(row) {
                *self.failure = Some(e);
                return Err(serde::de::Error::custom("broken row"));
            }
        }
        Ok(())
    }
}

/// Runs `herald audit verify`, prints the outcome, and returns the exit code.
pub async fn run(settings: &Settings, tenant: Uuid, file: Option<&Path>) -> i32 {
    let tenant = tenant.to_string();
    let result = match file {
        Some(path) => verify_file(path, &tenant),
        None => match settings.connect().await {
            Ok(db) => {
                verify_database(
                    &AuditQueries::new(db.any.clone()),
                    &tenant,
                    VERIFY_PAGE_ROWS,
                )
                .await
            }
            Err(e) => Err(CheckError::Cannot(e)),
        },
    };
    match result {
        Ok(verified) => {
            println!("ok: {} rows, head {}", verified.rows, verified.head.hash);
            0
        }
        Err(e @ CheckError::Cannot(_)) => {
            eprintln!("{e}");
            2
        }
        Err(e) => {
            println!("{e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_apart_by_their_first_line() {
        assert_eq!(detect(b"tenant_id,seq,recorded_at\n"), Kind::Csv);
        assert_eq!(
            detect(b"{\"tenant_id\":\"t\",\"rows\":[\n{\"seq\":1}"),
            Kind::Json
        );
        assert_eq!(detect(b"{\"tenant_id\":\"t\",\"rows\":[]}"), Kind::Json);
        assert_eq!(
            detect(b"{\"tenant_id\":\"t\",\"rows\":[],\"head\":null}\n"),
            Kind::Json
        );
        assert_eq!(
            detect(b"{\"seq\":1,\"hash\":\"x\"}\n{\"head\":\"x\"}\n"),
            Kind::Ndjson
        );
        assert_eq!(detect(b"\n{\"head\":null,\"rows\":0}\n"), Kind::Ndjson);
    }
}
