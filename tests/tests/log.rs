//! The global log and the projector runner against real databases: commits
//! out of position order, crash and restart mid-catch-up, replay equal to the
//! live read model, upcasting of old event shapes, and bounded conflict retry.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::Scoped;
use domain::metadata::{Actor, EventMetadata};
use domain::post::{CampaignFacts, EntryInput, PostCommand, parse_entries};
use projections::db::Backend as Db;
use projections::{Database, GlobalLog, Projector, Repository};
use serde_json::json;
use test_support::{
    Backend, Recorder, database, eventually, fresh_postgres, on_both_databases, spawn_app,
};
use tokio::sync::watch;
use uuid::Uuid;

on_both_databases!(
    a_crash_mid_catch_up_loses_and_duplicates_nothing,
    a_replayed_read_model_equals_the_live_one,
    an_old_event_shape_loads_through_the_upcaster,
    a_long_stream_loads_from_its_snapshot_to_the_same_state,
    a_failing_projection_holds_back_only_itself,
    an_interrupted_replays_indexes_are_built_at_the_next_start,
    a_rebuild_serves_queries_throughout_and_swaps_in_equal,
    a_failed_rebuild_leaves_the_live_models_untouched,
    a_remembered_state_is_never_trusted_over_the_stored_stream,
    concurrent_held_commands_are_appended_together_each_exactly_once,
    a_projection_whose_lease_was_taken_writes_nothing_while_the_others_go_on,
);

fn metadata() -> String {
    let meta = EventMetadata::new(Uuid::new_v4(), Actor::System, Uuid::new_v4(), Utc::now());
    serde_json::to_string(&meta.to_map()).unwrap()
}

const INSERT_PG: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
                         VALUES ('Campaign', $1, $2, 'CampaignActivated', '1', '\"CampaignActivated\"', $3::json)";

fn pg(db: &Database) -> sqlx::PgPool {
    match &db.backend {
        Db::Postgres(pool) => pool.clone(),
        Db::Sqlite(_) => panic!("PostgreSQL expected"),
    }
}

/// Appends `n` raw events (one per aggregate) in one transaction per backend.
async fn seed(db: &Database, n: usize) -> Vec<(String, i64)> {
    let ids: Vec<(String, i64)> = (0..n).map(|_| (Uuid::new_v4().to_string(), 1)).collect();
    let meta = metadata();
    // PostgreSQL's event columns are json; SQLite's are text.
    let sql = match db.backend {
        Db::Postgres(_) => INSERT_PG.to_string(),
        Db::Sqlite(_) => INSERT_PG.replace("$3::json", "$3"),
    };
    let mut tx = db.any.begin().await.unwrap();
    for (id, seq) in &ids {
        sqlx::query(&sql)
            .bind(id)
            .bind(seq)
            .bind(&meta)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    ids
}

async fn drain(runner: &Projector) {
    while runner.step().await.unwrap() > 0 {}
}

/// The first `expected` events of the global log, waiting while an older
/// transaction anywhere on the server still holds them back.
async fn log_events(db: &Database, expected: usize) -> Vec<projections::StoredEvent> {
    let log = GlobalLog::new(db.clone());
    for _ in 0..3000 {
        let events = log
            .read_after(Default::default(), expected as i64)
            .await
            .unwrap();
        if events.len() >= expected {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the log never showed {expected} events");
}

/// Steps until the recorder has seen `expected` events. The log may hold
/// committed events back while any older transaction on the server is open
/// (transaction ids are cluster-wide: a parallel test counts too).
async fn drain_until(runner: &Projector, db: &Database, expected: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        drain(runner).await;
        if Recorder::seen(db).await.len() >= expected {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "log stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_event_committed_out_of_position_order_is_not_skipped() {
    let db = database(&fresh_postgres().await).await;
    Recorder::install(&db).await;
    let runner = Projector::new(db.clone(), Arc::new(Recorder), "test".into());
    assert!(runner.acquire_lease().await.unwrap());
    let pool = pg(&db);
    let meta = metadata();

    // The slow transaction takes position 1 first but commits last.
    let mut slow = pool.begin().await.unwrap();
    sqlx::query(INSERT_PG)
        .bind("slow")
        .bind(1i64)
        .bind(&meta)
        .execute(&mut *slow)
        .await
        .unwrap();
    let mut fast = pool.begin().await.unwrap();
    sqlx::query(INSERT_PG)
        .bind("fast")
        .bind(1i64)
        .bind(&meta)
        .execute(&mut *fast)
        .await
        .unwrap();
    fast.commit().await.unwrap();

    // A reader following `position > checkpoint` would now see position 2 and
    // move its checkpoint past position 1 for good.
    let visible: Vec<(i64, String)> =
        sqlx::query_as("SELECT global_position, aggregate_id FROM events ORDER BY global_position")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(visible, vec![(2, "fast".to_string())]);
    drain(&runner).await;
    assert!(
        Recorder::seen(&db).await.is_empty(),
        "the log waits for the older transaction"
    );

    slow.commit().await.unwrap();
    drain_until(&runner, &db, 2).await;
    let seen = Recorder::seen(&db).await;
    assert_eq!(seen, vec![("slow".to_string(), 1), ("fast".to_string(), 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_are_each_projected_exactly_once() {
    let db = database(&fresh_postgres().await).await;
    Recorder::install(&db).await;
    let runner = Projector::new(db.clone(), Arc::new(Recorder), "test".into()).with_batch_size(7);
    assert!(runner.acquire_lease().await.unwrap());
    let pool = pg(&db);
    let meta = metadata();
    let (done_tx, done_rx) = watch::channel(false);

    // The projector follows the log while 8 writers commit 25 events each,
    // holding their transactions open for random times so commits interleave.
    let follower = {
        let runner = runner.clone();
        tokio::spawn(async move {
            while !*done_rx.borrow() {
                runner.step().await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let pool = pool.clone();
            let meta = meta.clone();
            tokio::spawn(async move {
                let mut written = Vec::new();
                for i in 0..25 {
                    let id = format!("w{w}-{i}");
                    let mut tx = pool.begin().await.unwrap();
                    sqlx::query(INSERT_PG)
                        .bind(&id)
                        .bind(1i64)
                        .bind(&meta)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    sqlx::query("SELECT pg_sleep(random() * 0.01)")
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                    written.push((id, 1i64));
                }
                written
            })
        })
        .collect();
    let mut expected = Vec::new();
    for w in writers {
        expected.extend(w.await.unwrap());
    }
    done_tx.send_replace(true);
    follower.await.unwrap();
    drain_until(&runner, &db, 200).await;
    drain(&runner).await;

    let mut seen = Recorder::seen(&db).await;
    assert_eq!(seen.len(), 200, "every event exactly once");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 200, "no duplicates");
    expected.sort();
    assert_eq!(seen, expected);
}

async fn a_crash_mid_catch_up_loses_and_duplicates_nothing(backend: Backend) {
    let db = database(&backend.fresh().await).await;
    Recorder::install(&db).await;
    let mut expected = seed(&db, 3000).await;
    let lease = Duration::from_millis(300);
    let first = Projector::new(db.clone(), Arc::new(Recorder), "first".into())
        .with_batch_size(50)
        .with_lease(lease);
    let (_appended, appended_rx) = watch::channel(0u64);
    let (_stop, stop_rx) = watch::channel(false);
    let crashed = tokio::spawn(first.clone().run(appended_rx.clone(), stop_rx.clone()));
    // Kill it mid-way: the task is dropped wherever it is, its open
    // transaction rolled back and its lease left behind.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while first.checkpoint().await.unwrap().seq < 500 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "projector made no progress"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    crashed.abort();
    let _ = crashed.await;
    let at_crash = first.checkpoint().await.unwrap().seq;
    assert!(
        at_crash < 3000,
        "crashed before catching up (at {at_crash})"
    );

    // A restarted process takes over once the dead lease expires.
    let second =
        Projector::new(db.clone(), Arc::new(Recorder), "second".into()).with_batch_size(50);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !second.acquire_lease().await.unwrap() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drain_until(&second, &db, 3000).await;
    drain(&second).await;

    let mut seen = Recorder::seen(&db).await;
    assert_eq!(seen.len(), 3000, "nothing lost or applied twice");
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected);
}

/// A projection that fails while `broken` is set, after writing a row: a
/// failed batch must leave nothing behind.
struct Brittle {
    broken: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl projections::Projection for Brittle {
    fn name(&self) -> &'static str {
        "brittle"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["brittle_seen"]
    }

    async fn apply(
        &self,
        conn: &mut sqlx::AnyConnection,
        events: &[projections::StoredEvent],
    ) -> Result<(), projections::StoreError> {
        for event in events {
            sqlx::query("INSERT INTO brittle_seen (seq) VALUES ($1)")
                .bind(event.position.seq)
                .execute(&mut *conn)
                .await?;
        }
        if self.broken.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(projections::StoreError::ProjectionBusy(
                "brittle, on purpose",
            ));
        }
        Ok(())
    }
}

async fn a_failing_projection_holds_back_only_itself(backend: Backend) {
    let db = database(&backend.fresh().await).await;
    Recorder::install(&db).await;
    sqlx::query("CREATE TABLE brittle_seen (seq bigint NOT NULL)")
        .execute(&db.any)
        .await
        .unwrap();
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let projectors = projections::Projectors::of(
        db.clone(),
        vec![
            Arc::new(Recorder),
            Arc::new(Brittle {
                broken: broken.clone(),
            }),
        ],
    );
    let (stop, shutdown) = watch::channel(false);
    let tasks = projectors.spawn(shutdown);
    seed(&db, 30).await;
    let last = GlobalLog::new(db.clone()).last().await.unwrap().unwrap();

    let wait = Duration::from_secs(20);
    assert!(
        projectors
            .wait_for(last, &["recorder"], wait)
            .await
            .unwrap()
    );
    assert_eq!(Recorder::seen(&db).await.len(), 30);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM brittle_seen")
        .fetch_one(&db.any)
        .await
        .unwrap();
    assert_eq!(rows, 0, "a failed batch is rolled back");
    assert!(
        !projectors
            .wait_for(last, &["brittle"], Duration::from_millis(10))
            .await
            .unwrap(),
        "the failing projection did not move"
    );

    broken.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(projectors.wait_for_all(last, wait).await.unwrap());
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM brittle_seen")
        .fetch_one(&db.any)
        .await
        .unwrap();
    assert_eq!(rows, 30, "once repaired it applies every event once");
    stop.send_replace(true);
    for (_, task) in tasks {
        task.await.unwrap();
    }
}

async fn a_replayed_read_model_equals_the_live_one(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    let (token, _) = app.sign_up("Acme", "ada@example.org").await;
    for c in 0..3 {
        let campaign = app.create_campaign(&token, &format!("Campaign {c}")).await;
        for p in 0..6 {
            let post = app
                .create_post(&token, &campaign, &format!("post {p} #tag"))
                .await;
            if p % 2 == 0 {
                let body = app
                    .gql(Some(&token), "mutation($i: SchedulePostInput!) { schedulePost(input: $i) { id } }",
                        json!({"i": {"postId": post, "at": format!("2030-0{}-01T09:00:00Z", p + 1), "recurrence": "FREQ=DAILY"}}))
                    .await;
                assert!(body["errors"].is_null(), "{body}");
            }
            if p == 2 {
                app.gql(
                    Some(&token),
                    "mutation($id: ID!) { cancelPost(id: $id) { id } }",
                    json!({"id": post}),
                )
                .await;
            }
            if p == 5 {
                app.gql(
                    Some(&token),
                    "mutation($id: ID!) { deletePost(id: $id) { id } }",
                    json!({"id": post}),
                )
                .await;
            }
        }
        app.gql(
            Some(&token),
            "mutation($id: ID!) { activateCampaign(id: $id) { id } }",
            json!({"id": campaign}),
        )
        .await;
    }
    let live = app.state.dashboard.snapshot().await.unwrap();
    assert_eq!(live.0.len(), 3);
    assert_eq!(live.1.len(), 15, "one post per campaign was deleted");

    let replay = app
        .state
        .projectors
        .replay(None, Duration::from_secs(5), |_, _, _| {})
        .await
        .unwrap();
    assert_eq!(
        replay.events,
        app.event_count().await as u64,
        "each log event counted once"
    );
    let costed: Vec<&str> = replay.cost.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        costed,
        app.state.projectors.names(),
        "a cost per projection"
    );
    let replayed = app.state.dashboard.snapshot().await.unwrap();
    assert_eq!(replayed, live);
    // The indexes the replay dropped for its load are back, none pending.
    let db = &app.state.db;
    for index in DEFERRED {
        assert!(index_exists(db, index).await, "{index} built again");
    }
    assert_eq!(pending_indexes(db).await, 0);
}

const CAMPAIGNS: &str =
    "{ campaigns(first: 50) { edges { node { id name postCounts { draft total } } } } }";
const QUEUE: &str =
    "query($c: ID!) { posts(first: 50, filter: {campaignId: $c}) { edges { node { id } } } }";

/// `campaign` with its name and post counts, and its posts, as the API
/// answers them.
async fn dashboard_view(
    app: &test_support::TestApp,
    token: &str,
    campaign: &str,
) -> serde_json::Value {
    let campaigns = app.gql(Some(token), CAMPAIGNS, json!({})).await;
    assert!(campaigns["errors"].is_null(), "{campaigns}");
    let listed: Vec<&serde_json::Value> = campaigns["data"]["campaigns"]["edges"]
        .as_array()
        .expect("campaigns")
        .iter()
        .filter(|edge| edge["node"]["id"] == campaign)
        .collect();
    let posts = app.gql(Some(token), QUEUE, json!({"c": campaign})).await;
    assert!(posts["errors"].is_null(), "{posts}");
    json!({"campaign": listed, "posts": posts["data"]})
}

/// Row-level security and grants of the read models, as the catalogue
/// has them (PostgreSQL), or nothing (SQLite has neither).
async fn guards(db: &Database) -> Vec<(String, bool, i64)> {
    if !db.is_postgres() {
        return Vec::new();
    }
    sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity,
                (SELECT COUNT(*) FROM pg_policies p WHERE p.schemaname = 'public' AND p.tablename = c.relname)
                + (SELECT COUNT(*) FROM information_schema.role_table_grants g
                    WHERE g.table_schema = 'public' AND g.table_name = c.relname AND g.grantee = 'herald_reader')
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname LIKE 'rm\\_%'
          ORDER BY 1",
    )
    .fetch_all(&db.any)
    .await
    .unwrap()
}

/// What a rebuild may leave behind: the PostgreSQL shadow schema, or the
/// SQLite shadow file.
async fn shadow_left(db: &Database) -> bool {
    match &db.backend {
        Db::Postgres(_) => {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM pg_namespace WHERE nspname = 'herald_rebuild'",
            )
            .fetch_one(&db.any)
            .await
            .unwrap();
            n > 0
        }
        Db::Sqlite(pool) => {
            let mut path = pool.connect_options().get_filename().as_os_str().to_owned();
            path.push(".rebuild");
            std::path::Path::new(&path).exists()
        }
    }
}

async fn a_rebuild_serves_queries_throughout_and_swaps_in_equal(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    let (token, _) = app.sign_up("Acme", "ada@example.org").await;
    let first = app.create_campaign(&token, "Before").await;
    for p in 0..12 {
        app.create_post(&token, &first, &format!("post {p}")).await;
    }
    // Enough log for the rebuild to take a while (other aggregates' events).
    seed(&app.state.db, 20_000).await;
    app.settled().await;
    let before = dashboard_view(&app, &token, &first).await;
    assert_eq!(
        before["posts"]["posts"]["edges"].as_array().unwrap().len(),
        12
    );
    assert_eq!(before["campaign"][0]["node"]["postCounts"]["total"], 12);
    let (campaigns, posts) = app.state.dashboard.snapshot().await.unwrap();
    let guarded = guards(&app.state.db).await;

    // Clients read and write while the read models are rebuilt.
    let done = std::sync::atomic::AtomicBool::new(false);
    let rebuild = async {
        let replayed = app
            .state
            .projectors
            .replay(None, Duration::from_secs(5), |_, _, _| {})
            .await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        replayed
    };
    let clients = async {
        let during = app.create_campaign(&token, "During").await;
        let mut reads = 0;
        let mut written = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            assert_eq!(
                dashboard_view(&app, &token, &first).await,
                before,
                "the live read models answer, unchanged, during the rebuild"
            );
            reads += 1;
            if reads % 3 == 0 {
                app.create_post(&token, &during, &format!("during {written}"))
                    .await;
                written += 1;
            }
        }
        (during, reads, written)
    };
    let (replayed, (during, reads, written)) = tokio::join!(rebuild, clients);
    let replayed = replayed.expect("the rebuild succeeds");
    assert!(
        reads > 0 && written > 0,
        "clients read ({reads}) and wrote ({written}) during the rebuild"
    );
    assert!(replayed.events > 0);

    // What was written during the rebuild is there after the swap, and
    // what was there before is unchanged.
    app.create_post(&token, &during, "after").await;
    app.settled().await;
    assert_eq!(dashboard_view(&app, &token, &first).await, before);
    let (campaigns_after, posts_after) = app.state.dashboard.snapshot().await.unwrap();
    let kept: Vec<_> = campaigns_after
        .iter()
        .filter(|c| c.id != during)
        .cloned()
        .collect();
    assert_eq!(kept, campaigns);
    let kept: Vec<_> = posts_after
        .iter()
        .filter(|p| p.campaign_id != during)
        .cloned()
        .collect();
    assert_eq!(kept, posts);
    let added = posts_after
        .iter()
        .filter(|p| p.campaign_id == during)
        .count();
    assert_eq!(
        added,
        written + 1,
        "every post written during the rebuild, and after it"
    );

    // The rebuilt tables are guarded as the old ones were; nothing is left.
    assert_eq!(guards(&app.state.db).await, guarded);
    assert!(!shadow_left(&app.state.db).await);
}

async fn a_failed_rebuild_leaves_the_live_models_untouched(backend: Backend) {
    let db = database(&backend.fresh().await).await;
    sqlx::query("CREATE TABLE brittle_seen (seq bigint NOT NULL)")
        .execute(&db.any)
        .await
        .unwrap();
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let projectors = projections::Projectors::of(
        db.clone(),
        vec![Arc::new(Brittle {
            broken: broken.clone(),
        })],
    );
    seed(&db, 30).await;
    let live = &projectors.runners(None).unwrap()[0];
    let seen = || async {
        sqlx::query_as::<_, (i64,)>("SELECT COUNT(*) FROM brittle_seen")
            .fetch_one(&db.any)
            .await
            .unwrap()
            .0
    };
    // The log may hold the events back while another test's transaction
    // on the server is open.
    assert!(live.acquire_lease().await.unwrap());
    for _ in 0..3000 {
        drain(live).await;
        if seen().await == 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    live.release_lease().await.unwrap();
    assert_eq!(seen().await, 30);
    let checkpoint = live.checkpoint().await.unwrap();

    broken.store(true, std::sync::atomic::Ordering::SeqCst);
    let failed = projectors
        .replay(None, Duration::from_secs(1), |_, _, _| {})
        .await;
    assert!(failed.is_err(), "the projection failed in the shadow");
    assert_eq!(seen().await, 30, "the live table is untouched");
    assert_eq!(live.checkpoint().await.unwrap(), checkpoint);
    assert!(
        live.acquire_lease().await.unwrap(),
        "the live lease is free"
    );
    live.release_lease().await.unwrap();
    assert!(!shadow_left(&db).await, "the shadow is dropped");

    // Repaired, the next rebuild starts at once and swaps in.
    broken.store(false, std::sync::atomic::Ordering::SeqCst);
    let replayed = projectors
        .replay(None, Duration::ZERO, |_, _, _| {})
        .await
        .unwrap();
    assert_eq!(replayed.events, 30);
    assert_eq!(seen().await, 30);
    assert_eq!(live.checkpoint().await.unwrap(), checkpoint);
}

/// Indexes the read models let a replay build after its load.
const DEFERRED: [&str; 4] = [
    "rm_audit_by_time",
    "rm_posts_queue",
    "rm_posts_campaign_queue",
    "rm_schedule_due",
];

async fn index_exists(db: &Database, name: &str) -> bool {
    let sql = match db.backend {
        Db::Postgres(_) => "SELECT COUNT(*) FROM pg_indexes WHERE indexname = $1",
        Db::Sqlite(_) => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = $1",
    };
    let (n,): (i64,) = sqlx::query_as(sql)
        .bind(name)
        .fetch_one(&db.any)
        .await
        .unwrap();
    n == 1
}

async fn pending_indexes(db: &Database) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM deferred_indexes")
        .fetch_one(&db.any)
        .await
        .unwrap();
    n
}

async fn an_interrupted_replays_indexes_are_built_at_the_next_start(backend: Backend) {
    let db = database(&backend.fresh().await).await;
    // A replay dropped its indexes and stopped before building them again.
    db.defer_indexes(&DEFERRED).await.unwrap();
    for index in DEFERRED {
        assert!(!index_exists(&db, index).await, "{index} dropped");
    }
    assert_eq!(pending_indexes(&db).await, DEFERRED.len() as i64);
    // Deferring again (a second replay that also stopped) loses none.
    db.defer_indexes(&DEFERRED).await.unwrap();
    assert_eq!(pending_indexes(&db).await, DEFERRED.len() as i64);

    // The next start of a process migrates, which builds them.
    db.migrate().await.unwrap();
    for index in DEFERRED {
        assert!(index_exists(&db, index).await, "{index} built at start");
    }
    assert_eq!(pending_indexes(&db).await, 0);
}

async fn an_old_event_shape_loads_through_the_upcaster(backend: Backend) {
    let db = database(&backend.fresh().await).await;
    let tenant = Uuid::new_v4();
    let post_id = Uuid::new_v4().to_string();
    // PostCreated as version 1 stored it: `lang`, no `facets`.
    let payload = json!({"PostCreated": {"tenant_id": tenant, "campaign_id": Uuid::new_v4(),
        "entries": [{"text": "old #shape", "lang": "en"}]}})
    .to_string();
    let meta = EventMetadata::new(tenant, Actor::System, Uuid::new_v4(), Utc::now());
    let meta = serde_json::to_string(&meta.to_map()).unwrap();
    let sql = match db.backend {
        Db::Postgres(_) => {
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) VALUES ('Post', $1, 1, 'PostCreated', '1', CAST($2 AS json), CAST($3 AS json))"
        }
        Db::Sqlite(_) => {
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) VALUES ('Post', $1, 1, 'PostCreated', '1', $2, $3)"
        }
    };
    sqlx::query(sql)
        .bind(&post_id)
        .bind(&payload)
        .bind(&meta)
        .execute(&db.any)
        .await
        .unwrap();

    // The aggregate loads it...
    let repo: Repository<domain::post::Post> = Repository::new(&db, Arc::new(watch::channel(0).0));
    let post = repo.load(&post_id).await.unwrap();
    assert_eq!(post.entries[0].langs, vec!["en".to_string()]);
    assert_eq!(post.entries[0].facets.len(), 1);
    // ...so do the global log and the dashboard projection.
    let events = log_events(&db, 1).await;
    // Upcast through every step to the current version.
    assert_eq!(events[0].event_version, "3");
    let projectors = projections::Projectors::new(db.clone());
    projectors
        .replay(None, Duration::from_secs(1), |_, _, _| {})
        .await
        .unwrap();
    let row = projections::dashboard::DashboardQueries::new(db.any.clone())
        .post(tenant, post_id.parse().unwrap())
        .await
        .unwrap()
        .expect("projected");
    assert!(
        row.entries.contains("\"langs\":[\"en\"]"),
        "{}",
        row.entries
    );
    // And new events append after it.
    let entries = parse_entries(
        &[EntryInput {
            text: "new shape".into(),
            langs: vec![],
            media: vec![],
        }],
        false,
    )
    .unwrap();
    let meta = EventMetadata::new(tenant, Actor::System, Uuid::new_v4(), Utc::now());
    repo.execute(
        &post_id,
        Scoped {
            tenant_id: tenant,
            command: PostCommand::Update { entries },
        },
        &meta,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_held_state_is_decided_afresh_when_someone_else_wrote_meanwhile() {
    let db = database(&test_support::fresh_sqlite()).await;
    let repo = Repository::<domain::post::Post>::new(&db, Arc::new(watch::channel(0).0));
    let tenant = Uuid::new_v4();
    let id = Uuid::new_v4().to_string();
    let meta = EventMetadata::new(tenant, Actor::System, Uuid::new_v4(), Utc::now());
    let command = |c| Scoped {
        tenant_id: tenant,
        command: c,
    };
    let entries = |t: &str| {
        parse_entries(
            &[EntryInput {
                text: t.into(),
                ..Default::default()
            }],
            false,
        )
        .unwrap()
    };
    repo.create(
        &id,
        command(PostCommand::Create {
            campaign: CampaignFacts {
                id: Uuid::new_v4(),
                archived: false,
            },
            connection: None,
            entries: entries("v0"),
        }),
        &meta,
    )
    .await
    .unwrap();
    let mut held = repo.load_versioned(&id).await.unwrap();
    // Two commands on the held state: no reload needed, the state follows.
    repo.execute_loaded(
        &mut held,
        command(PostCommand::Update {
            entries: entries("v1"),
        }),
        &meta,
    )
    .await
    .unwrap();
    assert_eq!(held.sequence, 2);
    assert_eq!(held.state.entries[0].text.as_str(), "v1");
    // Someone else deletes the post; the held state is stale.
    repo.execute(&id, command(PostCommand::Delete), &meta)
        .await
        .unwrap();
    let result = repo
        .execute_loaded(
            &mut held,
            command(PostCommand::Update {
                entries: entries("v2"),
            }),
            &meta,
        )
        .await;
    assert!(
        matches!(
            result,
            Err(projections::CommandError::Rejected(
                domain::DomainError::NotFound(_)
            ))
        ),
        "decided on the fresh state: {result:?}"
    );
    assert!(held.state.deleted, "the held state was reloaded");
    assert_eq!(held.sequence, 3);
    let (events,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events WHERE aggregate_id = $1")
        .bind(&id)
        .fetch_one(&db.any)
        .await
        .unwrap();
    assert_eq!(events, 3, "the stale update appended nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commands_on_one_aggregate_retry_then_report_conflict() {
    let db = database(&fresh_postgres().await).await;
    let repo = Arc::new(Repository::<domain::post::Post>::new(
        &db,
        Arc::new(watch::channel(0).0),
    ));
    let tenant = Uuid::new_v4();
    let id = Uuid::new_v4().to_string();
    let meta = EventMetadata::new(tenant, Actor::System, Uuid::new_v4(), Utc::now());
    let entries = |t: &str| {
        parse_entries(
            &[EntryInput {
                text: t.into(),
                langs: vec![],
                media: vec![],
            }],
            false,
        )
        .unwrap()
    };
    repo.execute(
        &id,
        Scoped {
            tenant_id: tenant,
            command: PostCommand::Create {
                campaign: CampaignFacts {
                    id: Uuid::new_v4(),
                    archived: false,
                },
                connection: None,
                entries: entries("v0"),
            },
        },
        &meta,
    )
    .await
    .unwrap();
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let (repo, id, meta) = (repo.clone(), id.clone(), meta.clone());
            let command = Scoped {
                tenant_id: tenant,
                command: PostCommand::Update {
                    entries: entries(&format!("v{i}")),
                },
            };
            tokio::spawn(async move { repo.execute(&id, command, &meta).await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(projections::CommandError::Conflict(_)) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    // A writer gives up only after six conflicts, each caused by a distinct
    // successful commit of another writer: so if any gave up, six got through.
    assert!(ok >= 6, "retries let writers through ({ok} of 24)");
    let (events,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events WHERE aggregate_id = $1")
        .bind(&id)
        .fetch_one(&db.any)
        .await
        .unwrap();
    assert_eq!(
        events,
        ok + 1,
        "one event per successful command, none lost or doubled"
    );
}

#[tokio::test]
async fn only_the_lease_holder_advances_a_projection() {
    let db = database(&fresh_postgres().await).await;
    Recorder::install(&db).await;
    seed(&db, 10).await;
    let a = Projector::new(db.clone(), Arc::new(Recorder), "process-a".into());
    let b = Projector::new(db.clone(), Arc::new(Recorder), "process-b".into());
    assert!(a.acquire_lease().await.unwrap());
    assert!(
        !b.acquire_lease().await.unwrap(),
        "a live lease is exclusive"
    );
    assert_eq!(
        b.step().await.unwrap(),
        0,
        "a runner without the lease writes nothing"
    );
    assert!(Recorder::seen(&db).await.is_empty());
    a.release_lease().await.unwrap();
    assert!(b.acquire_lease().await.unwrap());
    drain_until(&b, &db, 10).await;
    assert_eq!(Recorder::seen(&db).await.len(), 10);
    assert_eq!(a.step().await.unwrap(), 0, "the old holder is fenced out");
    assert_eq!(Recorder::seen(&db).await.len(), 10);
}

#[tokio::test]
async fn a_create_on_an_existing_id_falls_back_to_the_loaded_state() {
    use domain::campaign::{CampaignCommand, CampaignSettings};
    let db = database(&fresh_postgres().await).await;
    let repo = Repository::<domain::campaign::Campaign>::new(&db, Arc::new(watch::channel(0).0));
    let tenant = Uuid::new_v4();
    let meta = EventMetadata::new(tenant, Actor::System, Uuid::new_v4(), Utc::now());
    let day = |d| chrono::NaiveDate::from_ymd_opt(2030, 1, d).unwrap();
    let create = Scoped {
        tenant_id: tenant,
        command: CampaignCommand::Create(
            CampaignSettings::parse("x", "UTC", day(1), day(2)).unwrap(),
        ),
    };
    let id = Uuid::now_v7().to_string();
    repo.create(&id, create.clone(), &meta).await.unwrap();
    // The same id again: the append without a load collides on the primary
    // key, and the retry on the loaded state is refused by the aggregate.
    match repo.create(&id, create, &meta).await {
        Err(projections::CommandError::Rejected(domain::DomainError::Conflict(m))) => {
            assert_eq!(m, "campaign already exists")
        }
        other => panic!("expected the aggregate's refusal, got {other:?}"),
    }
    let (events,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events WHERE aggregate_id = $1")
        .bind(&id)
        .fetch_one(&db.any)
        .await
        .unwrap();
    assert_eq!(events, 1);
}

async fn a_long_stream_loads_from_its_snapshot_to_the_same_state(backend: Backend) {
    let db = database(&backend.fresh().await).await;
    let repo = Repository::<domain::post::Post>::new(&db, Arc::new(watch::channel(0).0));
    let tenant = Uuid::new_v4();
    let id = Uuid::new_v4().to_string();
    let meta = EventMetadata::new(tenant, Actor::System, Uuid::new_v4(), Utc::now());
    let entries = |t: &str| {
        parse_entries(
            &[EntryInput {
                text: t.into(),
                langs: vec![],
                media: vec![],
            }],
            false,
        )
        .unwrap()
    };
    let command = |c| Scoped {
        tenant_id: tenant,
        command: c,
    };
    repo.create(
        &id,
        command(PostCommand::Create {
            campaign: CampaignFacts {
                id: Uuid::new_v4(),
                archived: false,
            },
            connection: None,
            entries: entries("v0"),
        }),
        &meta,
    )
    .await
    .unwrap();
    for i in 1..250 {
        repo.execute(
            &id,
            command(PostCommand::Update {
                entries: entries(&format!("v{i}")),
            }),
            &meta,
        )
        .await
        .unwrap();
    }
    let snapshots: Vec<(i64,)> =
        sqlx::query_as("SELECT last_sequence FROM snapshots WHERE aggregate_id = $1 ORDER BY 1")
            .bind(&id)
            .fetch_all(&db.any)
            .await
            .unwrap();
    assert_eq!(snapshots, vec![(100,), (200,)]);

    // The state from snapshot 200 plus 50 events equals a fold of all 250.
    let from_snapshot = repo.load(&id).await.unwrap();
    assert_eq!(from_snapshot.entries[0].text.as_str(), "v249");
    let events = log_events(&db, 250).await;
    assert_eq!(events.len(), 250);
    let mut folded = domain::post::Post::default();
    for event in &events {
        cqrs_es::Aggregate::apply(&mut folded, event.decode().unwrap());
    }
    assert_eq!(
        serde_json::to_value(&from_snapshot).unwrap(),
        serde_json::to_value(&folded).unwrap()
    );

    // A snapshot that no longer fits the state's shape is ignored.
    sqlx::query("DELETE FROM snapshots WHERE last_sequence = 100")
        .execute(&db.any)
        .await
        .unwrap();
    let garbage = match db.backend {
        Db::Postgres(_) => "UPDATE snapshots SET payload = CAST('{\"old\": true}' AS json)",
        Db::Sqlite(_) => "UPDATE snapshots SET payload = '{\"old\": true}'",
    };
    sqlx::query(garbage).execute(&db.any).await.unwrap();
    let reloaded = repo.load(&id).await.unwrap();
    assert_eq!(
        serde_json::to_value(&reloaded).unwrap(),
        serde_json::to_value(&folded).unwrap()
    );
    // And commands keep appending at the right sequence.
    repo.execute(
        &id,
        command(PostCommand::Update {
            entries: entries("v250"),
        }),
        &meta,
    )
    .await
    .unwrap();
    assert_eq!(
        repo.load(&id).await.unwrap().entries[0].text.as_str(),
        "v250"
    );
}

/// A repository remembers the states it read and wrote, so a command on a
/// recent aggregate appends without loading; but another process may have
/// written since. Its decision counts only if the append proves the state
/// current; a refusal or a conflict is decided again on the stored stream.
async fn a_remembered_state_is_never_trusted_over_the_stored_stream(backend: Backend) {
    use domain::campaign::{Campaign, CampaignCommand, CampaignSettings};
    let db = database(&backend.fresh().await).await;
    // Two processes, each with its own memory.
    let here = Repository::<Campaign>::new(&db, Arc::new(watch::channel(0).0));
    let there = Repository::<Campaign>::new(&db, Arc::new(watch::channel(0).0));
    let tenant = Uuid::new_v4();
    let meta = EventMetadata::new(tenant, Actor::System, Uuid::new_v4(), Utc::now());
    let day = |d| chrono::NaiveDate::from_ymd_opt(2030, 1, d).unwrap();
    let settings = |name| CampaignSettings::parse(name, "UTC", day(1), day(2)).unwrap();
    let command = |command| Scoped {
        tenant_id: tenant,
        command,
    };
    let id = Uuid::now_v7().to_string();
    here.create(&id, command(CampaignCommand::Create(settings("a"))), &meta)
        .await
        .unwrap();
    there
        .execute(&id, command(CampaignCommand::Activate), &meta)
        .await
        .unwrap();
    // `here` remembers a draft, which cannot be paused; the stored campaign
    // is active and can.
    here.execute(&id, command(CampaignCommand::Pause), &meta)
        .await
        .expect("decided on the stored state, not the remembered draft");
    // `there` remembers it active: its append conflicts, and the archive is
    // decided again on the paused campaign.
    there
        .execute(&id, command(CampaignCommand::Archive), &meta)
        .await
        .unwrap();
    // `here` remembers it paused, which could be updated; the stored
    // campaign is archived and cannot.
    match here
        .execute(&id, command(CampaignCommand::Update(settings("b"))), &meta)
        .await
    {
        Err(projections::CommandError::Rejected(domain::DomainError::Conflict(m))) => {
            assert_eq!(m, "cannot update a campaign that is ARCHIVED")
        }
        other => panic!("expected the stored state's refusal, got {other:?}"),
    }
    let kinds: Vec<(String,)> =
        sqlx::query_as("SELECT event_type FROM events WHERE aggregate_id = $1 ORDER BY sequence")
            .bind(&id)
            .fetch_all(&db.any)
            .await
            .unwrap();
    let kinds: Vec<&str> = kinds.iter().map(|(k,)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "CampaignCreated",
            "CampaignActivated",
            "CampaignPaused",
            "CampaignArchived"
        ],
        "each command decided once on the current state, nothing stale appended"
    );
}

/// `execute_loaded` calls in flight together are written in one statement
/// (group commit); each caller still gets its own outcome: a stream another
/// writer moved on is decided again alone, and nothing is lost or doubled.
async fn concurrent_held_commands_are_appended_together_each_exactly_once(backend: Backend) {
    use domain::campaign::{Campaign, CampaignCommand, CampaignSettings};
    let db = database(&backend.fresh().await).await;
    let repo = Arc::new(Repository::<Campaign>::new(
        &db,
        Arc::new(watch::channel(0).0),
    ));
    let other = Repository::<Campaign>::new(&db, Arc::new(watch::channel(0).0));
    let tenant = Uuid::new_v4();
    let meta = EventMetadata::new(tenant, Actor::System, Uuid::new_v4(), Utc::now());
    let day = |d| chrono::NaiveDate::from_ymd_opt(2030, 1, d).unwrap();
    let command = move |command| Scoped {
        tenant_id: tenant,
        command,
    };
    let mut held = Vec::new();
    for n in 0..64 {
        let id = Uuid::now_v7().to_string();
        let settings = CampaignSettings::parse(&format!("c{n}"), "UTC", day(1), day(2)).unwrap();
        repo.create(&id, command(CampaignCommand::Create(settings)), &meta)
            .await
            .unwrap();
        held.push(repo.load_versioned(&id).await.unwrap());
    }
    // Another process archives two of them: those held states are stale.
    for stale in [&held[5], &held[40]] {
        other
            .execute(&stale.id, command(CampaignCommand::Archive), &meta)
            .await
            .unwrap();
    }
    let tasks: Vec<_> = held
        .into_iter()
        .map(|mut loaded| {
            let repo = repo.clone();
            let meta = meta.clone();
            tokio::spawn(async move {
                let result = repo
                    .execute_loaded(&mut loaded, command(CampaignCommand::Activate), &meta)
                    .await;
                (loaded, result)
            })
        })
        .collect();
    for (n, task) in tasks.into_iter().enumerate() {
        let (loaded, result) = task.await.unwrap();
        if n == 5 || n == 40 {
            assert!(
                matches!(
                    result,
                    Err(projections::CommandError::Rejected(
                        domain::DomainError::Conflict(_)
                    ))
                ),
                "decided again on the archived campaign: {result:?}"
            );
            assert_eq!(loaded.sequence, 2, "the held state was reloaded");
        } else {
            let committed = result.unwrap();
            assert_eq!(committed.aggregate_id, loaded.id, "its own answer");
            assert_eq!(committed.last_sequence, Some(2));
            assert_eq!(loaded.sequence, 2);
            assert_eq!(
                loaded.state.status,
                Some(domain::campaign::CampaignStatus::Active)
            );
        }
    }
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT event_type, COUNT(*) FROM events GROUP BY event_type ORDER BY event_type",
    )
    .fetch_all(&db.any)
    .await
    .unwrap();
    assert_eq!(
        counts,
        [
            ("CampaignActivated".to_string(), 62),
            ("CampaignArchived".to_string(), 2),
            ("CampaignCreated".to_string(), 64),
        ]
    );
}

/// `(tx, position, lease owner)` of projection `name`'s checkpoint row
/// (made when a runner first takes the lease).
async fn checkpoint_row(db: &Database, name: &str) -> (i64, i64, Option<String>) {
    sqlx::query_as("SELECT tx, position, lease_owner FROM projection_checkpoints WHERE name = $1")
        .bind(name)
        .fetch_optional(&db.any)
        .await
        .unwrap()
        .unwrap_or((0, 0, None))
}

/// The live runner moves every projection's checkpoint in one statement per
/// batch, each fenced on its own lease: a projection whose lease another
/// process took meanwhile writes nothing, and the others go on.
async fn a_projection_whose_lease_was_taken_writes_nothing_while_the_others_go_on(
    backend: Backend,
) {
    let db = database(&backend.fresh().await).await;
    Recorder::install(&db).await;
    let projectors = projections::Projectors::new(db.clone()).with(Arc::new(Recorder));
    let (stop, shutdown) = watch::channel(false);
    let tasks = projectors.spawn(shutdown);
    let log = GlobalLog::new(db.clone());
    let at = |p: projections::Position| (p.tx, p.seq);

    seed(&db, 5).await;
    projectors.appended.send_modify(|n| *n += 1);
    let first = at(log.last().await.unwrap().unwrap());
    // Every projection applied the first events.
    eventually(|| async {
        let (r, d) = (
            checkpoint_row(&db, "recorder").await,
            checkpoint_row(&db, "dashboard").await,
        );
        ((r.0, r.1) == first && (d.0, d.1) == first).then_some(())
    })
    .await;
    assert_eq!(Recorder::seen(&db).await.len(), 5);

    // Another process takes the recorder's lease (as when this one was
    // presumed gone); this runner has not noticed yet.
    sqlx::query(
        "UPDATE projection_checkpoints SET lease_owner = 'elsewhere', lease_until = $1 WHERE name = 'recorder'",
    )
    .bind(i64::MAX)
    .execute(&db.any)
    .await
    .unwrap();
    seed(&db, 5).await;
    projectors.appended.send_modify(|n| *n += 1);
    let second = at(log.last().await.unwrap().unwrap());
    // The other projections went on.
    eventually(|| async {
        let d = checkpoint_row(&db, "dashboard").await;
        ((d.0, d.1) == second).then_some(())
    })
    .await;
    // A few more rounds, for a fence that failed to have written anyway.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        Recorder::seen(&db).await.len(),
        5,
        "the fenced projection wrote nothing"
    );
    let r = checkpoint_row(&db, "recorder").await;
    assert_eq!((r.0, r.1), first, "its checkpoint stayed");
    assert_eq!(r.2.as_deref(), Some("elsewhere"), "its lease stayed taken");

    stop.send_replace(true);
    for (_, task) in tasks {
        task.await.unwrap();
    }
}
