//! Exactly-once across a database outage: PostgreSQL is stopped for a few
//! seconds while `herald worker` publishes, then started again; every entry
//! exists exactly once on the PDS afterwards.

mod common;

use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use common::{Deployment, assert_published_exactly_once, peer};

/// The local cluster's `pg_ctlcluster` arguments (version, name).
fn cluster() -> (String, String) {
    let out = Command::new("pg_lsclusters")
        .arg("--no-header")
        .output()
        .expect("pg_lsclusters (postgresql-common) is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("5432"))
        .expect("a cluster on port 5432");
    let mut fields = line.split_whitespace();
    (
        fields.next().unwrap().to_string(),
        fields.next().unwrap().to_string(),
    )
}

fn pg_ctl(action: &str) {
    let (version, name) = cluster();
    let mut cmd = Command::new("pg_ctlcluster");
    cmd.args(["--skip-systemctl-redirect", &version, &name, action]);
    if action == "stop" {
        cmd.args(["-m", "fast"]);
    }
    let status = cmd.status().expect("pg_ctlcluster runs");
    assert!(status.success(), "pg_ctlcluster {action} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_postgresql_during_publishing_never_loses_or_doubles_a_post() {
    let peer = peer();
    let deployment = Deployment::new().await;
    let (_api_process, mut api) = deployment.api().await;
    let (campaign, connection) = api.setup(&peer).await;
    let marker = format!("restart-{}", uuid::Uuid::new_v4().simple());
    let due = Utc::now() + chrono::Duration::seconds(25);
    let posts = api
        .schedule_posts(&campaign, &connection, &marker, 100, due)
        .await;
    tokio::time::sleep((due - Utc::now()).to_std().unwrap_or_default()).await;
    let mut worker = deployment.worker();
    // Let publishing get under way, then take the database away.
    tokio::time::sleep(Duration::from_millis(700)).await;
    pg_ctl("stop");
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg_ctl("start");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some((done, failed, total)) = api.counts(&campaign).await {
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
