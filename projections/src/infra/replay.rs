//! Rebuilding read models from the log (`herald replay`, a new projection's
//! backfill) beside the live ones: the log is read once, each batch decoded
//! once and handed to every projection, which writes shadow tables; indexes
//! that only queries use are built after the load; the rebuilt tables are
//! swapped in atomically once caught up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::infra::lease::{Lease, REBUILD};
use crate::infra::process::ProcessIdentity;
use crate::infra::shadow::Shadow;
use crate::runner::Projector;
use crate::{GlobalLog, Position, Projectors, StoreError, StoredEvent};

/// Events per batch during a replay.
const REPLAY_BATCH: i64 = 5000;
/// How long the rebuild lease lasts without renewal (renewed every third
/// of it while the rebuild runs, see [`holding`]).
const REBUILD_LEASE: Duration = Duration::from_secs(60);

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
    /// Time the live read models were paused for the swap (from taking
    /// their leases to the commit that put the rebuilt tables in place).
    pub swap: Duration,
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
        writeln!(
            f,
            "  {:<14} {:>7.2}s  (deferred indexes, built after the load)",
            "indexes",
            self.indexing.as_secs_f64()
        )?;
        write!(
            f,
            "  {:<14} {:>7.2}s  (live read models paused: last events, swap)",
            "swap",
            self.swap.as_secs_f64()
        )
    }
}

impl Projectors {
    /// Rebuilds projections from the log (all, or the named one) beside
    /// the live read models, reporting `(applied, total)` after each batch
    /// under the names being rebuilt. Waits up to `lease_wait` for another
    /// rebuild to end (one runs at a time).
    ///
    /// The projections are rebuilt into shadow tables ([`Shadow`]) while
    /// the live ones keep serving queries and following the log. Once the
    /// shadow has caught up with the log, the rebuild takes the live
    /// leases (the live runners pause), applies the last events, and swaps
    /// the shadow tables in with the live checkpoints in one transaction;
    /// the live runners then go on from there. A rebuild that fails at any
    /// point leaves the live read models as they were.
    pub async fn replay(
        &self,
        only: Option<&str>,
        lease_wait: Duration,
        progress: impl FnMut(&str, u64, u64),
    ) -> Result<Replayed, StoreError> {
        let live = self.runners(only)?;
        let identity = Arc::new(ProcessIdentity::current(None));
        let lock = Lease {
            name: REBUILD,
            owner: identity.tag(),
            identity: Some(identity),
            term: REBUILD_LEASE,
        };
        let deadline = tokio::time::Instant::now() + lease_wait;
        while !lock.acquire(&self.db.any).await? {
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::RebuildBusy);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let tables = live
            .iter()
            .flat_map(|r| r.projection().tables().iter().copied())
            .collect();
        let rebuilt = match Shadow::create(&self.db, tables, live.len() as u32 + 2).await {
            Ok(shadow) => {
                let rebuild = self.rebuild(&shadow, &live, &lock, progress);
                let rebuilt = holding(&lock, &self.db.any, rebuild).await;
                // The live leases go back whatever happened (a lease not
                // held is left alone), and the shadow's remains are dropped.
                for runner in &live {
                    let released = runner.lease_as(&lock.owner).release(&self.db.any).await;
                    if let Err(error) = released {
                        tracing::warn!(projection = runner.name(), %error, "could not release a live lease after a rebuild; it expires");
                    }
                }
                let discarded = shadow.discard(&self.db).await;
                rebuilt.and_then(|rebuilt| discarded.map(|()| rebuilt))
            }
            Err(error) => Err(error),
        };
        // The rebuild's own error, if any, is the one to report.
        let released = lock.release(&self.db.any).await;
        let rebuilt = rebuilt?;
        released?;
        Ok(rebuilt)
    }

    /// The rebuild of `live`'s projections into `shadow`, under `lock`:
    /// load, catch up, swap.
    async fn rebuild(
        &self,
        shadow: &Shadow,
        live: &[Projector],
        lock: &Lease,
        mut progress: impl FnMut(&str, u64, u64),
    ) -> Result<Replayed, StoreError> {
        let log = GlobalLog::new(self.db.clone());
        let total = log.count().await? as u64;
        let runners: Vec<Projector> = live
            .iter()
            .map(|r| {
                r.on(shadow.db.clone(), lock.owner.clone())
                    .with_batch_size(REPLAY_BATCH)
            })
            .collect();
        let label = runners
            .iter()
            .map(|r| r.name())
            .collect::<Vec<_>>()
            .join(", ");
        for runner in &runners {
            if !runner.acquire_lease().await? {
                return Err(StoreError::ProjectionBusy(runner.name()));
            }
        }
        let deferred: Vec<&'static str> = runners
            .iter()
            .flat_map(|r| r.projection().deferred_indexes().iter().copied())
            .collect();
        shadow.db.defer_indexes(&deferred).await?;
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
                    // so the load is complete once that many have been
                    // seen. On PostgreSQL the log may still hold some back
                    // while an older transaction (in any database of the
                    // server) is open: wait.
                    if seen >= total {
                        return Ok(seen);
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
        let loaded = read?;
        cost.sort_by_key(|(name, _)| runners.iter().position(|r| r.name() == *name));
        // What the log gained during the load, while the live models serve.
        let mut events = loaded + catch_up(&runners).await?;
        let started = Instant::now();
        if self.db.is_postgres() {
            // SQLite copies rows into the live tables, whose indexes are
            // built there: the shadow's would be thrown away.
            shadow.db.build_deferred_indexes().await?;
        }
        let indexing = started.elapsed();
        // The swap: the live runners pause from here to the commit.
        let started = Instant::now();
        for runner in live {
            runner.lease_as(&lock.owner).take(&self.db.any).await?;
        }
        events += catch_up(&runners).await?;
        let names: Vec<&'static str> = runners.iter().map(|r| r.name()).collect();
        shadow.swap(&self.db, &names, &lock.owner).await?;
        let swap = started.elapsed();
        Ok(Replayed {
            events,
            cost,
            indexing,
            swap,
        })
    }
}

/// Runs `work` while renewing `lock` every third of its term, however long
/// a single step of it takes (an index build, SQLite's copy): a lease that
/// expired mid-rebuild would let a second rebuild start and drop this one's
/// shadow. If the lease is lost all the same, `work` is abandoned (its open
/// transaction rolls back) with [`StoreError::RebuildBusy`].
async fn holding<T>(
    lock: &Lease,
    pool: &sqlx::AnyPool,
    work: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let mut work = std::pin::pin!(work);
    let mut renew = tokio::time::interval(lock.term / 3);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; the lease was just taken.
    renew.tick().await;
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = renew.tick() => {
                if !lock.acquire(pool).await? {
                    return Err(StoreError::RebuildBusy);
                }
            }
        }
    }
}

/// Applies to each of `runners` what the log holds past its checkpoint;
/// answers how many log events that was (the most any runner applied).
async fn catch_up(runners: &[Projector]) -> Result<u64, StoreError> {
    let mut most = 0u64;
    for runner in runners {
        let mut applied = 0u64;
        loop {
            let step = runner.step().await? as u64;
            if step == 0 {
                break;
            }
            applied += step;
        }
        most = most.max(applied);
    }
    Ok(most)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Database;

    async fn database() -> Database {
        let db = Database::connect(&test_support::db::fresh_sqlite(), 4)
            .await
            .unwrap();
        db.migrate().await.unwrap();
        db
    }

    fn lease(owner: &str) -> Lease {
        Lease {
            name: REBUILD,
            owner: owner.into(),
            identity: None,
            term: Duration::from_millis(300),
        }
    }

    #[tokio::test]
    async fn a_rebuild_keeps_its_lease_through_a_step_longer_than_the_term() {
        let db = database().await;
        let (mine, other) = (lease("mine"), lease("other"));
        assert!(mine.acquire(&db.any).await.unwrap());
        let taken_meanwhile = holding(&mine, &db.any, async {
            // One step of three terms.
            tokio::time::sleep(Duration::from_millis(900)).await;
            other.acquire(&db.any).await
        })
        .await
        .unwrap();
        assert!(!taken_meanwhile, "a second rebuild got the lease");
    }

    #[tokio::test]
    async fn a_rebuild_whose_lease_was_taken_stops() {
        let db = database().await;
        let (mine, other) = (lease("mine"), lease("other"));
        assert!(mine.acquire(&db.any).await.unwrap());
        let result = holding(&mine, &db.any, async {
            other.take(&db.any).await?;
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        })
        .await;
        assert!(matches!(result, Err(StoreError::RebuildBusy)), "{result:?}");
    }
}
