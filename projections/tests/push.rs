//! Pushes across processes through PostgreSQL: two hubs (two API processes)
//! listening on one database, a notification sent from a third connection
//! inside a transaction. Needs the local PostgreSQL server
//! (`HERALD_TEST_DATABASE_URL`).

use std::time::Duration;

use projections::Database;
use projections::push::{Hub, PushMessage, PushTarget, Subscription};
use serde_json::json;
use sqlx::{AnyConnection, Connection};
use test_support::db::{PostgresDatabase, create_postgres, postgres_server};
use tokio::sync::watch;
use tokio::time::timeout;
use uuid::Uuid;

fn push(tenant: Uuid, target: PushTarget, n: u32) -> PushMessage {
    PushMessage {
        tenant_id: tenant,
        target,
        event: "manifest-changed".into(),
        data: json!({"emergency": null, "n": n}),
        regroup: None,
    }
}

fn frame(n: u32) -> String {
    format!("event: manifest-changed\ndata: {{\"emergency\":null,\"n\":{n}}}\n\n")
}

async fn next_within(sub: &mut Subscription, wait: Duration) -> Option<String> {
    match timeout(wait, sub.next()).await {
        Ok(Some(frame)) => Some(String::from_utf8(frame.to_vec()).unwrap()),
        Ok(None) => panic!("the hub ended the subscription"),
        Err(_) => None,
    }
}

/// Waits until `hub` listens: a hub ends the subscriptions it had when it
/// starts listening, so real ones must come after.
async fn until_listening(hub: &Hub, conn: &mut AnyConnection) {
    let probe = Uuid::new_v4();
    for _ in 0..100 {
        let mut sub = hub.subscribe(probe, Uuid::new_v4(), (None, None));
        assert!(
            Hub::notify(conn, &push(probe, PushTarget::Tenant, 0))
                .await
                .unwrap()
        );
        if let Ok(Some(_)) = timeout(Duration::from_millis(100), sub.next()).await {
            return;
        }
    }
    panic!("the hub never started listening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_reaches_other_processes_at_commit_and_never_on_rollback() {
    let PostgresDatabase { server, name, url } = create_postgres(&postgres_server()).await;
    let db = Database::connect(&url, 4).await.unwrap();
    let (stop, shutdown) = watch::channel(false);
    let (here, there) = (Hub::new(), Hub::new());
    let listeners = [
        here.listen(&db, shutdown.clone()),
        there.listen(&db, shutdown.clone()),
    ];
    let mut conn = AnyConnection::connect(&url).await.unwrap();
    until_listening(&here, &mut conn).await;
    until_listening(&there, &mut conn).await;

    let (tenant, display) = (Uuid::new_v4(), Uuid::new_v4());
    let mut remote = there.subscribe(tenant, display, (None, None));
    let mut local = here.subscribe(tenant, Uuid::new_v4(), (None, None));
    let short = Duration::from_millis(500);

    // Inside a transaction: nothing before COMMIT, then every process.
    let mut tx = conn.begin().await.unwrap();
    assert!(
        Hub::notify(&mut tx, &push(tenant, PushTarget::Tenant, 1))
            .await
            .unwrap()
    );
    assert_eq!(
        next_within(&mut remote, short).await,
        None,
        "sent before commit"
    );
    tx.commit().await.unwrap();
    let wait = Duration::from_secs(5);
    assert_eq!(next_within(&mut remote, wait).await, Some(frame(1)));
    assert_eq!(next_within(&mut local, wait).await, Some(frame(1)));

    // A rolled-back push never arrives: the next one to arrive is the one
    // committed after it.
    let mut tx = conn.begin().await.unwrap();
    Hub::notify(&mut tx, &push(tenant, PushTarget::Tenant, 2))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(next_within(&mut remote, short).await, None, "rolled back");

    // A long display list travels in several notifications; the display is
    // in one of them, so it gets the push once.
    let mut displays: Vec<Uuid> = (0..600).map(|_| Uuid::new_v4()).collect();
    displays.push(display);
    let mut tx = conn.begin().await.unwrap();
    Hub::notify(&mut tx, &push(tenant, PushTarget::Displays(displays), 3))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(next_within(&mut remote, wait).await, Some(frame(3)));
    assert_eq!(
        next_within(&mut remote, short).await,
        None,
        "delivered once"
    );
    assert_eq!(next_within(&mut local, short).await, None, "not targeted");

    // A listener whose connection dies listens again, and ends the streams
    // it had (they may have missed pushes meanwhile); new ones get pushes.
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
    )
    .bind(&name)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(killed.len(), 2, "one listening connection per hub");
    assert_eq!(timeout(wait, remote.next()).await, Ok(None), "ended");
    assert_eq!(timeout(wait, local.next()).await, Ok(None), "ended");
    until_listening(&there, &mut conn).await;
    let mut again = there.subscribe(tenant, display, (None, None));
    Hub::notify(&mut conn, &push(tenant, PushTarget::Tenant, 4))
        .await
        .unwrap();
    assert_eq!(next_within(&mut again, wait).await, Some(frame(4)));

    stop.send_replace(true);
    for listener in listeners {
        timeout(wait, listener)
            .await
            .expect("listeners stop")
            .unwrap();
    }
    drop((remote, local, again));
    conn.close().await.unwrap();
    db.any.close().await;
    if let projections::db::Backend::Postgres(pool) = &db.backend {
        pool.close().await;
    }
    let mut admin = sqlx::PgConnection::connect(&server).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn on_sqlite_a_push_is_left_to_the_caller_to_deliver() {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect("sqlite::memory:").await.unwrap();
    let message = push(Uuid::new_v4(), PushTarget::Tenant, 1);
    assert!(!Hub::notify(&mut conn, &message).await.unwrap());
    let url = format!(
        "sqlite://{}",
        std::env::temp_dir()
            .join(format!("herald-test-{}.db", Uuid::new_v4().simple()))
            .display()
    );
    let db = Database::connect(&url, 1).await.unwrap();
    let listener = Hub::new().listen(&db, watch::channel(false).1);
    timeout(Duration::from_secs(1), listener)
        .await
        .expect("no listener on SQLite")
        .unwrap();
}
