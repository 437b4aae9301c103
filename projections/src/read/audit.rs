//! The audit read model: one row per event of a tenant, each carrying
//! `hash = SHA-256(prev_hash ‖ canonical row)` (rules in `domain::audit`).
//! Fed by the `audit` projection; read by the `auditLog` query, the export
//! and `herald audit verify`.
//!
//! A tenant's chain follows the global log's commit order, which replay reads
//! the same way, and every field of a row comes from the event alone (no
//! clock, no look-up), so a replay rebuilds byte-identical rows and hashes.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use domain::audit::{AuditRow, Entry, FIELDS, Head, summarize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, FromRow, Row as _};
use uuid::Uuid;

use crate::infra::sql::{CHUNK, in_list, placeholders};
use crate::{Projection, StoreError, StoredEvent, micros};

/// The audit projection.
pub struct Audit;

/// The chain entry an event contributes: who, what, on which aggregate, and
/// a summary without secrets.
pub fn entry(event: &StoredEvent) -> Entry {
    Entry {
        recorded_at: micros(event.metadata.recorded_at),
        actor: event.metadata.actor.to_string(),
        action: event.event_type.clone(),
        target: format!("{}:{}", event.aggregate_type, event.aggregate_id),
        summary: summarize(&event.event_type, &event.payload),
    }
}

/// The columns of `rm_audit`, the fields of [`AuditRow`] in order.
fn columns() -> String {
    FIELDS.join(", ")
}

impl Audit {
    /// The projection's name (checkpoint key, `--projection` argument, and
    /// what an operation names when it waits for this read model).
    pub const NAME: &'static str = "audit";
}

#[async_trait]
impl Projection for Audit {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_audit", "rm_audit_heads"]
    }

    fn deferred_indexes(&self) -> &'static [&'static str] {
        &["rm_audit_by_time"]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        events: &[StoredEvent],
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        // Heads of the batch's tenants, then every row folded in memory, then
        // a few multi-row statements: replay costs statements per batch, not
        // per event. A BTreeMap writes heads in a stable order.
        let tenants: HashSet<String> = events
            .iter()
            .map(|e| e.metadata.tenant_id.to_string())
            .collect();
        let mut heads: BTreeMap<String, Head> = BTreeMap::new();
        for chunk in tenants.into_iter().collect::<Vec<_>>().chunks(CHUNK) {
            let sql = format!(
                "SELECT tenant_id, seq, hash FROM rm_audit_heads WHERE tenant_id IN ({})",
                in_list(conn, chunk.len())
            );
            let mut query = sqlx::query_as::<_, (String, i64, String)>(&sql);
            for tenant in chunk {
                query = query.bind(tenant.as_str());
            }
            for (tenant, seq, hash) in query.fetch_all(&mut *conn).await? {
                heads.insert(tenant, Head { seq, hash });
            }
        }
        let rows: Vec<AuditRow> = events
            .iter()
            .map(|event| {
                let tenant = event.metadata.tenant_id.to_string();
                let head = heads.entry(tenant.clone()).or_insert_with(Head::genesis);
                head.append(&tenant, entry(event))
            })
            .collect();
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO rm_audit ({}) VALUES {}",
                columns(),
                placeholders(conn, chunk.len(), FIELDS.len())
            );
            let mut query = sqlx::query(&sql);
            for r in chunk {
                query = bind(query, r);
            }
            query.execute(&mut *conn).await?;
        }
        let heads: Vec<(String, Head)> = heads.into_iter().filter(|(_, h)| h.seq > 0).collect();
        for chunk in heads.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO rm_audit_heads (tenant_id, seq, hash) VALUES {}
                 ON CONFLICT (tenant_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                placeholders(conn, chunk.len(), 3)
            );
            let mut query = sqlx::query(&sql);
            for (tenant, head) in chunk {
                query = query.bind(tenant).bind(head.seq).bind(&head.hash);
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// Binds a row's fields in the order of [`FIELDS`].
fn bind<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    r: &'q AuditRow,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(&r.tenant_id)
        .bind(r.seq)
        .bind(r.recorded_at)
        .bind(&r.actor)
        .bind(&r.action)
        .bind(&r.target)
        .bind(&r.summary)
        .bind(&r.prev_hash)
        .bind(&r.hash)
}

/// A row read back from `SELECT {columns()}`: the domain's [`AuditRow`],
/// read by position (the domain crate does no I/O, so it cannot derive
/// `FromRow` itself).
struct Stored(AuditRow);

impl<'r> FromRow<'r, AnyRow> for Stored {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Stored(AuditRow {
            tenant_id: row.try_get(0)?,
            seq: row.try_get(1)?,
            recorded_at: row.try_get(2)?,
            actor: row.try_get(3)?,
            action: row.try_get(4)?,
            target: row.try_get(5)?,
            summary: row.try_get(6)?,
            prev_hash: row.try_get(7)?,
            hash: row.try_get(8)?,
        }))
    }
}

/// Filter of the `auditLog` query.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Inclusive lower bound on `recorded_at`, microseconds.
    pub from: Option<i64>,
    /// Exclusive upper bound on `recorded_at`, microseconds.
    pub to: Option<i64>,
    pub actor: Option<String>,
    pub action: Option<String>,
}

/// The contiguous part of a tenant's chain an export covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqRange {
    /// First seq (inclusive).
    pub first: i64,
    /// Last seq (inclusive); below `first` when the range is empty.
    pub last: i64,
    /// The stored head when the range runs to the end of the chain, for the
    /// export's trailer.
    pub head: Option<Head>,
}

/// Reads of the audit trail. Every read takes the caller's tenant.
#[derive(Clone, Debug)]
pub struct AuditQueries {
    pool: AnyPool,
}

impl AuditQueries {
    /// Queries over the `Any` pool.
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// The tenant's rows in seq order after seq `after`, filtered.
    pub async fn page(
        &self,
        tenant: Uuid,
        filter: &AuditFilter,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let mut sql = format!(
            "SELECT {} FROM rm_audit WHERE tenant_id = $1 AND seq > $2",
            columns()
        );
        let mut n = 2;
        let mut next = |clause: &str| {
            n += 1;
            sql.push_str(&clause.replace('?', &format!("${n}")));
        };
        if filter.from.is_some() {
            next(" AND recorded_at >= ?");
        }
        if filter.to.is_some() {
            next(" AND recorded_at < ?");
        }
        if filter.actor.is_some() {
            next(" AND actor = ?");
        }
        if filter.action.is_some() {
            next(" AND action = ?");
        }
        next(" ORDER BY seq LIMIT ?");
        let mut query = sqlx::query_as::<_, Stored>(&sql)
            .bind(tenant.to_string())
            .bind(after.unwrap_or(0));
        if let Some(from) = filter.from {
            query = query.bind(from);
        }
        if let Some(to) = filter.to {
            query = query.bind(to);
        }
        if let Some(actor) = &filter.actor {
            query = query.bind(actor.as_str());
        }
        if let Some(action) = &filter.action {
            query = query.bind(action.as_str());
        }
        let mut conn = crate::db::scoped(&self.pool, tenant).await?;
        let rows = query.bind(limit).fetch_all(&mut *conn).await?;
        Ok(rows.into_iter().map(|Stored(row)| row).collect())
    }

    /// Up to `limit` rows with `after < seq <= up_to` (`up_to` = `None`: no
    /// upper bound), in seq order. One short query per page: an export or a
    /// verification walks a million rows without a long transaction.
    pub async fn rows_after(
        &self,
        tenant: &str,
        after: i64,
        up_to: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let Ok(tenant_id) = Uuid::parse_str(tenant) else {
            return Ok(Vec::new());
        };
        let mut conn = crate::db::scoped(&self.pool, tenant_id).await?;
        let rows = sqlx::query_as::<_, Stored>(&format!(
            "SELECT {} FROM rm_audit WHERE tenant_id = $1 AND seq > $2 AND seq <= $3
              ORDER BY seq LIMIT $4",
            columns()
        ))
        .bind(tenant)
        .bind(after)
        .bind(up_to.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows.into_iter().map(|Stored(row)| row).collect())
    }

    /// The stored head of the tenant's chain (`None` before its first event).
    pub async fn head(&self, tenant: &str) -> Result<Option<Head>, StoreError> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM rm_audit_heads WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(seq, hash)| Head { seq, hash }))
    }

    /// The rows an export from `from` (inclusive) to `to` (exclusive,
    /// microseconds) covers: from the first row recorded at or after `from`
    /// to the last one recorded before `to`, every seq in between included,
    /// so the slice verifies even where recording times are not monotonic.
    /// Without `to` the range ends at the stored head, read once here: rows
    /// appended while an export streams are left for the next one.
    pub async fn seq_range(
        &self,
        tenant: &str,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<SeqRange, StoreError> {
        let first = match from {
            None => Some(1),
            Some(from) => {
                let (first,): (Option<i64>,) = sqlx::query_as(
                    "SELECT MIN(seq) FROM rm_audit WHERE tenant_id = $1 AND recorded_at >= $2",
                )
                .bind(tenant)
                .bind(from)
                .fetch_one(&self.pool)
                .await?;
                first
            }
        };
        let (last, head) = match to {
            None => {
                let head = self.head(tenant).await?;
                (head.as_ref().map_or(0, |h| h.seq), head)
            }
            Some(to) => {
                let (last,): (Option<i64>,) = sqlx::query_as(
                    "SELECT MAX(seq) FROM rm_audit WHERE tenant_id = $1 AND recorded_at < $2",
                )
                .bind(tenant)
                .bind(to)
                .fetch_one(&self.pool)
                .await?;
                (last.unwrap_or(0), None)
            }
        };
        Ok(match first {
            Some(first) => SeqRange { first, last, head },
            None => SeqRange {
                first: 1,
                last: 0,
                head: None,
            },
        })
    }

    /// Every row of every tenant in a stable order, and every head, for
    /// comparing a replayed read model with the live one.
    pub async fn snapshot(&self) -> Result<(Vec<AuditRow>, Vec<(String, Head)>), StoreError> {
        let rows: Vec<Stored> = sqlx::query_as(&format!(
            "SELECT {} FROM rm_audit ORDER BY tenant_id, seq",
            columns()
        ))
        .fetch_all(&self.pool)
        .await?;
        let heads: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT tenant_id, seq, hash FROM rm_audit_heads ORDER BY tenant_id")
                .fetch_all(&self.pool)
                .await?;
        Ok((
            rows.into_iter().map(|Stored(row)| row).collect(),
            heads
                .into_iter()
                .map(|(t, seq, hash)| (t, Head { seq, hash }))
                .collect(),
        ))
    }
}
