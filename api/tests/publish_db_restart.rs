//! Exactly-once across a database outage: PostgreSQL (a cluster created for
//! this test) is stopped for a few seconds while `herald worker` publishes,
//! then started again; every entry exists exactly once on the PDS afterwards.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::cluster::Cluster;
use common::{Deployment, Publisher, assert_published_exactly_once, peer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_postgresql_during_publishing_never_loses_or_doubles_a_post() {
    let peer = peer();
    let cluster = Cluster::create();
    let deployment = Deployment::on(&cluster.url()).await;
    let (_api_process, api) = deployment.api().await;
    let publisher = Publisher::set_up(&api, &peer).await;
    let marker = format!("restart-{}", uuid::Uuid::new_v4().simple());
    let due = Utc::now() + chrono::Duration::seconds(25);
    let posts = publisher.schedule_posts(&marker, 100, due).await;
    tokio::time::sleep((due - Utc::now()).to_std().unwrap_or_default()).await;
    let mut worker = deployment.worker();
    // Let publishing get under way, then take the database away.
    tokio::time::sleep(Duration::from_millis(700)).await;
    cluster.ctl("stop");
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.ctl("start");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some((done, failed, total)) = publisher.counts().await {
            assert_eq!(failed, 0, "no post may fail");
            if done == total && total == 100 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {done} of {total} published"
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the API never recovered"
        );
    }
    worker.kill().await.ok();
    assert_published_exactly_once(&peer, &marker, &posts).await;
}
