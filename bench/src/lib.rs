//! Benchmarks of the service levels in SPEC §3, run as `herald bench …`.
//!
//! `commands` measures command throughput and latency on PostgreSQL against
//! the machine's own ceiling (single-row inserts, as pgbench would run them);
//! `replay` seeds an event log shaped like real traffic and times a rebuild of
//! every read model; `publish` (`publish`) times worker processes
//! publishing posts due at once, `displays` (`displays`) an
//! emergency override reaching thousands of connected signage displays,
//! `mutations` GraphQL `createPost` latency and throughput, and `dashboard`
//! (`dashboard`) the dashboard's GraphQL reads at a fixed rate on a tenant
//! with 100,000 posts. All run in a scratch database that is removed
//! afterwards, so they never touch real data.
//!
//! Layout: `support` holds what every benchmark uses (scratch databases,
//! events appended in bulk, latency summaries, the verdict); `server` a
//! Herald process under test and a GraphQL client for it; `commands`,
//! `replay`, `publish`, `displays`, `mutations` and `dashboard` are one
//! benchmark each; this file only dispatches.

mod commands;
mod dashboard;
pub mod displays;
mod mutations;
mod publish;
mod replay;
mod server;
mod support;

use std::time::Duration;

/// Which benchmark to run.
#[derive(Debug, clap::Subcommand)]
pub enum Which {
    /// Command throughput and latency on PostgreSQL, next to the server's
    /// single-row insert ceiling at the same concurrency.
    Commands {
        /// PostgreSQL server to use; a scratch database is created on it.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// Concurrent clients.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Duration of each phase, in seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Tiny, fast run for CI (2 clients, 1 second per phase).
        #[arg(long)]
        smoke: bool,
    },
    /// Posts due in the same second published by one and by two worker
    /// processes to a local fake PDS: time until all are DONE, lateness,
    /// duplicates.
    Publish {
        /// PostgreSQL server for a scratch database.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// Posts due at the same instant.
        #[arg(long, default_value_t = 10_000)]
        posts: usize,
        /// Accounts they are spread over.
        #[arg(long, default_value_t = 50)]
        connections: usize,
        /// Tiny, fast run for CI (200 posts).
        #[arg(long)]
        smoke: bool,
    },
    /// Signage displays holding event streams open against one server
    /// process: time until an emergency override reaches all of them, and
    /// the server's resident memory.
    Displays {
        /// PostgreSQL server for a scratch database (served by `herald
        /// api`); without it (or with a `sqlite:` URL) a new SQLite file in
        /// a temporary directory (served by `herald serve`).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Concurrently connected displays.
        #[arg(long, default_value_t = 10_000)]
        displays: usize,
        /// Tiny, fast run for CI (200 displays).
        #[arg(long)]
        smoke: bool,
    },
    /// GraphQL `createPost` from concurrent clients against one server
    /// process: throughput and latency, each answer read back from the
    /// read model (read-your-writes).
    Mutations {
        /// PostgreSQL server for a scratch database (served by `herald
        /// api`); without it (or with a `sqlite:` URL) a new SQLite file in
        /// a temporary directory (served by `herald serve`).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Concurrent clients.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Measured seconds (after a one-second warm-up).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Tiny, fast run for CI (2 clients, 1 second).
        #[arg(long)]
        smoke: bool,
    },
    /// The dashboard's GraphQL reads (campaigns with post counts, the post
    /// queue, single posts) on a tenant with many posts: latency at a fixed
    /// request rate, then the most a set of clients gets served.
    Dashboard {
        /// PostgreSQL server for a scratch database (served by `herald
        /// api`); without it (or with a `sqlite:` URL) a new SQLite file in
        /// a temporary directory (served by `herald serve`).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Posts of the seeded tenant.
        #[arg(long, default_value_t = 100_000)]
        posts: usize,
        /// Open loop: requests per second, on a fixed schedule.
        #[arg(long, default_value_t = 200)]
        rate: u32,
        /// Open loop: its length in seconds.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Closed loop: clients sending as fast as they are answered.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Tiny, fast run for CI (2,000 posts, 50 requests/s for 3 s, 4
        /// clients for 2 s).
        #[arg(long)]
        smoke: bool,
    },
    /// Rebuild speed of every read model from a seeded event log.
    Replay {
        /// PostgreSQL server for a scratch database; without it (or with a
        /// `sqlite:` URL) a new SQLite file in a temporary directory.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Events to seed.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// Tiny, fast run for CI (2,000 events).
        #[arg(long)]
        smoke: bool,
    },
}

/// Runs a benchmark and prints its figures.
pub async fn run(which: Which) -> anyhow::Result<()> {
    let smoke = matches!(
        which,
        Which::Commands { smoke: true, .. }
            | Which::Replay { smoke: true, .. }
            | Which::Publish { smoke: true, .. }
            | Which::Displays { smoke: true, .. }
            | Which::Mutations { smoke: true, .. }
            | Which::Dashboard { smoke: true, .. }
    );
    support::SMOKE.store(smoke, std::sync::atomic::Ordering::Relaxed);
    match which {
        Which::Commands {
            database_url,
            clients,
            seconds,
            smoke,
        } => {
            let (clients, seconds) = if smoke { (2, 1) } else { (clients, seconds) };
            commands::commands(&database_url, clients.max(1), Duration::from_secs(seconds)).await
        }
        Which::Publish {
            database_url,
            posts,
            connections,
            smoke,
        } => {
            let (posts, connections) = if smoke {
                (200, 5)
            } else {
                (posts, connections)
            };
            publish::publish(&database_url, posts.max(1), connections.max(1)).await
        }
        Which::Displays {
            database_url,
            displays,
            smoke,
        } => {
            let displays = if smoke { 200 } else { displays };
            displays::displays(database_url.as_deref(), displays.max(1)).await
        }
        Which::Mutations {
            database_url,
            clients,
            seconds,
            smoke,
        } => {
            let (clients, seconds) = if smoke { (2, 1) } else { (clients, seconds) };
            mutations::mutations(
                database_url.as_deref(),
                clients.max(1),
                Duration::from_secs(seconds.max(1)),
            )
            .await
        }
        Which::Dashboard {
            database_url,
            posts,
            rate,
            seconds,
            clients,
            smoke,
        } => {
            let options = if smoke {
                dashboard::Options::smoke()
            } else {
                dashboard::Options::full(posts, rate, seconds, clients)
            };
            dashboard::dashboard(database_url.as_deref(), options).await
        }
        Which::Replay {
            database_url,
            events,
            smoke,
        } => replay::replay(database_url.as_deref(), if smoke { 2_000 } else { events }).await,
    }
}
