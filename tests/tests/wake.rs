//! Processes tell each other of commits on PostgreSQL. Its own test binary:
//! the log shows a transaction only once every older one on the server has
//! ended, so tests running beside it in the same binary would hold its
//! events back and blur what it measures.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::metadata::{Actor, EventMetadata};
use projections::GlobalLog;
use test_support::{Recorder, database, fresh_postgres};
use tokio::sync::watch;
use uuid::Uuid;

/// Appends one raw event, telling no process.
async fn append_one(db: &projections::Database) {
    let meta = EventMetadata::new(Uuid::new_v4(), Actor::System, Uuid::new_v4(), Utc::now());
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('Campaign', $1, 1, 'CampaignActivated', '1', '\"CampaignActivated\"', $2::json)",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(serde_json::to_string(&meta.to_map()).unwrap())
    .execute(&db.any)
    .await
    .unwrap();
}

/// Two processes on one PostgreSQL database: one leads the projection, the
/// other only waits for it. The waiter wakes the leader's runner (NOTIFY
/// herald_wake) and hears of its commit (NOTIFY herald_checkpoint) instead
/// of leaving both to their polls (the runner's 100 ms, the waiter's
/// 250 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_in_another_process_wakes_the_leader_and_hears_its_commit() {
    let db = database(&fresh_postgres().await).await;
    Recorder::install(&db).await;
    let leader = projections::Projectors::of(db.clone(), vec![Arc::new(Recorder)]);
    let waiter = projections::Projectors::of(db.clone(), vec![Arc::new(Recorder)]);
    let (stop, shutdown) = watch::channel(false);
    let mut tasks = leader.spawn(shutdown.clone());
    tasks.push(("leader listener".into(), leader.follow(shutdown.clone())));
    tasks.push(("waiter listener".into(), waiter.follow(shutdown)));

    let log = GlobalLog::new(db.clone());
    let wait = Duration::from_secs(10);
    append_one(&db).await;
    let first = log.last().await.unwrap().unwrap();
    assert!(waiter.wait_for(first, &["recorder"], wait).await.unwrap());
    // Let both listeners settle on their connections.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut took = Vec::new();
    for _ in 0..7 {
        // A commit nobody in the leader's process is told of.
        append_one(&db).await;
        let last = log.last().await.unwrap().unwrap();
        let started = std::time::Instant::now();
        assert!(waiter.wait_for(last, &["recorder"], wait).await.unwrap());
        took.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    took.sort();
    let median = took[took.len() / 2];
    assert!(
        // Measured: 2–3 ms with both notifications, ~52 ms without the
        // wake-up (the runner's poll), 250 ms without the commit's.
        median < Duration::from_millis(25),
        "waits took {took:?}: the polls answered, not the notifications"
    );
    assert_eq!(Recorder::seen(&db).await.len(), 8);
    stop.send_replace(true);
    for (_, task) in tasks {
        task.await.unwrap();
    }
}
