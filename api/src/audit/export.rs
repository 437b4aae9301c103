//! `GET /api/v1/audit/export?format=csv|json|ndjson&from&to`: the caller's
//! tenant's audit trail as a file, with the chain's head in a trailer.
//!
//! Constant memory: the response body is a lazy stream. Each poll reads one
//! page of at most [`PAGE_ROWS`] rows with a keyset query (`seq > last seen`,
//! its own short statement, no transaction held open) and encodes only that
//! page; hyper polls for the next page only once the client has taken the
//! previous one. A million-row export therefore holds one page at a time, and
//! a slow client slows the reads down instead of filling memory.
//!
//! The range is fixed when the export starts (see
//! [`AuditQueries::seq_range`]): rows appended meanwhile are left out, so the
//! trailer's head and count describe exactly the rows written.
//!
//! Shapes (`recorded_at` is RFC 3339 with microseconds, exactly the hashed
//! value):
//! - `ndjson`: one row object per line, then `{"head":…,"seq":…,"first_seq":…,"rows":…,"tenant_id":…}`;
//! - `json`: `{"tenant_id":…,"rows":[row,…],"head":…,"seq":…,"first_seq":…,"count":…}`;
//! - `csv`: a header line, one record per row, then `#head,<hash>,<seq>,<first_seq>,<rows>`.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use domain::access::Action;
use domain::audit::{AuditRow, Head};
use futures_util::Stream;
use projections::StoreError;
use projections::audit::{Audit, AuditQueries, SeqRange};
use serde::Serialize;
use serde_json::json;

use crate::error::ApiError;
use crate::http::Http;
use crate::http::rest_error;

/// Rows read and encoded per step of the stream.
pub const PAGE_ROWS: i64 = 1000;

/// CSV header, the fields of [`ExportRow`] in order.
pub const CSV_HEADER: [&str; 9] = domain::audit::FIELDS;

/// First field of the CSV trailer record.
pub const CSV_TRAILER: &str = "#head";

/// A file format of the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
    Ndjson,
}

impl Format {
    /// Parses the `format` parameter.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "csv" => Some(Self::Csv),
            "json" => Some(Self::Json),
            "ndjson" => Some(Self::Ndjson),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/json",
            Self::Ndjson => "application/x-ndjson",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Ndjson => "ndjson",
        }
    }
}

/// A row as exported (declared with the stored row in `domain::audit`).
pub use domain::audit::ExportRow;

/// What the export's last record says about the rows before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trailer {
    /// The chain head at the export's last seq (`None` when it holds no rows).
    pub head: Option<Head>,
    /// First seq of the range.
    pub first_seq: i64,
    /// How many rows the range holds (`last - first + 1`), whether or not
    /// the database still had them all.
    pub rows: u64,
}

/// Parses an optional RFC 3339 parameter into microseconds.
fn instant(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    params
        .get(name)
        .map(|raw| {
            DateTime::parse_from_rfc3339(raw)
                .map(|t| t.timestamp_micros())
                .map_err(|_| {
                    ApiError::invalid(
                        name,
                        "must be an RFC 3339 time such as 2026-01-31T00:00:00Z",
                    )
                })
        })
        .transpose()
}

/// `GET /api/v1/audit/export`.
pub async fn audit_export(
    State(http): State<Http>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let principal = match crate::http::rest_principal(&http, &headers, Action::ReadAudit).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    let format = match params.get("format").map(String::as_str) {
        None => Format::Ndjson,
        Some(raw) => match Format::parse(raw) {
            Some(f) => f,
            None => {
                return rest_error(&ApiError::invalid("format", "must be csv, json or ndjson"));
            }
        },
    };
    let (from, to) = match (instant(&params, "from"), instant(&params, "to")) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(e), _) | (_, Err(e)) => return rest_error(&e),
    };
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return rest_error(&ApiError::invalid("from", "must be before to"));
    }
    let tenant = principal.tenant_id.to_string();
    // The audit log follows at its own pace: export the caller's writes.
    if let Err(e) = http.state.fresh(&[Audit::NAME]).await {
        return rest_error(&e);
    }
    let queries = AuditQueries::new(http.state.db.any.clone());
    let range = match queries.seq_range(&tenant, from, to).await {
        Ok(range) => range,
        Err(e) => {
            let e = ApiError::from(e);
            if let ApiError::Internal(source) = &e {
                tracing::error!(error = %source, cause = ?source.source(), "audit export failed");
            }
            return rest_error(&e);
        }
    };
    let disposition = format!(
        "attachment; filename=\"audit-{tenant}.{}\"",
        format.extension()
    );
    let body = Body::from_stream(export_stream(queries, tenant, range, format, PAGE_ROWS));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

enum Phase {
    Header,
    Rows,
    Trailer,
    Done,
}

struct Export {
    queries: AuditQueries,
    tenant: String,
    range: SeqRange,
    format: Format,
    page_rows: i64,
    phase: Phase,
    /// Last seq written (the keyset cursor).
    after: i64,
    written: u64,
    last: Option<Head>,
}

fn json_line(out: &mut Vec<u8>, value: &impl Serialize) {
    serde_json::to_writer(&mut *out, value).expect("rows serialize");
}

impl Export {
    fn header(&self) -> Vec<u8> {
        match self.format {
            Format::Ndjson => Vec::new(),
            Format::Json => format!(
                "{{\"tenant_id\":{},\"rows\":[",
                serde_json::Value::from(self.tenant.as_str())
            )
            .into_bytes(),
            Format::Csv => {
                let mut out = csv::Writer::from_writer(Vec::new());
                out.write_record(CSV_HEADER).expect("write to memory");
                out.into_inner().expect("flush to memory")
            }
        }
    }

    fn rows(&mut self, rows: Vec<AuditRow>) -> Vec<u8> {
        let mut out = Vec::with_capacity(rows.len() * 400);
        let mut csv = (self.format == Format::Csv).then(|| {
            csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(Vec::new())
        });
        for row in rows {
            self.after = row.seq;
            self.last = Some(row.head());
            let row = ExportRow::from(row);
            match self.format {
                Format::Ndjson => {
                    json_line(&mut out, &row);
                    out.push(b'\n');
                }
                Format::Json => {
                    out.extend_from_slice(if self.written == 0 {
                        &b"\n"[..]
                    } else {
                        &b",\n"[..]
                    });
                    json_line(&mut out, &row);
                }
                Format::Csv => {
                    if let Some(csv) = csv.as_mut() {
                        csv.serialize(&row).expect("write to memory");
                    }
                }
            }
            self.written += 1;
        }
        if let Some(csv) = csv {
            out = csv.into_inner().expect("flush to memory");
        }
        out
    }

    fn trailer(&self) -> Trailer {
        let rows = (self.range.last - self.range.first + 1).max(0) as u64;
        Trailer {
            head: self.range.head.clone().or_else(|| self.last.clone()),
            first_seq: self.range.first,
            rows,
        }
    }

    fn trailer_bytes(&self) -> Vec<u8> {
        let t = self.trailer();
        let hash = t.head.as_ref().map(|h| h.hash.clone());
        let seq = t.head.as_ref().map(|h| h.seq);
        match self.format {
            Format::Ndjson => {
                let mut out = Vec::new();
                json_line(
                    &mut out,
                    &json!({"head": hash, "seq": seq, "first_seq": t.first_seq, "rows": t.rows, "tenant_id": self.tenant}),
                );
                out.push(b'\n');
                out
            }
            Format::Json => {
                let tail =
                    json!({"head": hash, "seq": seq, "first_seq": t.first_seq, "count": t.rows});
                let tail = tail.to_string();
                // `{"head":…}` without its opening brace continues the object.
                format!("\n],{}\n", &tail[1..]).into_bytes()
            }
            Format::Csv => {
                let mut out = csv::WriterBuilder::new()
                    .flexible(true)
                    .from_writer(Vec::new());
                out.write_record([
                    CSV_TRAILER.to_string(),
                    hash.unwrap_or_default(),
                    seq.map(|s| s.to_string()).unwrap_or_default(),
                    t.first_seq.to_string(),
                    t.rows.to_string(),
                ])
                .expect("write to memory");
                out.into_inner().expect("flush to memory")
            }
        }
    }

    /// The next chunk of the body, or `None` at the end.
    async fn next(&mut self) -> Option<Result<Bytes, StoreError>> {
        loop {
            match self.phase {
                Phase::Header => {
                    self.phase = Phase::Rows;
                    self.after = self.range.first - 1;
                    let header = self.header();
                    if !header.is_empty() {
                        return Some(Ok(header.into()));
                    }
                }
                Phase::Rows => {
                    if self.after >= self.range.last {
                        self.phase = Phase::Trailer;
                        continue;
                    }
                    let page = self
                        .queries
                        .rows_after(
                            &self.tenant,
                            self.after,
                            Some(self.range.last),
                            self.page_rows,
                        )
                        .await;
                    match page {
                        Ok(rows) if rows.is_empty() => self.phase = Phase::Trailer,
                        Ok(rows) => return Some(Ok(self.rows(rows).into())),
                        Err(e) => {
                            // Headers are gone already: end the body with an
                            // error so the client sees a cut transfer, and the
                            // file lacks its trailer (verify reports it).
                            tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "audit export stream failed");
                            self.phase = Phase::Done;
                            return Some(Err(e));
                        }
                    }
                }
                Phase::Trailer => {
                    self.phase = Phase::Done;
                    return Some(Ok(self.trailer_bytes().into()));
                }
                Phase::Done => return None,
            }
        }
    }
}

/// The export's body: header, one chunk per page of `page_rows` rows read
/// lazily, trailer. Public so tests can drive it with a small page.
pub fn export_stream(
    queries: AuditQueries,
    tenant: String,
    range: SeqRange,
    format: Format,
    page_rows: i64,
) -> impl Stream<Item = Result<Bytes, StoreError>> + Send + 'static {
    let export = Export {
        queries,
        tenant,
        range,
        format,
        page_rows,
        phase: Phase::Header,
        after: 0,
        written: 0,
        last: None,
    };
    futures_util::stream::unfold(export, |mut export| async move {
        let chunk = export.next().await?;
        Some((chunk, export))
    })
}
