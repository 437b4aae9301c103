//! Who holds a lease: the identity of a Herald process, written into every
//! lease it takes, so that another process can tell when the holder is
//! provably gone and take the lease at once instead of waiting out its
//! timeout (a crash restart would otherwise stall writes for a whole lease).
//!
//! A holder is gone when
//! - it ran on this host and its process is no longer alive (no process
//!   with its pid, or one that started at another time: the pid was reused —
//!   which includes a restarted container whose new process is pid 1 again);
//! - or it declared the same node id as this process (`HERALD_NODE_ID`: the
//!   operator promises one process per node id, so a fresh start under that
//!   id means the previous one is gone).
//!
//! Anything else — another host, an unreadable identity from an older
//! Herald, a live process — keeps its lease until the lease expires.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The identity of a running process, as stored in `lease_owner`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    /// The operator-assigned node id, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node: Option<String>,
    pub host: String,
    pub pid: u32,
    /// When the process started, in clock ticks since boot (Linux
    /// `/proc/<pid>/stat`), or 0 where that cannot be read.
    pub started: u64,
    /// Unique per start, so two identities never compare equal by accident.
    pub instance: Uuid,
}

impl ProcessIdentity {
    /// This process, under `node` if the operator named one.
    pub fn current(node: Option<String>) -> Self {
        let pid = std::process::id();
        Self {
            node: node.filter(|n| !n.trim().is_empty()),
            host: hostname(),
            pid,
            started: start_ticks(pid).unwrap_or(0),
            instance: Uuid::new_v4(),
        }
    }

    /// The text stored as a lease's owner.
    pub fn tag(&self) -> String {
        serde_json::to_string(self).expect("identity serializes")
    }

    /// Whether the process that wrote lease owner `tag` is provably gone,
    /// as seen from this process (see the module docs).
    pub fn outlived(&self, tag: &str) -> bool {
        let Ok(holder) = serde_json::from_str::<ProcessIdentity>(tag) else {
            return false;
        };
        self.outlived_by(&holder, start_ticks)
    }

    fn outlived_by(&self, holder: &ProcessIdentity, started: impl Fn(u32) -> Option<u64>) -> bool {
        if holder.instance == self.instance {
            return false;
        }
        if self.node.is_some() && holder.node == self.node {
            return true;
        }
        if holder.host != self.host || holder.started == 0 {
            return false;
        }
        if holder.pid == self.pid {
            // This process has the holder's pid: the holder is alive only
            // if it is this very process (another runner set of ours).
            return holder.started != self.started;
        }
        started(holder.pid) != Some(holder.started)
    }
}

/// The host name (the kernel's, as containers set it), or `unknown`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// When process `pid` started (field 22 of `/proc/<pid>/stat`); `None` if
/// there is no such process (or no `/proc`).
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> ProcessIdentity {
        ProcessIdentity {
            node: None,
            host: "h1".into(),
            pid: 100,
            started: 5000,
            instance: Uuid::from_u128(1),
        }
    }

    fn holder(host: &str, pid: u32, started: u64) -> ProcessIdentity {
        ProcessIdentity {
            node: None,
            host: host.into(),
            pid,
            started,
            instance: Uuid::from_u128(2),
        }
    }

    #[test]
    fn a_dead_process_on_this_host_is_gone() {
        let none = |_| None;
        assert!(me().outlived_by(&holder("h1", 42, 7), none));
    }

    #[test]
    fn a_live_process_on_this_host_keeps_its_lease() {
        assert!(!me().outlived_by(&holder("h1", 42, 7), |_| Some(7)));
    }

    #[test]
    fn a_reused_pid_does_not_keep_a_dead_holder_alive() {
        assert!(me().outlived_by(&holder("h1", 42, 7), |_| Some(9)));
    }

    #[test]
    fn my_pid_under_another_start_is_my_crashed_predecessor() {
        // A restarted container: the new process has the old one's pid.
        assert!(me().outlived_by(&holder("h1", 100, 4000), |_| Some(5000)));
        // Another runner set of this very process is alive.
        assert!(!me().outlived_by(&holder("h1", 100, 5000), |_| Some(5000)));
    }

    #[test]
    fn another_host_keeps_its_lease_until_it_expires() {
        assert!(!me().outlived_by(&holder("h2", 42, 7), |_| None));
    }

    #[test]
    fn a_fresh_start_of_the_same_node_id_takes_over() {
        let me = ProcessIdentity {
            node: Some("node-a".into()),
            ..me()
        };
        let mut old = holder("h2", 42, 7);
        old.node = Some("node-a".into());
        assert!(me.outlived_by(&old, |_| Some(7)));
        old.node = Some("node-b".into());
        assert!(!me.outlived_by(&old, |_| Some(7)));
    }

    #[test]
    fn itself_and_unreadable_owners_are_never_outlived() {
        let me = me();
        assert!(!me.outlived_by(&me.clone(), |_| None));
        assert!(!me.outlived("1234:0b0f0e0e-0000-0000-0000-000000000000"));
    }

    #[test]
    fn this_process_can_read_its_own_start() {
        let current = ProcessIdentity::current(None);
        assert!(current.started > 0, "{current:?}");
        assert_eq!(start_ticks(current.pid), Some(current.started));
        let tag = current.tag();
        assert!(!ProcessIdentity::current(None).outlived(&tag), "alive");
    }
}
