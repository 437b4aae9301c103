//! The write side: [`Repository::execute`] loads an aggregate (from its
//! latest snapshot, or from what this process remembers of it), decides,
//! and appends with the command's metadata, retrying a bounded number of
//! times when another writer got there first. Every append, on both
//! backends, is one multi-row INSERT ([`append_all`]): atomic, and the
//! primary key turns a concurrent writer into a conflict. cqrs-es supplies
//! the `Aggregate` trait and the event sink; its persisted event store
//! (postgres-es, sqlite-es) only loads a stream whose snapshot is stale.
//!
//! cqrs-es 0.5's aggregate and snapshot stores are not used: they apply new
//! events twice. Queries are not dispatched in-process either; read models
//! follow the global log (see `runner`).

use std::sync::Arc;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventStore, SerializedEvent};
use cqrs_es::{Aggregate, AggregateContext, AggregateError, DomainEvent, EventStore};
use domain::metadata::EventMetadata;
use postgres_es::PostgresEventRepository;
use sqlite_es::SqliteEventRepository;
use tokio::sync::watch;

use crate::db::{Backend, Database};
use crate::infra::append::{StagedEvent, crosses, insert};
use crate::infra::group::GroupCommit;
use crate::{GlobalLog, Position, StoreError};

pub use crate::infra::append::{Committed, SNAPSHOT_EVERY, Staged, append_all};

/// How often a command is retried after an optimistic-concurrency conflict.
pub const MAX_CONFLICT_RETRIES: usize = 5;

/// cqrs-es's event store of either backend, kept for one job: loading a
/// stream whose snapshot no longer deserializes, event by event through
/// the upcasters. Appends never go through it (see [`append_all`]).
pub enum AnyEventStore<A: Aggregate> {
    Postgres(PersistedEventStore<PostgresEventRepository, A>),
    Sqlite(PersistedEventStore<SqliteEventRepository, A>),
}

impl<A: Aggregate> AnyEventStore<A> {
    fn new(db: &Database) -> Self {
        match &db.backend {
            Backend::Postgres(pool) => Self::Postgres(
                PersistedEventStore::new_event_store(PostgresEventRepository::new(pool.clone()))
                    .with_upcasters(domain::upcast::upcasters()),
            ),
            Backend::Sqlite(pool) => Self::Sqlite(
                PersistedEventStore::new_event_store(SqliteEventRepository::new(pool.clone()))
                    .with_upcasters(domain::upcast::upcasters()),
            ),
        }
    }

    async fn load_aggregate(
        &self,
        id: &str,
    ) -> Result<EventStoreAggregateContext<A>, AggregateError<A::Error>> {
        match self {
            Self::Postgres(s) => s.load_aggregate(id).await,
            Self::Sqlite(s) => s.load_aggregate(id).await,
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

/// Loads and changes aggregates of type `A`.
pub struct Repository<A: Aggregate> {
    store: AnyEventStore<A>,
    log: GlobalLog,
    db: Database,
    appended: Arc<watch::Sender<u64>>,
    /// The last state this process read or wrote of recently used
    /// aggregates, with its sequence: a command on one is decided on it and
    /// appended in one round trip, without a load. Never trusted blindly
    /// (another process may have written since): an append that succeeds
    /// proves the state was current; a conflict, a refusal or a no-op
    /// decided on it is decided again on a fresh load.
    recent: moka::future::Cache<String, (A, usize)>,
    /// Writes the appends of concurrent [`Repository::execute_loaded`] calls.
    group: GroupCommit,
}

/// How many aggregates of one type a repository remembers.
const RECENT_AGGREGATES: u64 = 8_192;

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
    A: Aggregate<Services = ()> + Clone + 'static,
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
            recent: moka::future::Cache::new(RECENT_AGGREGATES),
            group: GroupCommit::default(),
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
        let context = self.read_context(id).await?;
        self.remember(id, &context.aggregate, context.current_sequence)
            .await;
        Ok(context)
    }

    async fn read_context(&self, id: &str) -> Result<EventStoreAggregateContext<A>, StoreError> {
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

    /// Keeps `state` at `sequence` in [`Repository::recent`].
    async fn remember(&self, id: &str, state: &A, sequence: usize) {
        self.recent
            .insert(id.to_string(), (state.clone(), sequence))
            .await;
    }

    /// The remembered state of `id` as a context to decide on, if any.
    async fn recall(&self, id: &str) -> Option<EventStoreAggregateContext<A>> {
        let (aggregate, current_sequence) = self.recent.get(id).await?;
        Some(EventStoreAggregateContext {
            aggregate_id: id.to_string(),
            aggregate,
            current_sequence,
            current_snapshot: None,
        })
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
        let metadata_json = metadata_json(metadata);
        let mut conflicts = 0;
        // The first decision may start from the remembered state; after a
        // conflict or a doubt the stream is read.
        let mut recall = true;
        loop {
            let (mut context, recalled) = if fresh && conflicts == 0 {
                let empty = EventStoreAggregateContext {
                    aggregate_id: id.to_string(),
                    aggregate: A::default(),
                    current_sequence: 0,
                    current_snapshot: None,
                };
                (empty, false)
            } else {
                if once && let Some(sequence) = self.applied(id, metadata.causation_id).await? {
                    return Ok(Committed {
                        aggregate_type: A::TYPE,
                        aggregate_id: id.to_string(),
                        last_sequence: Some(sequence),
                        position: None,
                    });
                }
                let recalled = if recall { self.recall(id).await } else { None };
                match recalled {
                    Some(context) => (context, true),
                    None => (self.load_context(id).await?, false),
                }
            };
            let sink = EventSink::default();
            let decided = context
                .aggregate()
                .handle(command.clone(), &(), &sink)
                .await;
            let events = sink.collect().await;
            if recalled && (decided.is_err() || events.is_empty()) {
                // Only an append proves a remembered state current: a
                // refusal or a no-op is decided again on the stored stream.
                recall = false;
                continue;
            }
            decided.map_err(CommandError::Rejected)?;
            let staged = self.staged(
                id,
                context.current_sequence,
                events,
                &context.aggregate,
                &metadata_json,
            );
            if let Some(mut committed) = insert(&self.db, std::slice::from_ref(&staged)).await? {
                self.remember(
                    id,
                    &context.aggregate,
                    context.current_sequence + staged.rows.len(),
                )
                .await;
                return Ok(committed.pop().expect("one per staged"));
            }
            self.recent.invalidate(id).await;
            conflicts += 1;
            recall = false;
            if conflicts > MAX_CONFLICT_RETRIES {
                return Err(CommandError::Conflict(A::TYPE));
            }
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
    /// again on the fresh state, as `execute` does. Concurrent calls are
    /// appended together (see [`crate::infra::group`]): for the many small
    /// steps of a process manager such as the publisher.
    pub async fn execute_loaded(
        &self,
        loaded: &mut Loaded<A>,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed, CommandError<A::Error>> {
        for attempt in 0..=MAX_CONFLICT_RETRIES {
            if attempt > 0 {
                *loaded = self.load_versioned(&loaded.id).await?;
            }
            let mut next = loaded.clone();
            let staged = self.stage(&mut next, command.clone(), metadata).await?;
            if let Some(committed) = self.group.append(&self.db, staged).await? {
                self.remember(&next.id, &next.state, next.sequence).await;
                *loaded = next;
                return Ok(committed);
            }
            self.recent.invalidate(&loaded.id).await;
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
    ) -> Result<Staged, CommandError<A::Error>> {
        let mut next = loaded.state.clone();
        let sink = EventSink::default();
        next.handle(command, &(), &sink)
            .await
            .map_err(CommandError::Rejected)?;
        let events = sink.collect().await;
        let staged = self.staged(
            &loaded.id,
            loaded.sequence,
            events,
            &next,
            &metadata_json(metadata),
        );
        loaded.sequence += staged.rows.len();
        loaded.state = next;
        Ok(staged)
    }

    /// `events` decided on the stream `id` at sequence `from`, leading to
    /// `after`, as rows to insert.
    fn staged(
        &self,
        id: &str,
        from: usize,
        events: Vec<A::Event>,
        after: &A,
        metadata: &str,
    ) -> Staged {
        let rows: Vec<StagedEvent> = events
            .into_iter()
            .zip(from as i64 + 1..)
            .map(|(event, sequence)| StagedEvent {
                sequence,
                event_type: event.event_type(),
                event_version: event.event_version(),
                payload: serde_json::to_string(&event).expect("events serialize"),
                metadata: metadata.to_string(),
            })
            .collect();
        let to = from as i64 + rows.len() as i64;
        Staged {
            aggregate_type: A::TYPE,
            aggregate_id: id.to_string(),
            snapshot: crosses(from as i64, to)
                .then(|| serde_json::to_string(after).expect("state serializes")),
            rows,
            appended: self.appended.clone(),
        }
    }

    /// Where the committed events sit in the global log.
    pub async fn position(&self, committed: &Committed) -> Result<Option<Position>, StoreError> {
        committed.locate(&self.log).await
    }
}

/// The command's metadata as stored with each of its events.
fn metadata_json(metadata: &EventMetadata) -> String {
    serde_json::to_string(&metadata.to_map()).expect("metadata serializes")
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
