//! A PostgreSQL cluster of a test's own, to stop and start.

use std::process::Command;

/// A PostgreSQL cluster of this test's own (Debian's postgresql-common
/// tools, the same version as the machine's cluster on port 5432): stopping
/// it stops a real server without touching the machine's, which the Bluesky
/// peer's AppView uses (and dies when its connections are cut). Dropped with
/// the test.
pub struct Cluster {
    version: String,
    name: String,
    port: u16,
}

impl Cluster {
    pub fn create() -> Self {
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

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn ctl(&self, action: &str) {
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
