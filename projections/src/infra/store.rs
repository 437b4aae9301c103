//! The write side: cqrs-es's persisted event store on PostgreSQL (postgres-es)
//! or SQLite (sqlite-es), and [`Repository::execute`], which loads an
//! aggregate, decides, and appends with the command's metadata, retrying a
//! bounded number of times when another writer got there first.
//!
//! Only the plain event store is used: cqrs-es 0.5's aggregate and snapshot
//! stores apply new events twice. Queries are not dispatched in-process either;
//! read models follow the global log (see `runner`).

use std::collections::HashMap;
use std::sync::Arc;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{
    EventStoreAggregateContext, PersistedEventRepository, PersistedEventStore, PersistenceError,
    ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::{
    Aggregate, AggregateContext, AggregateError, DomainEvent, EventEnvelope, EventStore,
};
use domain::metadata::EventMetadata;
use postgres_es::PostgresEventRepository;
use sqlite_es::SqliteEventRepository;
use tokio::sync::watch;

use crate::db::{Backend, Database};
use crate::{GlobalLog, Position, StoreError};

/// How often a command is retried after an optimistic-concurrency conflict.
pub const MAX_CONFLICT_RETRIES: usize = 5;

/// postgres-es's repository, except that an append is one multi-row INSERT
/// statement instead of an explicit transaction around one INSERT per event:
/// a single statement is atomic already, and the primary key still turns a
/// concurrent writer into an optimistic-lock conflict. That halves the round
/// trips of a command (load, append) on the hot path.
pub struct PgEventRepository {
    inner: PostgresEventRepository,
    pool: sqlx::PgPool,
}

impl PersistedEventRepository for PgEventRepository {
    async fn get_events<A: Aggregate>(
        &self,
        id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.inner.get_events::<A>(id).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.inner.get_last_events::<A>(id, last_sequence).await
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        self.inner.get_snapshot::<A>(id).await
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, serde_json::Value, usize)>,
    ) -> Result<(), PersistenceError> {
        if snapshot_update.is_some() || events.is_empty() {
            return self.inner.persist::<A>(events, snapshot_update).await;
        }
        let rows: Vec<String> = (0..events.len())
            .map(|r| {
                let n = r * 7;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5,
                    n + 6,
                    n + 7
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) VALUES {}",
            rows.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for event in events {
            query = query
                .bind(A::TYPE)
                .bind(event.aggregate_id.as_str())
                .bind(event.sequence as i64)
                .bind(event.event_type.as_str())
                .bind(event.event_version.as_str())
                .bind(&event.payload)
                .bind(&event.metadata);
        }
        match query.execute(&self.pool).await {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {
                Err(PersistenceError::OptimisticLockError)
            }
            Err(e @ (sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)) => {
                Err(PersistenceError::ConnectionError(Box::new(e)))
            }
            Err(e) => Err(PersistenceError::UnknownError(Box::new(e))),
        }
    }

    async fn stream_events<A: Aggregate>(
        &self,
        id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        self.inner.stream_events::<A>(id).await
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        self.inner.stream_all_events::<A>().await
    }
}

/// The cqrs-es event store of either backend.
pub enum AnyEventStore<A: Aggregate> {
    Postgres(PersistedEventStore<PgEventRepository, A>),
    Sqlite(PersistedEventStore<SqliteEventRepository, A>),
}

impl<A: Aggregate> AnyEventStore<A> {
    fn new(db: &Database) -> Self {
        match &db.backend {
            Backend::Postgres(pool) => Self::Postgres(
                PersistedEventStore::new_event_store(PgEventRepository {
                    inner: PostgresEventRepository::new(pool.clone()),
                    pool: pool.clone(),
                })
                .with_upcasters(domain::upcast::upcasters()),
            ),
            Backend::Sqlite(pool) => Self::Sqlite(
                PersistedEventStore::new_event_store(SqliteEventRepository::new(pool.clone()))
                    .with_upcasters(domain::upcast::upcasters()),
            ),
        }
    }
}

impl<A: Aggregate> EventStore<A> for AnyEventStore<A> {
    type AC = EventStoreAggregateContext<A>;

    async fn load_events(
        &self,
        id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        match self {
            Self::Postgres(s) => s.load_events(id).await,
            Self::Sqlite(s) => s.load_events(id).await,
        }
    }

    async fn load_aggregate(&self, id: &str) -> Result<Self::AC, AggregateError<A::Error>> {
        match self {
            Self::Postgres(s) => s.load_aggregate(id).await,
            Self::Sqlite(s) => s.load_aggregate(id).await,
        }
    }

    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: Self::AC,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        match self {
            Self::Postgres(s) => s.commit(events, context, metadata).await,
            Self::Sqlite(s) => s.commit(events, context, metadata).await,
        }
    }
}

/// Why a command did not produce events.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The aggregate refused the command.
    #[error(transparent)]
    Rejected(E),
    /// Other writers kept winning the race; the caller may try again.
    #[error("the {0} was changed concurrently; try again")]
    Conflict(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An aggregate's state and the sequence of its last event.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub id: String,
    pub state: A,
    pub sequence: usize,
}

/// What a successful command appended.
#[derive(Debug, Clone)]
pub struct Committed {
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    /// Sequence of the last appended event; `None` if the command was a no-op.
    pub last_sequence: Option<i64>,
}

/// Loads and changes aggregates of type `A`.
pub struct Repository<A: Aggregate> {
    store: AnyEventStore<A>,
    log: GlobalLog,
    db: Database,
    appended: Arc<watch::Sender<u64>>,
}

/// A stream gets a snapshot of its state every this many events.
pub const SNAPSHOT_EVERY: i64 = 100;

/// Loads the latest snapshot (if any) and the events after it in one round
/// trip; the snapshot row sorts first because its sequence is the lowest.
const LOAD_SQL: &str = "
WITH snap AS (
    SELECT last_sequence, CAST(payload AS text) AS payload FROM snapshots
     WHERE aggregate_type = $1 AND aggregate_id = $2
     ORDER BY last_sequence DESC LIMIT 1)
SELECT payload AS snapshot, last_sequence AS sequence, '' AS event_type, '' AS event_version, '' AS payload
  FROM snap
UNION ALL
SELECT NULL, sequence, event_type, event_version, CAST(payload AS text)
  FROM events
 WHERE aggregate_type = $1 AND aggregate_id = $2
   AND sequence > COALESCE((SELECT last_sequence FROM snap), 0)
ORDER BY 2";

impl<A> Repository<A>
where
    A: Aggregate<Services = ()>,
    A::Command: Clone,
{
    /// A repository over `db`; `appended` is bumped after every commit so
    /// projectors in this process wake at once.
    pub fn new(db: &Database, appended: Arc<watch::Sender<u64>>) -> Self {
        Self {
            store: AnyEventStore::new(db),
            log: GlobalLog::new(db.clone()),
            db: db.clone(),
            appended,
        }
    }

    /// The aggregate's current state (`Default` if it has no events).
    #[tracing::instrument(level = "debug", skip_all, fields(aggregate = A::TYPE, aggregate_id = id), err)]
    pub async fn load(&self, id: &str) -> Result<A, StoreError> {
        Ok(self.load_context(id).await?.aggregate)
    }

    /// The aggregate from its latest snapshot plus the events after it. A
    /// snapshot that no longer deserializes (the state's shape changed) is
    /// ignored and the whole stream is replayed through cqrs-es instead.
    async fn load_context(&self, id: &str) -> Result<EventStoreAggregateContext<A>, StoreError> {
        type Row = (Option<String>, i64, String, String, String);
        let rows: Vec<Row> = sqlx::query_as(LOAD_SQL)
            .bind(A::TYPE)
            .bind(id)
            .fetch_all(&self.db.any)
            .await?;
        let mut rows = rows.into_iter().peekable();
        let mut context = EventStoreAggregateContext {
            aggregate_id: id.to_string(),
            aggregate: A::default(),
            current_sequence: 0,
            current_snapshot: None,
        };
        if let Some((Some(snapshot), sequence, ..)) = rows.peek() {
            match serde_json::from_str(snapshot) {
                Ok(state) => {
                    context.aggregate = state;
                    context.current_sequence = *sequence as usize;
                    rows.next();
                }
                Err(error) => {
                    tracing::warn!(aggregate = A::TYPE, %error, "ignoring a stale snapshot");
                    return self.store.load_aggregate(id).await.map_err(store_error);
                }
            }
        }
        for (_, sequence, event_type, event_version, payload) in rows {
            let bad = |source| StoreError::Decode {
                position: format!("{}/{id}/{sequence}", A::TYPE),
                source,
            };
            let payload = serde_json::from_str(&payload).map_err(bad)?;
            let event = domain::upcast::upcast(SerializedEvent::new(
                id.to_string(),
                sequence as usize,
                A::TYPE.to_string(),
                event_type,
                event_version,
                payload,
                serde_json::Value::Null,
            ));
            context
                .aggregate
                .apply(serde_json::from_value(event.payload).map_err(bad)?);
            context.current_sequence = sequence as usize;
        }
        Ok(context)
    }

    /// Stores the state after `sequence` when the stream crossed a multiple
    /// of [`SNAPSHOT_EVERY`]. Best effort: a missing snapshot only costs a
    /// longer load.
    async fn snapshot(&self, id: &str, from: i64, to: i64, state: &str) {
        if from / SNAPSHOT_EVERY == to / SNAPSHOT_EVERY {
            return;
        }
        // PostgreSQL's column is json; SQLite's is text (and there a CAST to
        // an unknown type name would apply numeric affinity).
        let payload = if self.db.is_postgres() {
            "CAST($5 AS json)"
        } else {
            "$5"
        };
        let sql = format!(
            "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload)
             VALUES ($1, $2, $3, $4, {payload}) ON CONFLICT DO NOTHING"
        );
        let result = sqlx::query(&sql)
            .bind(A::TYPE)
            .bind(id)
            .bind(to)
            .bind(to / SNAPSHOT_EVERY)
            .bind(state)
            .execute(&self.db.any)
            .await;
        if let Err(error) = result {
            tracing::warn!(aggregate = A::TYPE, %error, "snapshot not stored");
        }
    }

    /// Handles `command` against aggregate `id` and appends the resulting
    /// events with `metadata`, retrying on optimistic-concurrency conflicts.
    #[tracing::instrument(level = "debug", skip_all, fields(aggregate = A::TYPE, aggregate_id = id, tenant = %metadata.tenant_id))]
    pub async fn execute(
        &self,
        id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed, CommandError<A::Error>> {
        self.run(id, command, metadata, false, false).await
    }

    /// Like [`Repository::execute`], for an id the caller has just generated:
    /// the first attempt starts from the empty state without loading, so a
    /// create is one round trip. Should the id exist after all, the primary
    /// key refuses the append and the retry decides on the loaded state.
    #[tracing::instrument(level = "debug", skip_all, fields(aggregate = A::TYPE, aggregate_id = id, tenant = %metadata.tenant_id))]
    pub async fn create(
        &self,
        id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed, CommandError<A::Error>> {
        self.run(id, command, metadata, true, false).await
    }

    /// Like [`Repository::execute`] (or [`Repository::create`] when
    /// `fresh`), applied at most once: `metadata.causation_id` names this
    /// command uniquely, and when the aggregate already holds events caused
    /// by it (an earlier attempt committed, its answer was lost) those are
    /// what this returns, and nothing is appended.
    #[tracing::instrument(level = "debug", skip_all, fields(aggregate = A::TYPE, aggregate_id = id, tenant = %metadata.tenant_id))]
    pub async fn execute_once(
        &self,
        id: &str,
        command: A::Command,
        metadata: &EventMetadata,
        fresh: bool,
    ) -> Result<Committed, CommandError<A::Error>> {
        self.run(id, command, metadata, fresh, true).await
    }

    /// The last event of aggregate `id` caused by command `causation`.
    async fn applied(&self, id: &str, causation: uuid::Uuid) -> Result<Option<i64>, StoreError> {
        let causation_of = if self.db.is_postgres() {
            "metadata->>'causation_id'"
        } else {
            "json_extract(metadata, '$.causation_id')"
        };
        let (sequence,): (Option<i64>,) = sqlx::query_as(&format!(
            "SELECT MAX(sequence) FROM events
              WHERE aggregate_type = $1 AND aggregate_id = $2 AND {causation_of} = $3"
        ))
        .bind(A::TYPE)
        .bind(id)
        .bind(causation.to_string())
        .fetch_one(&self.db.any)
        .await?;
        Ok(sequence)
    }

    async fn run(
        &self,
        id: &str,
        command: A::Command,
        metadata: &EventMetadata,
        fresh: bool,
        once: bool,
    ) -> Result<Committed, CommandError<A::Error>> {
        let started = std::time::Instant::now();
        let result = self.execute_inner(id, command, metadata, fresh, once).await;
        // Rejections and conflicts are the caller's business; only store
        // failures are errors of ours.
        let outcome = match &result {
            Ok(_) => "ok",
            Err(CommandError::Rejected(_)) => "rejected",
            Err(CommandError::Conflict(_)) => "conflict",
            Err(CommandError::Store(error)) => {
                tracing::error!(%error, cause = ?std::error::Error::source(error), "command failed");
                "error"
            }
        };
        metrics::counter!("herald_commands_total", "aggregate" => A::TYPE, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("herald_command_duration_seconds", "aggregate" => A::TYPE)
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn execute_inner(
        &self,
        id: &str,
        command: A::Command,
        metadata: &EventMetadata,
        fresh: bool,
        once: bool,
    ) -> Result<Committed, CommandError<A::Error>> {
        let map = metadata.to_map();
        for attempt in 0..=MAX_CONFLICT_RETRIES {
            let mut context = if fresh && attempt == 0 {
                EventStoreAggregateContext {
                    aggregate_id: id.to_string(),
                    aggregate: A::default(),
                    current_sequence: 0,
                    current_snapshot: None,
                }
            } else {
                if once && let Some(sequence) = self.applied(id, metadata.causation_id).await? {
                    return Ok(Committed {
                        aggregate_type: A::TYPE,
                        aggregate_id: id.to_string(),
                        last_sequence: Some(sequence),
                    });
                }
                self.load_context(id).await?
            };
            let sink = EventSink::default();
            context
                .aggregate()
                .handle(command.clone(), &(), &sink)
                .await
                .map_err(CommandError::Rejected)?;
            let events = sink.collect().await;
            if let Some(committed) = self.append(id, events, context, &map).await? {
                return Ok(committed);
            }
        }
        Err(CommandError::Conflict(A::TYPE))
    }

    /// Appends the events a command produced against `context`; `None` when
    /// another writer got there first (the caller reloads and retries).
    async fn append(
        &self,
        id: &str,
        events: Vec<A::Event>,
        context: EventStoreAggregateContext<A>,
        map: &HashMap<String, String>,
    ) -> Result<Option<Committed>, CommandError<A::Error>> {
        if events.is_empty() {
            return Ok(Some(Committed {
                aggregate_type: A::TYPE,
                aggregate_id: id.to_string(),
                last_sequence: None,
            }));
        }
        let count = events.len() as u64;
        let from = context.current_sequence as i64;
        let to = from + count as i64;
        let state = (from / SNAPSHOT_EVERY != to / SNAPSHOT_EVERY)
            .then(|| serde_json::to_string(&context.aggregate).expect("state serializes"));
        let turn = self.db.write_turn().await;
        let appended = self.store.commit(events, context, map.clone()).await;
        drop(turn);
        match appended {
            Ok(envelopes) => {
                metrics::counter!("herald_events_appended_total").increment(count);
                self.appended.send_modify(|n| *n = n.wrapping_add(1));
                if let Some(state) = state {
                    self.snapshot(id, from, to, &state).await;
                }
                Ok(Some(Committed {
                    aggregate_type: A::TYPE,
                    aggregate_id: id.to_string(),
                    last_sequence: envelopes.last().map(|e| e.sequence as i64),
                }))
            }
            Err(AggregateError::AggregateConflict) => Ok(None),
            Err(other) => Err(store_error(other).into()),
        }
    }

    /// The aggregate with the sequence it was read at, for a caller that
    /// issues several commands in a row (see [`Repository::execute_loaded`]).
    pub async fn load_versioned(&self, id: &str) -> Result<Loaded<A>, StoreError> {
        let context = self.load_context(id).await?;
        Ok(Loaded {
            id: id.to_string(),
            state: context.aggregate,
            sequence: context.current_sequence,
        })
    }

    /// Like [`Repository::execute`], against a state the caller already
    /// holds: no load round trip while nobody else writes the stream, and
    /// `loaded` is the new state afterwards. A concurrent writer makes the
    /// append conflict; then the stream is reloaded and the command decided
    /// again on the fresh state, as `execute` does.
    pub async fn execute_loaded(
        &self,
        loaded: &mut Loaded<A>,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed, CommandError<A::Error>>
    where
        A: Clone,
    {
        let map = metadata.to_map();
        for attempt in 0..=MAX_CONFLICT_RETRIES {
            if attempt > 0 {
                *loaded = self.load_versioned(&loaded.id).await?;
            }
            let mut next = loaded.state.clone();
            let sink = EventSink::default();
            next.handle(command.clone(), &(), &sink)
                .await
                .map_err(CommandError::Rejected)?;
            let events = sink.collect().await;
            let count = events.len();
            // As in `execute_inner`, the context holds the state after the
            // events (a snapshot taken on this append must include them).
            let context = EventStoreAggregateContext {
                aggregate_id: loaded.id.clone(),
                aggregate: next.clone(),
                current_sequence: loaded.sequence,
                current_snapshot: None,
            };
            if let Some(committed) = self.append(&loaded.id, events, context, &map).await? {
                // The sink applied the events to `next` as they were written.
                loaded.state = next;
                loaded.sequence += count;
                return Ok(committed);
            }
        }
        Err(CommandError::Conflict(A::TYPE))
    }

    /// Decides `command` on `loaded` without appending: the events wait in
    /// the returned [`Staged`] for [`append_all`], which writes the changes
    /// of several aggregates at once. `loaded` becomes the state after them,
    /// so a second command on the same aggregate stages on top of the first.
    pub async fn stage(
        &self,
        loaded: &mut Loaded<A>,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Staged, CommandError<A::Error>>
    where
        A: Clone,
    {
        let mut next = loaded.state.clone();
        let sink = EventSink::default();
        next.handle(command, &(), &sink)
            .await
            .map_err(CommandError::Rejected)?;
        let metadata = serde_json::to_string(&metadata.to_map()).expect("metadata serializes");
        let mut rows = Vec::new();
        for event in sink.collect().await {
            loaded.sequence += 1;
            rows.push(StagedEvent {
                sequence: loaded.sequence as i64,
                event_type: event.event_type(),
                event_version: event.event_version(),
                payload: serde_json::to_string(&event).expect("events serialize"),
                metadata: metadata.clone(),
            });
        }
        loaded.state = next;
        Ok(Staged {
            aggregate_type: A::TYPE,
            aggregate_id: loaded.id.clone(),
            rows,
            appended: self.appended.clone(),
        })
    }

    /// Where the committed events sit in the global log.
    pub async fn position(&self, committed: &Committed) -> Result<Option<Position>, StoreError> {
        match committed.last_sequence {
            Some(seq) => {
                self.log
                    .position_of(committed.aggregate_type, &committed.aggregate_id, seq)
                    .await
            }
            None => Ok(None),
        }
    }
}

/// The events one or more commands decided for one aggregate, not yet
/// written (see [`Repository::stage`]).
pub struct Staged {
    aggregate_type: &'static str,
    aggregate_id: String,
    rows: Vec<StagedEvent>,
    appended: Arc<watch::Sender<u64>>,
}

struct StagedEvent {
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: String,
    metadata: String,
}

/// Appends the staged changes of several aggregates all or nothing: one
/// multi-row INSERT, which is atomic on both backends. `Ok(None)` when a
/// stream moved on since it was loaded (the primary key refuses the
/// sequence): nothing was written and the caller decides again on fresh
/// state. What was written is returned per aggregate, in order.
pub async fn append_all(
    db: &Database,
    staged: &[Staged],
) -> Result<Option<Vec<Committed>>, StoreError> {
    let committed = || {
        staged
            .iter()
            .map(|s| Committed {
                aggregate_type: s.aggregate_type,
                aggregate_id: s.aggregate_id.clone(),
                last_sequence: s.rows.last().map(|r| r.sequence),
            })
            .collect()
    };
    let count: usize = staged.iter().map(|s| s.rows.len()).sum();
    if count == 0 {
        return Ok(Some(committed()));
    }
    // PostgreSQL's payload columns are json; SQLite's are text.
    let json = |n: usize| {
        if db.is_postgres() {
            format!("CAST(${n} AS json)")
        } else {
            format!("${n}")
        }
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
    let sql = format!(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) VALUES {}",
        values.join(", ")
    );
    let mut query = sqlx::query(&sql);
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
    let executed = query.execute(&db.any).await;
    drop(turn);
    let result = match executed {
        Ok(_) => {
            metrics::counter!("herald_events_appended_total").increment(count as u64);
            if let Some(first) = staged.first() {
                first.appended.send_modify(|n| *n = n.wrapping_add(1));
            }
            Ok(Some(committed()))
        }
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
        Err(e) => Err(StoreError::from(e)),
    };
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

/// Keeps the database or decoding error cqrs-es wraps as the source.
pub(crate) fn store_error<E: std::error::Error>(err: AggregateError<E>) -> StoreError {
    match err {
        AggregateError::DatabaseConnectionError(source)
        | AggregateError::DeserializationError(source)
        | AggregateError::UnexpectedError(source) => StoreError::Persistence(source),
        // Neither a rejection nor a conflict comes out of a load or an
        // append here (`execute` handles both before calling this), and
        // `E` need not be `Send + Sync`: its text is enough.
        other @ (AggregateError::UserError(_) | AggregateError::AggregateConflict) => {
            StoreError::EventStore(other.to_string())
        }
    }
}
