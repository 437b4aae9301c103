//! Writing events: every append, on both backends, is one multi-row
//! INSERT of [`Staged`] rows ([`append_all`]), atomic on its own; the
//! primary key `(aggregate_type, aggregate_id, sequence)` turns a writer
//! that lost a race into a conflict. PostgreSQL returns where each event
//! landed in the log. Snapshots are stored here too, after an append that
//! crosses a multiple of [`SNAPSHOT_EVERY`].

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;

use crate::db::Database;
use crate::{GlobalLog, Position, StoreError};

/// What a successful command appended.
#[derive(Debug, Clone)]
pub struct Committed {
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    /// Sequence of the last appended event; `None` if the command was a no-op.
    pub last_sequence: Option<i64>,
    /// Where that event sits in the global log, when the append learnt it
    /// (PostgreSQL returns it; see [`crate::Repository::position`]).
    pub position: Option<Position>,
}

impl Committed {
    /// Where the last event sits in `log` (`None` for a no-op): as the
    /// append answered (PostgreSQL), else looked up.
    pub async fn locate(&self, log: &GlobalLog) -> Result<Option<Position>, StoreError> {
        match (self.position, self.last_sequence) {
            (Some(position), _) => Ok(Some(position)),
            (None, Some(sequence)) => {
                log.position_of(self.aggregate_type, &self.aggregate_id, sequence)
                    .await
            }
            (None, None) => Ok(None),
        }
    }
}

/// A stream gets a snapshot of its state every this many events.
pub const SNAPSHOT_EVERY: i64 = 100;

/// The events one or more commands decided for one aggregate, not yet
/// written (see [`crate::Repository::stage`]).
pub struct Staged {
    pub(crate) aggregate_type: &'static str,
    pub(crate) aggregate_id: String,
    pub(crate) rows: Vec<StagedEvent>,
    /// Bumped after the append, to wake this process's projectors.
    pub(crate) appended: Arc<watch::Sender<u64>>,
    /// The state after the rows, when they cross a snapshot boundary.
    pub(crate) snapshot: Option<String>,
}

/// Whether a stream going from sequence `from` to `to` crosses a multiple
/// of [`SNAPSHOT_EVERY`].
pub(crate) fn crosses(from: i64, to: i64) -> bool {
    from / SNAPSHOT_EVERY != to / SNAPSHOT_EVERY
}

/// Stores `state` as the snapshot of a stream at sequence `to`. Best
/// effort: a missing snapshot only costs a longer load.
async fn store_snapshot(db: &Database, aggregate_type: &str, id: &str, to: i64, state: &str) {
    // PostgreSQL's column is json; SQLite's is text (and there a CAST to
    // an unknown type name would apply numeric affinity).
    let payload = if db.is_postgres() {
        "CAST($5 AS json)"
    } else {
        "$5"
    };
    let sql = format!(
        "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload)
         VALUES ($1, $2, $3, $4, {payload}) ON CONFLICT DO NOTHING"
    );
    let result = sqlx::query(&sql)
        .bind(aggregate_type)
        .bind(id)
        .bind(to)
        .bind(to / SNAPSHOT_EVERY)
        .bind(state)
        .execute(&db.any)
        .await;
    if let Err(error) = result {
        tracing::warn!(aggregate = aggregate_type, %error, "snapshot not stored");
    }
}

/// One event of a [`Staged`] change, serialized.
pub(crate) struct StagedEvent {
    pub(crate) sequence: i64,
    pub(crate) event_type: String,
    pub(crate) event_version: String,
    pub(crate) payload: String,
    pub(crate) metadata: String,
}

/// Appends the staged changes of several aggregates all or nothing: one
/// multi-row INSERT, which is atomic on both backends. `Ok(None)` when a
/// stream moved on since it was loaded (the primary key refuses the
/// sequence): nothing was written and the caller decides again on fresh
/// state. What was written is returned per aggregate, in order. Counted as
/// one command per aggregate.
pub async fn append_all(
    db: &Database,
    staged: &[Staged],
) -> Result<Option<Vec<Committed>>, StoreError> {
    let result = insert(db, staged).await;
    let outcome = match &result {
        Ok(Some(_)) => "ok",
        Ok(None) => "conflict",
        Err(_) => "error",
    };
    for aggregate in staged {
        metrics::counter!("herald_commands_total", "aggregate" => aggregate.aggregate_type, "outcome" => outcome)
            .increment(1);
    }
    result
}

/// [`append_all`] without counting commands: every append goes through here.
pub(crate) async fn insert(
    db: &Database,
    staged: &[Staged],
) -> Result<Option<Vec<Committed>>, StoreError> {
    let count: usize = staged.iter().map(|s| s.rows.len()).sum();
    // PostgreSQL's payload columns are json; SQLite's are text. PostgreSQL
    // answers where each event landed in the log; SQLite assigns the
    // position in a trigger after the row, too late for RETURNING.
    let (json, returning): (fn(usize) -> String, _) = if db.is_postgres() {
        (
            |n| format!("CAST(${n} AS json)"),
            " RETURNING aggregate_type, aggregate_id, sequence, transaction_id::text::bigint, global_position",
        )
    } else {
        (|n| format!("${n}"), "")
    };
    let values: Vec<String> = (0..count)
        .map(|r| {
            let n = r * 7;
            format!(
                "(${}, ${}, ${}, ${}, ${}, {}, {})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5,
                json(n + 6),
                json(n + 7)
            )
        })
        .collect();
    let positions: HashMap<(String, String, i64), Position> = if count == 0 {
        HashMap::new()
    } else {
        let sql = format!(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) VALUES {}{returning}",
            values.join(", ")
        );
        let mut query = sqlx::query_as::<_, (String, String, i64, i64, i64)>(&sql);
        for aggregate in staged {
            for row in &aggregate.rows {
                query = query
                    .bind(aggregate.aggregate_type)
                    .bind(aggregate.aggregate_id.as_str())
                    .bind(row.sequence)
                    .bind(row.event_type.as_str())
                    .bind(row.event_version.as_str())
                    .bind(row.payload.as_str())
                    .bind(row.metadata.as_str());
            }
        }
        let turn = db.write_turn().await;
        let executed = query.fetch_all(&db.any).await;
        drop(turn);
        match executed {
            Ok(rows) => rows
                .into_iter()
                .map(|(kind, id, sequence, tx, seq)| ((kind, id, sequence), Position { tx, seq }))
                .collect(),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(None),
            Err(e) => return Err(StoreError::from(e)),
        }
    };
    if count > 0 {
        metrics::counter!("herald_events_appended_total").increment(count as u64);
        if let Some(first) = staged.first() {
            first.appended.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
    let mut committed = Vec::with_capacity(staged.len());
    for s in staged {
        let last_sequence = s.rows.last().map(|r| r.sequence);
        if let (Some(state), Some(to)) = (&s.snapshot, last_sequence) {
            store_snapshot(db, s.aggregate_type, &s.aggregate_id, to, state).await;
        }
        committed.push(Committed {
            aggregate_type: s.aggregate_type,
            aggregate_id: s.aggregate_id.clone(),
            last_sequence,
            position: last_sequence.and_then(|to| {
                let key = (s.aggregate_type.to_string(), s.aggregate_id.clone(), to);
                positions.get(&key).copied()
            }),
        });
    }
    Ok(Some(committed))
}
