//! The projector runner. Each projection has one durable checkpoint row; a
//! batch of events and the checkpoint move forward in the same transaction, so
//! a crash at any point neither loses nor repeats an event. At most one process
//! advances a projection at a time: the checkpoint row carries a lease, and
//! every batch's checkpoint update is fenced on still holding it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::AnyConnection;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::watch;

use crate::db::Backend;
use crate::infra::lease::Lease;
use crate::infra::process::ProcessIdentity;
use crate::infra::sql::placeholders;
use crate::{Database, GlobalLog, Position, StoreError, StoredEvent};

/// How long a lease lasts without renewal.
const LEASE: Duration = Duration::from_secs(10);
/// How long an idle runner sleeps before looking at the log again, when
/// nothing woke it (a commit of this process, or on PostgreSQL a waiter of
/// another process asking for the projection).
const IDLE_POLL: Duration = Duration::from_millis(100);
/// How often a waiter asks the database for checkpoints that moved without
/// telling it (a notification lost while the listener reconnected).
const WAIT_POLL: Duration = Duration::from_millis(250);
/// PostgreSQL channel of checkpoint moves: `<projection> <tx> <position>`.
const CHECKPOINT_CHANNEL: &str = "herald_checkpoint";
/// PostgreSQL channel that wakes other processes' runners (the payload
/// names the projections a waiter waits for).
const WAKE_CHANNEL: &str = "herald_wake";

/// What the runners of a process tell its waiters.
#[derive(Debug)]
struct Board {
    /// Each projection's checkpoint as far as this process knows: raised by
    /// its own runners after each commit, and on PostgreSQL by every other
    /// process's through [`CHECKPOINT_CHANNEL`]. It only ever rises, and it
    /// never runs ahead of the durable checkpoint.
    checkpoints: watch::Sender<BTreeMap<&'static str, Position>>,
    /// Projections whose lease a runner of this process holds.
    leading: Mutex<BTreeSet<&'static str>>,
}

impl Default for Board {
    fn default() -> Self {
        Self {
            checkpoints: watch::channel(BTreeMap::new()).0,
            leading: Mutex::default(),
        }
    }
}

impl Board {
    fn raise(&self, name: &'static str, to: Position) {
        self.checkpoints.send_if_modified(|known| {
            let at = known.entry(name).or_default();
            let raised = *at < to;
            if raised {
                *at = to;
            }
            raised
        });
    }

    /// Whether every one of `names` shows `position`; `None` while one of
    /// them was never heard of.
    fn shows(&self, names: &[&'static str], position: Position) -> Option<bool> {
        let known = self.checkpoints.borrow();
        let mut shown = true;
        for name in names {
            shown &= *known.get(name)? >= position;
        }
        Some(shown)
    }

    fn lead(&self, name: &'static str, leading: bool) {
        let mut set = self.leading.lock().expect("board lock");
        if leading {
            set.insert(name);
        } else {
            set.remove(name);
        }
    }

    fn leads_all(&self, names: &[&'static str]) -> bool {
        let set = self.leading.lock().expect("board lock");
        names.iter().all(|n| set.contains(n))
    }
}

/// A read model fed from the global log.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Stable name: the checkpoint key and the `--projection` argument.
    fn name(&self) -> &'static str;
    /// Tables this projection owns; a replay empties them first.
    fn tables(&self) -> &'static [&'static str];
    /// Indexes on those tables that only queries use, never this
    /// projection's own `apply`: a replay drops them before it loads the
    /// tables and builds them once the load is done, which is cheaper than
    /// keeping them up to date row by row.
    fn deferred_indexes(&self) -> &'static [&'static str] {
        &[]
    }
    /// Applies a batch of events, in log order. Called inside the batch
    /// transaction that also moves the checkpoint past them, so each event
    /// is applied exactly once.
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        events: &[StoredEvent],
    ) -> Result<(), StoreError>;

    /// The same projection for a rebuild beside the live one, which must
    /// write the same rows but have no effect outside its tables (pushes,
    /// in-memory state shared with the live runner): the live projection
    /// has had those effects. `None`: this one has none, share it.
    fn for_rebuild(&self) -> Option<Arc<dyn Projection>> {
        None
    }

    /// Called after a batch's transaction committed (live runs only): for
    /// effects that must not be seen before the read model shows the batch,
    /// such as pushes to displays in a single-process deployment.
    async fn committed(&self) {}
}

/// Runs one projection.
#[derive(Clone)]
pub struct Projector {
    db: Database,
    log: GlobalLog,
    projection: Arc<dyn Projection>,
    lease: Lease,
    batch_size: i64,
    /// Where this process's waiters learn of each commit (runners made by
    /// [`Projectors`]).
    board: Option<Arc<Board>>,
}

impl Projector {
    /// A runner for `projection`; `owner` names this process in the lease.
    pub fn new(db: Database, projection: Arc<dyn Projection>, owner: String) -> Self {
        Self {
            log: GlobalLog::new(db.clone()),
            lease: Lease {
                name: projection.name(),
                owner,
                identity: None,
                term: LEASE,
            },
            db,
            projection,
            batch_size: 1000,
            board: None,
        }
    }

    /// A runner for `projection` owned by this process, `identity`.
    pub fn owned_by(
        db: Database,
        projection: Arc<dyn Projection>,
        identity: Arc<ProcessIdentity>,
    ) -> Self {
        let mut runner = Self::new(db, projection, identity.tag());
        runner.lease.identity = Some(identity);
        runner
    }

    /// The projection's name.
    pub fn name(&self) -> &'static str {
        self.projection.name()
    }

    /// The projection this runner applies.
    pub(crate) fn projection(&self) -> &dyn Projection {
        self.projection.as_ref()
    }

    /// A runner of the same projection on `db` (a rebuild's shadow
    /// tables), its lease held as `owner`.
    /// Its projection is [`Projection::for_rebuild`]'s, and it never calls
    /// [`Projection::committed`].
    pub(crate) fn on(&self, db: Database, owner: String) -> Projector {
        let projection = self
            .projection
            .for_rebuild()
            .unwrap_or_else(|| self.projection.clone());
        Projector::new(db, projection, owner).with_batch_size(self.batch_size)
    }

    /// This runner's lease, held as `owner` instead (a rebuild taking it
    /// for its swap).
    pub(crate) fn lease_as(&self, owner: &str) -> Lease {
        Lease {
            owner: owner.to_string(),
            identity: None,
            ..self.lease.clone()
        }
    }

    /// Sets how long the lease lasts without renewal (a crashed holder blocks
    /// others for at most this long).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease.term = lease;
        self
    }

    /// Sets how many events one transaction applies.
    pub fn with_batch_size(mut self, batch_size: i64) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Takes or renews the lease; `true` if this runner holds it now (see
    /// [`Lease::acquire`]).
    pub async fn acquire_lease(&self) -> Result<bool, StoreError> {
        self.lease.acquire(&self.db.any).await
    }

    /// Gives the lease up so another process can take over at once.
    pub async fn release_lease(&self) -> Result<(), StoreError> {
        self.lease.release(&self.db.any).await
    }

    /// The durable checkpoint.
    pub async fn checkpoint(&self) -> Result<Position, StoreError> {
        checkpoint(&self.db, self.name()).await
    }

    /// Applies the next batch, if this runner holds the lease. Returns how many
    /// events were applied (0 when caught up or when the lease is elsewhere).
    pub async fn step(&self) -> Result<usize, StoreError> {
        let from = self.checkpoint().await?;
        Ok(self.advance(from).await?.map_or(0, |(applied, _)| applied))
    }

    /// Applies the batch after `from`: how many events and the new
    /// checkpoint, or `None` when the fence failed (the checkpoint is not
    /// `from`, or the lease is elsewhere) and nothing was written.
    async fn advance(&self, from: Position) -> Result<Option<(usize, Position)>, StoreError> {
        let events = self.log.read_after(from, self.batch_size).await?;
        let Some(last) = events.last().map(|e| e.position) else {
            return Ok(Some((0, from)));
        };
        if !self.apply_batch(from, &events).await? {
            return Ok(None);
        }
        Ok(Some((events.len(), last)))
    }

    /// Applies `events` (read after `from`) and moves the checkpoint past
    /// them, in one transaction fenced on the lease and on the checkpoint
    /// still being `from`. `false`: the fence failed and nothing was written.
    async fn apply_batch(
        &self,
        from: Position,
        events: &[StoredEvent],
    ) -> Result<bool, StoreError> {
        let Some(last) = events.last() else {
            return Ok(true);
        };
        let turn = self.db.write_turn().await;
        let mut tx = self.db.any.begin().await?;
        if !self.write(&mut tx, from, events).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        if self.announces() {
            announce(&mut tx, &[(self.name(), last.position)]).await?;
        }
        tx.commit().await?;
        drop(turn);
        self.applied(last.position, events.len()).await;
        Ok(true)
    }

    /// Within the caller's transaction: moves the checkpoint from `from`
    /// past `events` (fenced on the lease and on `from`) and applies them.
    /// `false`: the fence failed and nothing was written.
    async fn write(
        &self,
        conn: &mut AnyConnection,
        from: Position,
        events: &[StoredEvent],
    ) -> Result<bool, StoreError> {
        let Some(last) = events.last() else {
            return Ok(true);
        };
        // Fence first: if the lease moved to another process, nothing is written.
        let moved = fence(
            conn,
            &[Move {
                lease: &self.lease,
                from,
                to: last.position,
            }],
        )
        .await?;
        if moved.is_empty() {
            return Ok(false);
        }
        self.projection.apply(conn, events).await?;
        Ok(true)
    }

    /// Whether waiters in other processes hear of this runner's commits
    /// (a live runner on PostgreSQL).
    fn announces(&self) -> bool {
        self.board.is_some() && self.db.is_postgres()
    }

    /// After the commit that moved the checkpoint to `to` past `count` events.
    async fn applied(&self, to: Position, count: usize) {
        // Only live runners (made by `Projectors`) have a board: effects
        // after commit are theirs.
        if let Some(board) = &self.board {
            board.raise(self.name(), to);
            self.projection.committed().await;
        }
        metrics::counter!("herald_projected_events_total", "projection" => self.name())
            .increment(count as u64);
    }

    /// Renews or takes the lease when a third of it has passed (or it is
    /// not held), and tells the board. On an error the lease counts as not
    /// held.
    async fn keep_lease(
        &self,
        leader: &mut bool,
        renewed: &mut Option<std::time::Instant>,
    ) -> Result<(), StoreError> {
        if *leader && renewed.is_some_and(|t| t.elapsed() <= self.lease.term / 3) {
            return Ok(());
        }
        let held = self.acquire_lease().await;
        *leader = *held.as_ref().unwrap_or(&false);
        *renewed = Some(std::time::Instant::now());
        if let Some(board) = &self.board {
            board.lead(self.name(), *leader);
        }
        held.map(|_| ())
    }

    /// The durable checkpoint, to resume from once the lease is held; the
    /// board learns it too.
    async fn resume_point(&self) -> Result<Position, StoreError> {
        let at = self.checkpoint().await?;
        if let Some(board) = &self.board {
            board.raise(self.name(), at);
        }
        Ok(at)
    }

    /// Applies the part of `events` after `from` (a replay's batch, which may
    /// start before this projection's position); answers the new position.
    pub(crate) async fn catch_up(
        &self,
        from: Position,
        events: &[StoredEvent],
    ) -> Result<Position, StoreError> {
        let mine = &events[events.partition_point(|e| e.position <= from)..];
        let Some(last) = mine.last() else {
            return Ok(from);
        };
        if self.apply_batch(from, mine).await? {
            Ok(last.position)
        } else if self.acquire_lease().await? {
            // A runner of this process stepped in between: resume from there.
            self.checkpoint().await
        } else {
            Err(StoreError::ProjectionBusy(self.name()))
        }
    }

    /// Follows the log until `shutdown` flips to true: holds or waits for the
    /// lease, applies batches, and sleeps until woken by a commit (`appended`)
    /// or the idle poll. While it holds the lease it keeps the checkpoint in
    /// memory (each batch is fenced on it, so a stale one writes nothing).
    /// Errors are logged and retried with a pause.
    pub async fn run(self, appended: watch::Receiver<u64>, shutdown: watch::Receiver<bool>) {
        run_together(vec![self], appended, shutdown).await
    }
}

/// Listens on the connection of `pool` until it fails (see
/// [`Projectors::follow`]).
async fn follow_until_lost(
    pool: &PgPool,
    board: &Board,
    appended: &watch::Sender<u64>,
    names: &[&'static str],
) -> Result<std::convert::Infallible, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.ignore_pool_close_event(true);
    listener
        .listen_all([CHECKPOINT_CHANNEL, WAKE_CHANNEL])
        .await?;
    loop {
        // `None`: sqlx reconnected; what was sent meanwhile is gone, which
        // the waiters' poll covers.
        let Some(note) = listener.try_recv().await? else {
            continue;
        };
        if note.channel() == WAKE_CHANNEL {
            appended.send_modify(|v| *v = v.wrapping_add(1));
        } else {
            for (name, at) in parse_checkpoints(note.payload(), names) {
                board.raise(name, at);
            }
        }
    }
}

/// Within the caller's transaction: tells waiters in other processes, at
/// commit, that the checkpoints of `moves` moved: one notification for
/// the whole batch, `<name> <tx> <position>` per projection, comma
/// separated. Nothing when `moves` is empty.
async fn announce(
    conn: &mut AnyConnection,
    moves: &[(&'static str, Position)],
) -> Result<(), StoreError> {
    if moves.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHECKPOINT_CHANNEL)
        .bind(checkpoint_payload(moves))
        .execute(conn)
        .await?;
    Ok(())
}

/// A [`CHECKPOINT_CHANNEL`] payload: `<name> <tx> <position>` per move,
/// comma separated.
fn checkpoint_payload(moves: &[(&'static str, Position)]) -> String {
    moves
        .iter()
        .map(|(name, at)| format!("{name} {} {}", at.tx, at.seq))
        .collect::<Vec<_>>()
        .join(",")
}

/// Every move of a [`CHECKPOINT_CHANNEL`] payload that names one of `names`.
fn parse_checkpoints(
    payload: &str,
    names: &[&'static str],
) -> impl Iterator<Item = (&'static str, Position)> {
    payload
        .split(',')
        .filter_map(move |one| parse_checkpoint(one, names))
}

/// Reads one move of a [`CHECKPOINT_CHANNEL`] payload: one of `names` and
/// its position.
fn parse_checkpoint(payload: &str, names: &[&'static str]) -> Option<(&'static str, Position)> {
    let mut parts = payload.split(' ');
    let name = parts.next()?;
    let name = *names.iter().find(|n| **n == name)?;
    let tx = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    Some((name, Position { tx, seq }))
}

/// One projection's place in [`run_together`].
struct Lane {
    runner: Projector,
    leader: bool,
    renewed: Option<std::time::Instant>,
    /// The checkpoint, while the lease is held and known.
    at: Option<Position>,
    /// After a failed batch: not before this instant again.
    paused_until: Option<std::time::Instant>,
}

impl Lane {
    /// Whether it takes part in the next batch.
    fn ready(&self, now: std::time::Instant) -> bool {
        self.at.is_some() && self.paused_until.is_none_or(|t| t <= now)
    }
}

/// Writes `events` for every ready lane within `tx`: what each wrote
/// (lane, new checkpoint, events), or, when not `careful` and a projection
/// failed, `None` (the caller rolls the transaction back). When `careful`,
/// each lane writes under a savepoint and a failing one is rolled back
/// alone and paused.
async fn write_lanes(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    lanes: &mut [Lane],
    events: &[StoredEvent],
    now: std::time::Instant,
    careful: bool,
) -> Result<Option<Vec<(usize, Position, usize)>>, StoreError> {
    // Each ready lane with events of its own: (lane, from, its events).
    let mut due = Vec::new();
    for (n, lane) in lanes.iter().enumerate() {
        if !lane.ready(now) {
            continue;
        }
        let Some(at) = lane.at else {
            continue;
        };
        let mine = &events[events.partition_point(|e| e.position <= at)..];
        if !mine.is_empty() {
            due.push((n, at, mine));
        }
    }
    if !careful {
        // Every checkpoint moves in one statement, each fenced on its lease
        // and position; only the lanes it moved apply their events.
        let moves: Vec<Move> = due
            .iter()
            .map(|&(n, from, mine)| Move {
                lease: &lanes[n].runner.lease,
                from,
                to: mine.last().expect("not empty").position,
            })
            .collect();
        let moved = fence(&mut *tx, &moves).await?;
        let mut written = Vec::new();
        for (n, _, mine) in due {
            let lane = &mut lanes[n];
            if !moved.contains(&lane.runner.name()) {
                // The fence wrote nothing: read the checkpoint again.
                lane.at = None;
                continue;
            }
            if let Err(error) = lane.runner.projection.apply(&mut *tx, mine).await {
                tracing::warn!(projection = lane.runner.name(), error = %error, "projector batch failed; retrying it alone");
                return Ok(None);
            }
            written.push((n, mine.last().expect("not empty").position, mine.len()));
        }
        return Ok(Some(written));
    }
    let mut written = Vec::new();
    for (n, at, mine) in due {
        let lane = &mut lanes[n];
        let last = mine.last().expect("not empty").position;
        let mut savepoint = sqlx::Acquire::begin(&mut *tx).await?;
        match lane.runner.write(&mut savepoint, at, mine).await {
            Ok(true) => {
                savepoint.commit().await?;
                written.push((n, last, mine.len()));
            }
            Ok(false) => {
                savepoint.rollback().await?;
                lane.at = None;
            }
            Err(error) => {
                savepoint.rollback().await?;
                tracing::error!(projection = lane.runner.name(), error = %error, cause = ?std::error::Error::source(&error), "projector batch failed");
                lane.at = None;
                lane.paused_until = Some(now + Duration::from_secs(1));
            }
        }
    }
    Ok(Some(written))
}

/// A checkpoint to move from `from` to `to` under `lease`.
struct Move<'a> {
    lease: &'a Lease,
    from: Position,
    to: Position,
}

/// Moves every checkpoint of `moves` in one statement, each only if its
/// lease is still held and it is still at `from` (else another process
/// took over, and that projection must write nothing). Answers the
/// projections it moved.
async fn fence(
    conn: &mut AnyConnection,
    moves: &[Move<'_>],
) -> Result<Vec<&'static str>, StoreError> {
    if moves.is_empty() {
        return Ok(Vec::new());
    }
    let rows = placeholders(conn, moves.len(), 7);
    // A CTE with named columns reads the same on PostgreSQL and SQLite.
    let sql = format!(
        "WITH m (name, owner, until, from_tx, from_seq, to_tx, to_seq) AS (VALUES {rows})
         UPDATE projection_checkpoints
            SET tx = m.to_tx, position = m.to_seq, lease_until = m.until
           FROM m
          WHERE projection_checkpoints.name = m.name
            AND projection_checkpoints.lease_owner = m.owner
            AND projection_checkpoints.tx = m.from_tx
            AND projection_checkpoints.position = m.from_seq
         RETURNING projection_checkpoints.name"
    );
    let mut query = sqlx::query_as::<_, (String,)>(&sql);
    for m in moves {
        query = query
            .bind(m.lease.name)
            .bind(m.lease.owner.as_str())
            .bind(m.lease.until())
            .bind(m.from.tx)
            .bind(m.from.seq)
            .bind(m.to.tx)
            .bind(m.to.seq);
    }
    let moved = query.fetch_all(&mut *conn).await?;
    Ok(moves
        .iter()
        .map(|m| m.lease.name)
        .filter(|name| moved.iter().any(|(n,)| n == name))
        .collect())
}

/// The live runner: follows the log for every projection of `runners` at
/// once until `shutdown`. Each batch is read once and applied to every
/// projection whose lease this process holds, in one transaction, each
/// projection under a savepoint of its own with its own fenced checkpoint:
/// a projection that fails is rolled back alone and retried after a pause,
/// while the others move on.
async fn run_together(
    runners: Vec<Projector>,
    mut appended: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut lanes: Vec<Lane> = runners
        .into_iter()
        .map(|runner| Lane {
            runner,
            leader: false,
            renewed: None,
            at: None,
            paused_until: None,
        })
        .collect();
    let batch_size = lanes.first().map_or(1000, |l| l.runner.batch_size);
    while !*shutdown.borrow() {
        let progressed = match step_together(&mut lanes, batch_size).await {
            Ok(applied) => applied > 0,
            Err(error) => {
                tracing::error!(error = %error, cause = ?std::error::Error::source(&error), "projector batch failed");
                for lane in &mut lanes {
                    lane.at = None;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                false
            }
        };
        if progressed {
            continue;
        }
        tokio::select! {
            _ = appended.changed() => {}
            _ = shutdown.changed() => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
        }
    }
    for lane in &lanes {
        if let Some(board) = &lane.runner.board {
            board.lead(lane.runner.name(), false);
        }
        if lane.leader {
            let _ = lane.runner.release_lease().await;
        }
    }
}

/// One round of [`run_together`]: how many events were applied, summed
/// over the projections.
async fn step_together(lanes: &mut [Lane], batch_size: i64) -> Result<usize, StoreError> {
    let now = std::time::Instant::now();
    for lane in lanes.iter_mut() {
        lane.runner
            .keep_lease(&mut lane.leader, &mut lane.renewed)
            .await?;
        if !lane.leader {
            lane.at = None;
        } else if lane.at.is_none() {
            lane.at = Some(lane.runner.resume_point().await?);
        }
    }
    let Some(from) = lanes
        .iter()
        .filter(|l| l.ready(now))
        .filter_map(|l| l.at)
        .min()
    else {
        return Ok(0);
    };
    // Every lane runs on the same database and log.
    let db = lanes[0].runner.db.clone();
    let events = lanes[0].runner.log.read_after(from, batch_size).await?;
    if events.is_empty() {
        return Ok(0);
    }
    // Savepoints cost two statements per projection and batch: they are
    // used only once a projection has failed, and a failure without them
    // rolls the whole batch back and runs it again with them.
    let mut careful = lanes.iter().any(|l| l.paused_until.is_some());
    let written = loop {
        let turn = db.write_turn().await;
        let mut tx = db.any.begin().await?;
        match write_lanes(&mut tx, lanes, &events, now, careful).await? {
            Some(written) => {
                let moves: Vec<(&'static str, Position)> = written
                    .iter()
                    .filter(|(n, _, _)| lanes[*n].runner.announces())
                    .map(|(n, last, _)| (lanes[*n].runner.name(), *last))
                    .collect();
                announce(&mut tx, &moves).await?;
                tx.commit().await?;
                drop(turn);
                break written;
            }
            None => {
                tx.rollback().await?;
                careful = true;
            }
        }
    };
    let mut applied = 0;
    for (n, last, count) in written {
        let lane = &mut lanes[n];
        lane.at = Some(last);
        lane.paused_until = None;
        lane.runner.applied(last, count).await;
        applied += count;
    }
    Ok(applied)
}

async fn checkpoint(db: &Database, name: &str) -> Result<Position, StoreError> {
    let row: Option<(i64, i64)> =
        sqlx::query_as("SELECT tx, position FROM projection_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(&db.any)
            .await?;
    Ok(row
        .map(|(tx, seq)| Position { tx, seq })
        .unwrap_or_default())
}

/// Every projection of this deployment, and the ways to run, wait for and
/// rebuild them.
#[derive(Clone)]
pub struct Projectors {
    pub(crate) db: Database,
    projections: Vec<Arc<dyn Projection>>,
    identity: Arc<ProcessIdentity>,
    /// The log's head when this process first asked [`Projectors::caught_up`].
    start_head: Arc<tokio::sync::OnceCell<i64>>,
    /// Set once every projection reached `start_head`.
    caught_up: Arc<std::sync::atomic::AtomicBool>,
    /// Bumped by repositories after each commit.
    pub appended: Arc<watch::Sender<u64>>,
    /// What this process's runners tell its waiters.
    board: Arc<Board>,
}

impl Projectors {
    /// A set of `projections` over `db`. Herald's own set is assembled by the
    /// read side ([`Projectors::new`], [`Projectors::with_push`] in `read`),
    /// so this runner knows no read model.
    pub fn of(db: Database, projections: Vec<Arc<dyn Projection>>) -> Self {
        Self {
            projections,
            identity: Arc::new(ProcessIdentity::current(None)),
            start_head: Arc::default(),
            caught_up: Arc::default(),
            appended: Arc::new(watch::channel(0).0),
            board: Arc::default(),
            db,
        }
    }

    /// Names this process's node (`HERALD_NODE_ID`): a fresh start under
    /// the same node id takes the previous start's leases at once.
    pub fn on_node(mut self, node: Option<String>) -> Self {
        self.identity = Arc::new(ProcessIdentity::current(node));
        self
    }

    /// This process, as its leases name it.
    pub fn identity(&self) -> &ProcessIdentity {
        &self.identity
    }

    /// Adds a projection (process managers fed from the log, such as the
    /// mail intents of `workers`).
    pub fn with(mut self, projection: Arc<dyn Projection>) -> Self {
        self.projections.push(projection);
        self
    }

    /// Names of all projections.
    pub fn names(&self) -> Vec<&'static str> {
        self.projections.iter().map(|p| p.name()).collect()
    }

    /// A runner per projection (or only the named one).
    pub fn runners(&self, only: Option<&str>) -> Result<Vec<Projector>, StoreError> {
        let chosen: Vec<Projector> = self
            .projections
            .iter()
            .filter(|p| only.is_none_or(|n| n == p.name()))
            .map(|p| Projector {
                board: Some(self.board.clone()),
                ..Projector::owned_by(self.db.clone(), p.clone(), self.identity.clone())
            })
            .collect();
        if chosen.is_empty() {
            return Err(StoreError::UnknownProjection {
                name: only.unwrap_or_default().to_string(),
                known: self.names().join(", "),
            });
        }
        Ok(chosen)
    }

    /// Starts the task that follows the log for every projection until
    /// `shutdown`, named for the supervisor ([`run_together`]): each batch
    /// is read once and applied, in one transaction, to every projection
    /// this process leads. One runner per projection cost a log read and a
    /// commit per projection for every change: on SQLite, which writes one
    /// transaction at a time, and on PostgreSQL, where each commit is a WAL
    /// flush, that was most of a mutation's time.
    pub fn spawn(
        &self,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<(String, tokio::task::JoinHandle<()>)> {
        let runners = self.runners(None).expect("projections exist");
        let task = run_together(runners, self.appended.subscribe(), shutdown);
        vec![("projectors".to_string(), tokio::spawn(task))]
    }

    /// Whether every projection has applied the log as it stood when this
    /// process first asked (ask once at start to pin that point): until
    /// then the read models are still catching up on what happened while
    /// the process was down. Stays true once it was.
    pub async fn caught_up(&self) -> Result<bool, StoreError> {
        use std::sync::atomic::Ordering;
        if self.caught_up.load(Ordering::Acquire) {
            return Ok(true);
        }
        let target = *self
            .start_head
            .get_or_try_init(|| {
                let log = GlobalLog::new(self.db.clone());
                async move { log.head().await }
            })
            .await?;
        let done = self.min_checkpoint().await?.seq >= target;
        if done {
            self.caught_up.store(true, Ordering::Release);
        }
        Ok(done)
    }

    /// The lowest checkpoint over all projections.
    pub async fn min_checkpoint(&self) -> Result<Position, StoreError> {
        let names = self.names();
        let known = self.refresh(&names).await?;
        if known.len() < names.len() {
            // A projection without a row has applied nothing yet.
            return Ok(Position::default());
        }
        Ok(known.into_iter().min().unwrap_or_default())
    }

    /// Reads the checkpoints of `names` from the database, in one query,
    /// and raises the board to them; answers those that have a row.
    async fn refresh(&self, names: &[&'static str]) -> Result<Vec<Position>, StoreError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=names.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT name, tx, position FROM projection_checkpoints WHERE name IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query_as(&sql);
        for name in names {
            query = query.bind(*name);
        }
        let rows: Vec<(String, i64, i64)> = query.fetch_all(&self.db.any).await?;
        let mut known = Vec::with_capacity(rows.len());
        for (name, tx, seq) in rows {
            let at = Position { tx, seq };
            if let Some(name) = names.iter().find(|n| **n == name) {
                self.board.raise(name, at);
            }
            known.push(at);
        }
        Ok(known)
    }

    /// This set's projections among `names`: waiting for one this
    /// deployment does not run would never end.
    fn ours(&self, names: &[&str]) -> Vec<&'static str> {
        self.projections
            .iter()
            .map(|p| p.name())
            .filter(|n| names.contains(n))
            .collect()
    }

    /// Waits until the projections named `names` have applied `position`
    /// (read-your-writes for the API: an operation names the read models
    /// its answer reads); `false` if `timeout` passed first.
    ///
    /// Costs no query while this process's runners apply the change: they
    /// raise the board at commit. On PostgreSQL, when another process holds
    /// a lease, the waiter wakes that process's runner and hears of its
    /// commit through `LISTEN` (see [`Projectors::follow`]); a slow poll of
    /// the checkpoints covers notifications lost in a reconnect.
    pub async fn wait_for(
        &self,
        position: Position,
        names: &[&str],
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        let names = self.ours(names);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut moved = self.board.checkpoints.subscribe();
        let mut woke_others = false;
        loop {
            match self.board.shows(&names, position) {
                Some(true) => return Ok(true),
                Some(false) => {}
                None => {
                    self.refresh(&names).await?;
                    if self.board.shows(&names, position) == Some(true) {
                        return Ok(true);
                    }
                }
            }
            if !woke_others && self.db.is_postgres() && !self.board.leads_all(&names) {
                woke_others = true;
                self.wake_others(&names).await?;
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::select! {
                _ = moved.changed() => {}
                _ = tokio::time::sleep(WAIT_POLL) => {
                    self.refresh(&names).await?;
                }
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// [`Projectors::wait_for`] every projection of this set.
    pub async fn wait_for_all(
        &self,
        position: Position,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        let names = self.names();
        self.wait_for(position, &names, timeout).await
    }

    /// Wakes the runners of other processes (PostgreSQL) for `names` rather
    /// than leaving them to their idle poll.
    async fn wake_others(&self, names: &[&'static str]) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(WAKE_CHANNEL)
            .bind(names.join(" "))
            .execute(&self.db.any)
            .await?;
        Ok(())
    }

    /// PostgreSQL only (a task that ends at once on SQLite): listens for
    /// other processes' checkpoint moves, raising this process's board, and
    /// for their waiters' wake-ups, waking this process's runners; until
    /// `shutdown`. Reconnects after a lost connection; the waiters' slow
    /// poll covers what was sent in between.
    pub fn follow(&self, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let Backend::Postgres(pool) = &self.db.backend else {
            return tokio::spawn(async {});
        };
        // Its own connection, outside the pool: it is held for good.
        let listening = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with((*pool.connect_options()).clone());
        let board = self.board.clone();
        let appended = self.appended.clone();
        let names = self.names();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => return,
                    Err(error) = follow_until_lost(&listening, &board, &appended, &names) => {
                        tracing::warn!(%error, "checkpoint listener lost its connection");
                    }
                }
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        })
    }

    /// Events the slowest projection still has to apply (approximate on
    /// PostgreSQL, where positions within concurrent transactions interleave).
    pub async fn lag(&self) -> Result<i64, StoreError> {
        let head = GlobalLog::new(self.db.clone()).head().await?;
        let names = self.names();
        let known = self.refresh(&names).await?;
        // A projection without a row has applied nothing yet.
        let slowest = if known.len() < names.len() {
            0
        } else {
            known.iter().map(|p| p.seq).min().unwrap_or(0)
        };
        let worst = (head - slowest).max(0);
        metrics::gauge!("herald_projector_lag_events").set(worst as f64);
        Ok(worst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "dashboard";
    const B: &str = "audit";

    fn at(seq: i64) -> Position {
        Position { tx: 0, seq }
    }

    #[test]
    fn the_board_only_rises_and_knows_what_it_was_told() {
        let board = Board::default();
        assert_eq!(board.shows(&[A], at(1)), None, "never heard of");
        board.raise(A, at(5));
        board.raise(A, at(3));
        assert_eq!(board.shows(&[A], at(5)), Some(true));
        assert_eq!(board.shows(&[A], at(6)), Some(false));
        assert_eq!(board.shows(&[A, B], at(5)), None, "one is unknown");
        board.raise(B, at(4));
        assert_eq!(
            board.shows(&[A, B], at(5)),
            Some(false),
            "the slowest decides"
        );
        assert_eq!(board.shows(&[], at(9)), Some(true), "waiting for nothing");
    }

    #[test]
    fn a_raise_wakes_waiters_only_when_it_moves() {
        let board = Board::default();
        let mut moved = board.checkpoints.subscribe();
        board.raise(A, at(2));
        assert!(moved.has_changed().unwrap());
        moved.borrow_and_update();
        board.raise(A, at(1));
        assert!(!moved.has_changed().unwrap());
    }

    #[test]
    fn leading_is_tracked_per_projection() {
        let board = Board::default();
        board.lead(A, true);
        assert!(board.leads_all(&[A]));
        assert!(!board.leads_all(&[A, B]));
        board.lead(A, false);
        assert!(!board.leads_all(&[A]));
    }

    #[test]
    fn checkpoint_payloads_name_a_known_projection_and_a_position() {
        let names = [A, B];
        assert_eq!(
            parse_checkpoint("audit 77 1024", &names),
            Some((B, Position { tx: 77, seq: 1024 }))
        );
        assert_eq!(parse_checkpoint("other 1 2", &names), None);
        assert_eq!(parse_checkpoint("audit 1", &names), None);
        assert_eq!(parse_checkpoint("audit x 2", &names), None);
    }

    #[test]
    fn one_notification_names_every_move_of_a_batch() {
        let moves = [(A, at(3)), (B, Position { tx: 9, seq: 5 })];
        let payload = checkpoint_payload(&moves);
        assert_eq!(payload, "dashboard 0 3,audit 9 5");
        let read: Vec<_> = parse_checkpoints(&payload, &[A, B]).collect();
        assert_eq!(read, moves);
        // Unknown or broken parts are skipped, the rest still read.
        let read: Vec<_> = parse_checkpoints("other 1 2,audit 1 2,audit x", &[A, B]).collect();
        assert_eq!(read, [(B, Position { tx: 1, seq: 2 })]);
    }
}
