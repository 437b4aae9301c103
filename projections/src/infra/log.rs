//! The global event log: every event of every aggregate in commit order.
//!
//! On PostgreSQL, concurrent transactions commit out of position order, so a
//! reader that follows `position > checkpoint` alone would skip an event whose
//! transaction commits after a later position was read. The log therefore
//! orders by `(transaction_id, global_position)` and only returns events whose
//! transaction is older than the oldest transaction still running
//! (`pg_snapshot_xmin(pg_current_snapshot())`): below that horizon no new event
//! can ever appear, so a checkpoint never jumps over one. On SQLite writers are
//! serialised, so the position assigned at insert time is commit order.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use cqrs_es::Aggregate;
use cqrs_es::persist::SerializedEvent;
use domain::metadata::EventMetadata;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::StoreError;
use crate::db::{Backend, Database};

/// A point in the global log. `tx` is the PostgreSQL transaction id (0 on
/// SQLite); positions compare as `(tx, seq)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub tx: i64,
    pub seq: i64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tx, self.seq)
    }
}

/// One event as read from the global log, already upcast to its current shape.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub position: Position,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: EventMetadata,
    /// The payload decoded into its aggregate's event enum by the first
    /// [`StoredEvent::event_of`], shared with every later caller (a replay
    /// hands one batch to every projection).
    typed: OnceLock<Arc<dyn Any + Send + Sync>>,
}

impl StoredEvent {
    /// Deserializes the payload into an aggregate's event enum.
    pub fn decode<E: DeserializeOwned>(&self) -> Result<E, StoreError> {
        E::deserialize(&self.payload).map_err(|source| self.undecodable(source))
    }

    /// The event as `A`'s event enum, or `None` when it belongs to another
    /// aggregate. Decoded once: every projection that reads the same
    /// `StoredEvent` (in a replay, every projection) shares the result.
    pub fn event_of<A: Aggregate>(&self) -> Result<Option<&A::Event>, StoreError>
    where
        A::Event: 'static,
    {
        if self.aggregate_type != A::TYPE {
            return Ok(None);
        }
        let typed = self.typed.get_or_init(|| {
            Arc::new(A::Event::deserialize(&self.payload).map_err(|e| e.to_string()))
        });
        // One aggregate type, one event enum: the cache holds `A`'s result.
        match typed.downcast_ref::<Result<A::Event, String>>() {
            Some(Ok(event)) => Ok(Some(event)),
            Some(Err(message)) => Err(self.undecodable(serde::de::Error::custom(message))),
            None => Err(self.undecodable(serde::de::Error::custom(format!(
                "decoded before as another type than {}'s events",
                A::TYPE
            )))),
        }
    }

    fn undecodable(&self, source: serde_json::Error) -> StoreError {
        StoreError::Decode {
            position: self.position.to_string(),
            source,
        }
    }
}

/// Reader of the global log.
#[derive(Clone, Debug)]
pub struct GlobalLog {
    db: Database,
}

const PG_READ: &str = "
SELECT transaction_id::text::bigint AS tx, global_position AS seq, aggregate_type, aggregate_id,
       sequence, event_type, event_version, payload::text AS payload, metadata::text AS metadata
  FROM events
 WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY transaction_id, global_position
 LIMIT $3";

const SQLITE_READ: &str = "
SELECT 0 AS tx, global_position AS seq, aggregate_type, aggregate_id,
       sequence, event_type, event_version, payload, metadata
  FROM events
 WHERE global_position > $1
 ORDER BY global_position
 LIMIT $2";

/// One row of the log query, the same for both backends.
#[derive(sqlx::FromRow)]
struct LogRow {
    tx: i64,
    seq: i64,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: String,
    metadata: String,
}

impl LogRow {
    fn decode(self) -> Result<StoredEvent, StoreError> {
        let position = Position {
            tx: self.tx,
            seq: self.seq,
        };
        let bad = |source| StoreError::Decode {
            position: position.to_string(),
            source,
        };
        let payload: Value = serde_json::from_str(&self.payload).map_err(bad)?;
        let meta_map: HashMap<String, String> =
            serde_json::from_str(&self.metadata).map_err(bad)?;
        let metadata = EventMetadata::from_map(&meta_map).ok_or_else(|| {
            bad(serde::de::Error::custom(
                "event metadata lacks tenant, actor or ids",
            ))
        })?;
        let upcast = domain::upcast::upcast(SerializedEvent::new(
            self.aggregate_id,
            self.sequence as usize,
            self.aggregate_type,
            self.event_type,
            self.event_version,
            payload,
            Value::Null,
        ));
        Ok(StoredEvent {
            position,
            aggregate_type: upcast.aggregate_type,
            aggregate_id: upcast.aggregate_id,
            sequence: self.sequence,
            event_type: upcast.event_type,
            event_version: upcast.event_version,
            payload: upcast.payload,
            metadata,
            typed: OnceLock::new(),
        })
    }
}

impl GlobalLog {
    /// A reader over `db`'s event table.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Up to `limit` events after `after`, in commit order.
    pub async fn read_after(
        &self,
        after: Position,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let query = match self.db.backend {
            Backend::Postgres(_) => sqlx::query_as::<_, LogRow>(PG_READ).bind(after.tx.to_string()),
            Backend::Sqlite(_) => sqlx::query_as::<_, LogRow>(SQLITE_READ),
        };
        let rows = query
            .bind(after.seq)
            .bind(limit)
            .fetch_all(&self.db.any)
            .await?;
        rows.into_iter().map(LogRow::decode).collect()
    }

    /// Every event of `tenant` on aggregates of `types` recorded at or before
    /// `until`, in commit order (time travel; not for hot paths).
    pub async fn tenant_history(
        &self,
        tenant: uuid::Uuid,
        types: &[&str],
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let (tx, tenant_of, order) = match self.db.backend {
            Backend::Postgres(_) => (
                "transaction_id::text::bigint",
                "metadata->>'tenant_id'",
                "transaction_id, global_position",
            ),
            Backend::Sqlite(_) => (
                "0",
                "json_extract(metadata, '$.tenant_id')",
                "global_position",
            ),
        };
        let types = types
            .iter()
            .map(|t| format!("'{}'", t.replace('\'', "")))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {tx} AS tx, global_position AS seq, aggregate_type, aggregate_id,
                    sequence, event_type, event_version, payload{cast} AS payload,
                    metadata{cast} AS metadata
               FROM events
              WHERE aggregate_type IN ({types}) AND {tenant_of} = $1
              ORDER BY {order}",
            cast = if matches!(self.db.backend, Backend::Postgres(_)) {
                "::text"
            } else {
                ""
            },
        );
        let rows = sqlx::query_as::<_, LogRow>(&sql)
            .bind(tenant.to_string())
            .fetch_all(&self.db.any)
            .await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let event = row.decode()?;
            if event.metadata.recorded_at <= until {
                events.push(event);
            }
        }
        Ok(events)
    }

    /// Where an aggregate's event `sequence` sits in the log.
    pub async fn position_of(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        sequence: i64,
    ) -> Result<Option<Position>, StoreError> {
        let tx = match self.db.backend {
            Backend::Postgres(_) => "transaction_id::text::bigint",
            Backend::Sqlite(_) => "0",
        };
        let row: Option<(i64, i64)> = sqlx::query_as(&format!(
            "SELECT {tx}, global_position FROM events
              WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3"
        ))
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(sequence)
        .fetch_optional(&self.db.any)
        .await?;
        Ok(row.map(|(tx, seq)| Position { tx, seq }))
    }

    /// The highest global position written so far (0 for an empty log).
    pub async fn head(&self) -> Result<i64, StoreError> {
        let (head,): (Option<i64>,) = sqlx::query_as("SELECT MAX(global_position) FROM events")
            .fetch_one(&self.db.any)
            .await?;
        Ok(head.unwrap_or(0))
    }

    /// Where the log's latest committed event sits (`None` for an empty log).
    pub async fn last(&self) -> Result<Option<Position>, StoreError> {
        let sql = match self.db.backend {
            Backend::Postgres(_) => {
                "SELECT transaction_id::text::bigint, global_position FROM events
                  ORDER BY transaction_id DESC, global_position DESC LIMIT 1"
            }
            Backend::Sqlite(_) => {
                "SELECT 0, global_position FROM events ORDER BY global_position DESC LIMIT 1"
            }
        };
        let row: Option<(i64, i64)> = sqlx::query_as(sql).fetch_optional(&self.db.any).await?;
        Ok(row.map(|(tx, seq)| Position { tx, seq }))
    }

    /// Number of events in the log.
    pub async fn count(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events")
            .fetch_one(&self.db.any)
            .await?;
        Ok(n)
    }
}
