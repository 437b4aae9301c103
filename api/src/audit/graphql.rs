//! The `auditLog` query: the caller's tenant's hash-chained audit trail,
//! filtered and paged in chain (seq) order. Owners and admins only.

use async_graphql::connection::Connection;
use async_graphql::{Context, InputObject, Object, SimpleObject};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use domain::access::Action;
use domain::audit::AuditRow;
use projections::audit::{Audit, AuditFilter as Filter, AuditQueries};
use projections::{from_micros, micros};

use crate::error::{ApiError, ApiResult};
use crate::graphql::{page, page_cost, page_size, principal, state};

/// One row of the audit trail: an event of the tenant, chained to the row
/// before by `hash = SHA-256(prevHash ‖ canonical row)`.
#[derive(SimpleObject)]
pub struct AuditEntry {
    /// Position in the tenant's chain, from 1 without gaps.
    pub seq: i64,
    pub recorded_at: DateTime<Utc>,
    /// `user:<id>`, `api_key:<id>`, `display:<id>` or `system`.
    pub actor: String,
    /// The event type, e.g. `PostScheduled`.
    pub action: String,
    /// `AggregateType:id`.
    pub target: String,
    /// What changed, without secrets or personal data.
    pub summary: String,
    pub prev_hash: String,
    pub hash: String,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        Self {
            seq: r.seq,
            recorded_at: from_micros(r.recorded_at),
            actor: r.actor,
            action: r.action,
            target: r.target,
            summary: r.summary,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// A page of the audit trail.
pub type AuditConnection = Connection<String, AuditEntry>;

/// Filter of `auditLog`; all given conditions must hold.
#[derive(InputObject, Default)]
pub struct AuditFilter {
    /// Recorded at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Recorded before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Exactly this actor, e.g. `user:0191…`.
    pub actor: Option<String>,
    /// Exactly this event type.
    pub action: Option<String>,
}

fn encode_seq(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("audit:{seq}"))
}

fn decode_seq(cursor: Option<&str>) -> ApiResult<Option<i64>> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let invalid = || ApiError::invalid("after", "not a cursor returned by this query");
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    let seq = raw
        .strip_prefix("audit:")
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|s| *s >= 0)
        .ok_or_else(invalid)?;
    Ok(Some(seq))
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The organisation's audit trail in chain order (oldest first).
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<AuditConnection> {
        let p = principal(ctx, Action::ReadAudit)?;
        let limit = page_size(first)?;
        let after_seq = decode_seq(after.as_deref())?;
        let filter = filter.unwrap_or_default();
        let filter = Filter {
            from: filter.from.map(micros),
            to: filter.to.map(micros),
            actor: filter.actor,
            action: filter.action,
        };
        // The audit log follows at its own pace: show the caller's writes.
        state(ctx).fresh(&[Audit::NAME]).await?;
        let rows = AuditQueries::new(state(ctx).db.any.clone())
            .page(p.tenant_id, &filter, after_seq, limit + 1)
            .await?;
        Ok(page(rows, limit, after.is_some(), |row| {
            (encode_seq(row.seq), AuditEntry::from(row))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(decode_seq(Some(&encode_seq(42))).unwrap(), Some(42));
        assert_eq!(decode_seq(None).unwrap(), None);
        for bad in [
            "",
            "!!",
            &URL_SAFE_NO_PAD.encode("audit:-1"),
            &URL_SAFE_NO_PAD.encode("x:1"),
        ] {
            assert_eq!(decode_seq(Some(bad)).unwrap_err().code(), "VALIDATION");
        }
    }
}
