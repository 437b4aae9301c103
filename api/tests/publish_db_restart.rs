//! Exactly-once across a database outage: PostgreSQL (a cluster created for
//! this test) is stopped for a few seconds while `herald worker` publishes,
//! then started again; every entry exists exactly once on the PDS afterwards.

mod common;

use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use common::{Deployment, Publisher, assert_published_exactly_once, peer};

/// A PostgreSQL cluster of this test's own (Debian's postgresql-common
/// tools, the same version as the machine's cluster on port 5432): stopping
/// it stops a real server without touching the machine's, which the Bluesky
/// peer's AppView uses (and dies when its connections are cut). Dropped with
/// the test.
struct Cluster {
    version: String,
    name: String,
    port: u16,
}

impl Cluster {
    fn create() -> Self {
        let out = Command::new("pg_lsclusters")
            .arg("--no-header")
            .output()
            .expect("pg_lsclusters (postgresql-common) is installed");
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some("5432"))
            .and_then(|l| l.split_whitespace().next())
            .expect("a cluster on port 5432")
            .to_string();
        let port = test_support::free_port();
        let cluster = Self {
            version,
            name: format!("herald_restart_{port}"),
            port,
        };
        let created = Command::new("pg_createcluster")
            .args([&cluster.version, &cluster.name, "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("pg_createcluster runs");
        assert!(created.success(), "pg_createcluster failed");
        let hba = format!(
            "/etc/postgresql/{}/{}/pg_hba.conf",
            cluster.version, cluster.name
        );
        std::fs::write(
            hba,
            "local all all trust\nhost all all 127.0.0.1/32 trust\n",
        )
        .expect("pg_hba.conf written");
        cluster.ctl("start");
        cluster
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn ctl(&self, action: &str) {
        let mut cmd = Command::new("pg_ctlcluster");
        cmd.args([
            "--skip-systemctl-redirect",
            &self.version,
            &self.name,
            action,
        ]);
        if action == "stop" {
            cmd.args(["-m", "fast"]);
        }
        let status = cmd.status().expect("pg_ctlcluster runs");
        assert!(status.success(), "pg_ctlcluster {action} failed");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("pg_dropcluster")
            .args(["--stop", &self.version, &self.name])
            .status();
    }
}

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
