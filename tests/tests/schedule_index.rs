//! The workers' side of the schedule index: claims under a lease, shared by
//! several workers, and given back many per statement.

use projections::publishing::ScheduleIndex;
use test_support::{Backend, database, on_both_databases};
use uuid::Uuid;

/// Index rows due at `due` (microseconds), as the schedule projection writes them.
async fn due_posts(db: &projections::Database, n: usize, due: i64) -> Vec<Uuid> {
    let tenant = Uuid::now_v7().to_string();
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = Uuid::now_v7();
        sqlx::query("INSERT INTO rm_schedule (post_id, tenant_id, due_at) VALUES ($1, $2, $3)")
            .bind(id.to_string())
            .bind(&tenant)
            .bind(due)
            .execute(&db.any)
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

async fn claims_are_exclusive_and_come_back_when_released(backend: Backend) {
    let db = database(&backend.fresh().await).await;
    let index = ScheduleIndex::new(&db);
    let ids = due_posts(&db, 6, 1_000).await;
    let now = 2_000;
    let lease_until = 60_000_000;

    let first = index.claim("a", now, lease_until, 4).await.unwrap();
    let second = index.claim("b", now, lease_until, 4).await.unwrap();
    assert_eq!(first.len(), 4);
    assert_eq!(second.len(), 2, "b gets only what a did not hold");
    let mut all: Vec<Uuid> = first.iter().chain(&second).map(|c| c.post_id).collect();
    all.dedup();
    assert_eq!(sorted(all), sorted(ids.clone()), "each post claimed once");
    assert!(
        index
            .claim("c", now, lease_until, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A gives three back in one call: two at once, one later. A release
    // naming b's claim does nothing: it is not a's.
    let (soon, later) = (first[0].post_id, first[1].post_id);
    let held = first[2].post_id;
    let not_a = second[0].post_id;
    index
        .release(
            "a",
            &[
                (soon, 1_500),
                (later, 5_000),
                (first[3].post_id, 1_500),
                (not_a, 0),
            ],
        )
        .await
        .unwrap();
    let again = index.claim("c", now, lease_until, 10).await.unwrap();
    assert_eq!(
        sorted(again.iter().map(|c| c.post_id).collect()),
        sorted(vec![soon, first[3].post_id])
    );
    let at_5s: Vec<Uuid> = index
        .claim("c", 5_001, lease_until, 10)
        .await
        .unwrap()
        .iter()
        .map(|c| c.post_id)
        .collect();
    assert_eq!(at_5s, vec![later], "released for later: claimable then");
    assert!(
        !at_5s.contains(&held) && !at_5s.contains(&not_a),
        "held claims stay held"
    );
    // After its lease, a claim that was never given back is free again.
    let expired: Vec<Uuid> = index
        .claim("d", lease_until + 1, lease_until * 2, 10)
        .await
        .unwrap()
        .iter()
        .map(|c| c.post_id)
        .collect();
    assert_eq!(expired.len(), 6);
    db.any.close().await;
}

async fn a_large_release_is_split_into_statements(backend: Backend) {
    let db = database(&backend.fresh().await).await;
    let index = ScheduleIndex::new(&db);
    let ids = due_posts(&db, 1_200, 1_000).await;
    let claimed = index.claim("a", 2_000, 60_000_000, 2_000).await.unwrap();
    assert_eq!(claimed.len(), ids.len());
    let releases: Vec<(Uuid, i64)> = claimed.iter().map(|c| (c.post_id, 1_500)).collect();
    index.release("a", &releases).await.unwrap();
    let again = index.claim("b", 2_000, 60_000_000, 2_000).await.unwrap();
    assert_eq!(again.len(), ids.len());
    db.any.close().await;
}

on_both_databases!(
    claims_are_exclusive_and_come_back_when_released,
    a_large_release_is_split_into_statements,
);
