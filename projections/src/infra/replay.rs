//! Rebuilding read models from the log (`herald replay`, a new projection's
//! backfill): the log is read once, each batch decoded once and handed to
//! every projection; indexes that only queries use are built after the load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::runner::Projector;
use crate::{GlobalLog, Position, Projectors, StoreError, StoredEvent};

/// Events per batch during a replay.
const REPLAY_BATCH: i64 = 5000;

/// What a replay did.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// Log events read and applied.
    pub events: u64,
    /// Time each projection spent applying batches (its transactions,
    /// from first statement to commit), in the order rebuilt.
    pub cost: Vec<(&'static str, Duration)>,
    /// Time spent building the deferred indexes after the load.
    pub indexing: Duration,
}

impl std::fmt::Display for Replayed {
    /// Each projection's time and the rate it alone would sustain (on
    /// PostgreSQL projections apply side by side, so the times overlap),
    /// then the index build: a line each.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (name, took) in &self.cost {
            let rate = self.events as f64 / took.as_secs_f64().max(1e-9);
            writeln!(
                f,
                "  {name:<14} {:>7.2}s  {rate:>9.0} events/s alone",
                took.as_secs_f64()
            )?;
        }
        write!(
            f,
            "  {:<14} {:>7.2}s  (deferred indexes, built after the load)",
            "indexes",
            self.indexing.as_secs_f64()
        )
    }
}

impl Projectors {
    /// Rebuilds projections from zero (all, or the named one), reporting
    /// `(applied, total)` after each batch under the names being rebuilt.
    /// Waits up to `lease_wait` for a runner in another process to give the
    /// lease up.
    ///
    /// All projections are rebuilt in one pass over the log: each batch is
    /// read and decoded once and then applied to every projection, each in
    /// its own fenced transaction. Reading the log is a large share of a
    /// rebuild, so a pass per projection would slow replay down with every
    /// read model added. The log is read while batches are applied, and on
    /// PostgreSQL each projection applies them at its own pace.
    pub async fn replay(
        &self,
        only: Option<&str>,
        lease_wait: Duration,
        mut progress: impl FnMut(&str, u64, u64),
    ) -> Result<Replayed, StoreError> {
        let log = GlobalLog::new(self.db.clone());
        let total = log.count().await? as u64;
        let runners: Vec<Projector> = self
            .runners(only)?
            .into_iter()
            .map(|r| r.with_batch_size(REPLAY_BATCH))
            .collect();
        let label = runners
            .iter()
            .map(|r| r.name())
            .collect::<Vec<_>>()
            .join(", ");
        let deadline = tokio::time::Instant::now() + lease_wait;
        for runner in &runners {
            while !runner.acquire_lease().await? {
                if tokio::time::Instant::now() >= deadline {
                    return Err(StoreError::ProjectionBusy(runner.name()));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let deferred: Vec<&'static str> = runners
            .iter()
            .flat_map(|r| r.projection().deferred_indexes().iter().copied())
            .collect();
        for runner in &runners {
            runner.reset().await?;
        }
        self.db.defer_indexes(&deferred).await?;
        progress(&label, 0, total);
        // Appliers, fed batch by batch through short queues: the log is read
        // while batches are applied, and on PostgreSQL every projection is an
        // applier of its own (its own tables, its own transactions), so a
        // fast one runs ahead while a slow one is still busy. SQLite has one
        // writer at a time: there one applier takes every projection in turn.
        let groups: Vec<Vec<Projector>> = if self.db.is_postgres() {
            runners.iter().map(|r| vec![r.clone()]).collect()
        } else {
            vec![runners.clone()]
        };
        let mut feeds = Vec::with_capacity(groups.len());
        let mut appliers = tokio::task::JoinSet::new();
        for group in groups {
            let (feed, batches) = tokio::sync::mpsc::channel::<Arc<Vec<StoredEvent>>>(3);
            feeds.push(feed);
            appliers.spawn(apply_all(group, batches));
        }
        let read = async {
            let mut from = Position::default();
            let mut seen = 0u64;
            loop {
                let events = log.read_after(from, REPLAY_BATCH).await?;
                let Some(last) = events.last().map(|e| e.position) else {
                    // Every counted event was committed before replay began,
                    // so the rebuild is complete once that many have been
                    // seen. On PostgreSQL the log may still hold some back
                    // while an older transaction (in any database of the
                    // server) is open: wait, keeping the leases.
                    if seen >= total {
                        return Ok(seen);
                    }
                    for runner in &runners {
                        if !runner.acquire_lease().await? {
                            return Err(StoreError::ProjectionBusy(runner.name()));
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                seen += events.len() as u64;
                from = last;
                let batch = Arc::new(events);
                for feed in &feeds {
                    if feed.send(batch.clone()).await.is_err() {
                        // An applier stopped: its error is reported below.
                        return Ok(seen);
                    }
                }
                progress(&label, seen, total.max(seen));
            }
        };
        let read: Result<u64, StoreError> = read.await;
        drop(feeds);
        let mut cost = Vec::with_capacity(runners.len());
        while let Some(applied) = appliers.join_next().await {
            cost.extend(applied.map_err(StoreError::ReplayApplier)??);
        }
        let events = read?;
        cost.sort_by_key(|(name, _)| runners.iter().position(|r| r.name() == *name));
        let started = Instant::now();
        self.db.build_deferred_indexes().await?;
        let indexing = started.elapsed();
        for runner in &runners {
            runner.release_lease().await?;
        }
        Ok(Replayed {
            events,
            cost,
            indexing,
        })
    }
}

/// A replay's applier: applies every batch to each projection of `group` in
/// turn. Each resumes from its own position, which moves past the batch —
/// or further, should a runner of this same process (same lease owner) have
/// stepped in between. Answers the time each projection took.
async fn apply_all(
    group: Vec<Projector>,
    mut batches: tokio::sync::mpsc::Receiver<Arc<Vec<StoredEvent>>>,
) -> Result<Vec<(&'static str, Duration)>, StoreError> {
    let mut at = vec![Position::default(); group.len()];
    let mut took = vec![Duration::ZERO; group.len()];
    while let Some(batch) = batches.recv().await {
        for ((runner, at), took) in group.iter().zip(at.iter_mut()).zip(took.iter_mut()) {
            let started = Instant::now();
            *at = runner.catch_up(*at, &batch).await?;
            *took += started.elapsed();
        }
        // Freeing a batch (5,000 decoded payloads) took about 5 % of a
        // replay's samples on this task, which is the critical path on
        // SQLite: leave it to another thread.
        tokio::task::spawn_blocking(move || drop(batch));
    }
    Ok(group.iter().map(|r| r.name()).zip(took).collect())
}
