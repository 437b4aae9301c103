//! The `herald` binary as an operator runs it: settings layered from
//! `herald.toml`, `.env`, the environment and flags (`herald config` shows
//! them, secrets redacted), and processes that stop cleanly and in time on
//! SIGTERM, every task's exit in the log.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use test_support::free_port;
use uuid::Uuid;

/// A new empty directory to run `herald` in (so no settings file of the
/// repository is read).
fn workdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("herald-proc-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `herald ARGS` in `dir` with only `env` set (and `PATH`).
fn herald(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.current_dir(dir)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    cmd
}

fn run(mut cmd: Command) -> Output {
    let out = cmd.output().expect("herald runs");
    assert!(
        out.status.success(),
        "herald failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn herald_config_layers_file_dotenv_environment_and_flags_and_redacts_secrets() {
    let dir = workdir();
    std::fs::write(
        dir.join("herald.toml"),
        "[publishing]\nmax_attempts = 7\nlease_seconds = 1\nper_connection = 1\n",
    )
    .unwrap();
    std::fs::write(
        dir.join(".env"),
        "HERALD_PUBLISH_LEASE_SECONDS=9\nHERALD_PUBLISH_PER_CONNECTION=2\nHERALD_SMTP_URL=smtp://u:topsecret@mail:25\n",
    )
    .unwrap();
    let out = run(herald(
        &dir,
        &["config", "--listen", "127.0.0.1:1234"],
        &[
            ("HERALD_PUBLISH_PER_CONNECTION", "3"),
            ("HERALD_LISTEN", "127.0.0.1:9"),
            ("DATABASE_URL", "postgres://u:hunter2@db/herald"),
        ],
    ));
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(shown.contains("max_attempts = 7"), "file: {shown}");
    assert!(
        shown.contains("lease_seconds = 9"),
        ".env over file: {shown}"
    );
    assert!(
        shown.contains("per_connection = 3"),
        "environment over .env: {shown}"
    );
    assert!(
        shown.contains("listen = \"127.0.0.1:1234\""),
        "flag over environment: {shown}"
    );
    for secret in ["hunter2", "topsecret"] {
        assert!(!shown.contains(secret), "a secret was printed: {shown}");
    }
    assert!(shown.contains("url = \"[redacted]\""), "{shown}");

    // What it printed is a settings file that gives the same settings.
    let again = workdir();
    std::fs::write(again.join("herald.toml"), &shown).unwrap();
    let reread = String::from_utf8(run(herald(&again, &["config"], &[])).stdout).unwrap();
    assert!(reread.contains("max_attempts = 7") && reread.contains("per_connection = 3"));
}

#[test]
fn a_bad_setting_stops_the_start_with_a_message_that_names_it() {
    let dir = workdir();
    std::fs::write(dir.join("herald.toml"), "[publishing]\nmax_atempts = 2\n").unwrap();
    let out = herald(&dir, &["config"], &[]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_atempts"));

    let out = herald(&workdir(), &["serve"], &[("HERALD_DB_POOL", "lots")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pool"));
}

/// Starts `herald MODE` on a new SQLite database with JSON logs, and
/// forwards its log lines.
fn start(mode: &str, port: u16) -> (Child, mpsc::Receiver<String>) {
    let dir = workdir();
    let db = format!("sqlite://{}", dir.join("herald.db").display());
    start_in(&dir, &db, mode, port)
}

/// Starts `herald MODE` in `dir` on database `db` with JSON logs, and
/// forwards its log lines.
fn start_in(dir: &Path, db: &str, mode: &str, port: u16) -> (Child, mpsc::Receiver<String>) {
    use secrecy::ExposeSecret;
    let listen = format!("127.0.0.1:{port}");
    let master_key = test_support::test_master_key();
    let mut child = herald(
        dir,
        &[mode],
        &[
            ("DATABASE_URL", db),
            ("HERALD_MASTER_KEY", master_key.expose_secret()),
            ("HERALD_LISTEN", listen.as_str()),
            ("HERALD_LOG_FORMAT", "json"),
            ("RUST_LOG", "info"),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("herald starts");
    let (tx, lines) = mpsc::channel();
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    (child, lines)
}

/// Log lines until one contains `needle` (panics after `limit`).
fn wait_for(lines: &mpsc::Receiver<String>, needle: &str, limit: Duration, seen: &mut Vec<String>) {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    return;
                }
            }
            Err(_) => panic!(
                "no log line with {needle:?} within {limit:?}:\n{}",
                seen.join("\n")
            ),
        }
    }
}

#[test]
fn sigterm_stops_every_mode_cleanly_in_time_and_logs_each_task() {
    for (mode, ready, tasks) in [
        (
            "serve",
            "herald listening",
            &[
                "http server",
                "publisher",
                "mail sender",
                // One runner for every projection.
                "projectors",
                "housekeeping",
            ][..],
        ),
        (
            "api",
            "herald listening",
            &["http server", "projectors"][..],
        ),
        (
            "worker",
            "herald working",
            &["publisher", "mail sender", "projectors"][..],
        ),
    ] {
        let port = free_port();
        let (mut child, lines) = start(mode, port);
        let mut seen = Vec::new();
        wait_for(&lines, ready, Duration::from_secs(60), &mut seen);
        if mode != "worker" {
            let health = std::net::TcpStream::connect(("127.0.0.1", port));
            assert!(health.is_ok(), "{mode} listens on {port}");
        }

        let stopping = Instant::now();
        // SAFETY: sending a signal to our own child process.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                stopping.elapsed() < Duration::from_secs(40),
                "{mode} did not stop within the 30 s grace:\n{}",
                seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(line) = lines.recv_timeout(Duration::from_millis(500)) {
            seen.push(line);
        }
        let log = seen.join("\n");
        assert!(status.success(), "{mode} exited with {status}:\n{log}");
        assert!(
            stopping.elapsed() < Duration::from_secs(10),
            "{mode} took {:?} to stop:\n{log}",
            stopping.elapsed()
        );
        for task in tasks {
            let stopped = seen
                .iter()
                .any(|l| l.contains("task stopped") && l.contains(&format!("\"task\":\"{task}\"")));
            assert!(stopped, "{mode}: no exit logged for {task}:\n{log}");
        }
        if mode == "worker" {
            assert!(
                !log.contains("http server"),
                "a worker serves no HTTP:\n{log}"
            );
        }
    }
}

/// A crash restart: `herald serve` is SIGKILLed while it holds every
/// projection lease, and a new process on the same database answers its
/// first mutation (which waits for the read models) within a second,
/// instead of waiting out the dead process's leases.
async fn a_restart_after_sigkill_answers_its_first_mutation_within_a_second(db: &str) {
    let dir = workdir();
    let port = free_port();
    let (mut first, lines) = start_in(&dir, db, "serve", port);
    wait_for(
        &lines,
        "herald listening",
        Duration::from_secs(60),
        &mut Vec::new(),
    );
    let api = test_support::ApiClient::new(format!("http://127.0.0.1:{port}"));
    let (token, _) = api.sign_up("Crash Ltd", "owner@crash.example.org").await;
    api.create_campaign(&token, "before the crash").await;
    first.kill().unwrap();
    first.wait().unwrap();

    let port = free_port();
    let (mut second, lines) = start_in(&dir, db, "serve", port);
    let mut seen = Vec::new();
    wait_for(
        &lines,
        "herald listening",
        Duration::from_secs(60),
        &mut seen,
    );
    let api = test_support::ApiClient::new(format!("http://127.0.0.1:{port}"));
    let started = Instant::now();
    api.create_campaign(&token, "after the crash").await;
    let took = started.elapsed();
    second.kill().unwrap();
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
        seen.push(line);
    }
    assert!(
        took < Duration::from_secs(1),
        "the first mutation after the restart took {took:?}:\n{}",
        seen.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_restart_after_sigkill_takes_the_dead_process_leases_at_once() {
    let dir = workdir();
    let db = format!("sqlite://{}", dir.join("herald.db").display());
    a_restart_after_sigkill_answers_its_first_mutation_within_a_second(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_after_sigkill_takes_the_dead_process_leases_at_once() {
    let db = test_support::fresh_postgres().await;
    a_restart_after_sigkill_answers_its_first_mutation_within_a_second(&db).await;
}
