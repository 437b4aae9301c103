//! What Herald's tests share, so that `tests/`, `api/tests`,
//! `workers/tests` and `projections/tests` set up the world the same way.
//!
//! - [`db`]: a fresh PostgreSQL database or SQLite file per test, and
//!   [`on_both_databases!`] to run a test body on each.
//! - [`peer`]: the local Bluesky network (`BLUESKY_PDS_URL`,
//!   `BLUESKY_PEER_JSON`) and raw XRPC reads of what landed on it.
//! - [`fixtures`]: media to upload (PNG, JPEG and GIF files, and a PNG
//!   that lies about its size; video goes there too).
//! - [`smtp`]: a real SMTP server (`aiosmtpd`) and the mail it received.
//! - [`logs`]: log output captured in memory.
//! - [`client`]: a GraphQL/HTTP client of a running Herald, with the
//!   sign-up, campaign, connection, post and upload steps tests repeat.
//! - [`app`] (feature `app`): Herald started in the test process on port 0
//!   ([`app::spawn_app`]), and store-level helpers ([`app::database`],
//!   [`app::Recorder`]).
//!
//! Why a feature: `workers` and `projections` dev-depend on this crate, while
//! starting Herald needs `api`, which depends on both. Linking `api` from
//! here unconditionally would put a second copy of `workers` (or
//! `projections`) into their own test builds, with types that do not match
//! the crate under test, and would build the whole API for a worker test.
//! So by default this crate depends on none of Herald's crates; `app` adds
//! them, and only the crates above them (`api` and `tests`) turn it on.

pub mod client;
pub mod db;
pub mod fixtures;
pub mod logs;
pub mod peer;
pub mod smtp;

#[cfg(feature = "app")]
pub mod app;

#[cfg(feature = "app")]
pub use app::{Recorder, TestApp, database, spawn_app, spawn_with, test_master_key};
pub use client::{ApiClient, FormPart, UPLOAD_MEDIA, error_code};
pub use db::{Backend, fresh_postgres, fresh_sqlite, postgres_server};
pub use fixtures::{gif, jpeg, png, png_claiming};

/// A port nothing listens on right now (the OS's pick for port 0), for
/// processes that must be told their port before they start.
/// Polls `check` until it answers something, for at most ten seconds
/// (read models settle asynchronously for changes not made through a
/// mutation).
pub async fn eventually<T, F, Fut>(check: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(std::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("an ephemeral port is available")
        .port()
}
