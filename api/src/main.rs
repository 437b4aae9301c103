#![recursion_limit = "256"]
//! The `herald` command.

use std::time::Duration;

use anyhow::Context;
use api::settings::SettingsArgs;
use api::supervisor::ShutdownSignal;
use api::{Application, Mode, app, telemetry};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

/// mimalloc: replay and the publisher build and drop many small JSON values
/// and strings, where glibc's allocator spent a quarter of the time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Herald: event-sourced publishing backend.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// API and workers in one process (SQLite by default: nothing to set up).
    Serve(SettingsArgs),
    /// Only the HTTP API.
    Api(SettingsArgs),
    /// Only the workers (projectors, schedulers, the mail sender).
    Worker(SettingsArgs),
    /// Apply database migrations and exit.
    Migrate(SettingsArgs),
    /// Print the effective settings (defaults, `herald.toml`, `.env`,
    /// environment, flags), secrets redacted, as a settings file.
    Config(SettingsArgs),
    /// Rebuild read models from the event log, beside the live ones
    /// (a running system keeps serving), and swap them in.
    Replay {
        #[command(flatten)]
        settings: SettingsArgs,
        /// Only this projection (default: all).
        #[arg(long)]
        projection: Option<String>,
    },
    /// Measure the service levels of SPEC §3.
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        which: AuditCommand,
    },
    /// The master key.
    Keys {
        #[command(subcommand)]
        which: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Re-wrap every data key with a new master key (from
    /// `HERALD_NEW_MASTER_KEY`, or generated and printed once).
    Rotate(SettingsArgs),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check a tenant's hash chain in the database, or an exported file
    /// (CSV, JSON or NDJSON). Exit 0: intact; 1: broken (the first broken
    /// row is named); 2: could not check.
    Verify {
        #[command(flatten)]
        settings: SettingsArgs,
        /// The tenant whose chain to check.
        #[arg(long)]
        tenant: uuid::Uuid,
        /// An export to check instead of the database.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    match Cli::parse().command {
        Command::Serve(settings) => run(settings, Mode::Serve).await,
        Command::Api(settings) => run(settings, Mode::Api).await,
        Command::Worker(settings) => run(settings, Mode::Worker).await,
        Command::Config(settings) => {
            print!("{}", settings.load()?.to_toml());
            Ok(())
        }
        Command::Migrate(settings) => {
            settings.load()?.connect().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Replay {
            settings,
            projection,
        } => {
            let settings = settings.load()?;
            let db = settings.connect().await?;
            let projectors = app::projectors(&settings, &db)?;
            let bar = ProgressBar::new(0).with_style(
                ProgressStyle::with_template(
                    "{prefix:>10} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            let started = std::time::Instant::now();
            let replayed = projectors
                .replay(
                    projection.as_deref(),
                    Duration::from_secs(15),
                    |name, done, total| {
                        bar.set_prefix(name.to_string());
                        bar.set_length(total);
                        bar.set_position(done);
                    },
                )
                .await
                .context("replay failed")?;
            bar.finish();
            println!(
                "replayed {} events in {:.2}s",
                replayed.events,
                started.elapsed().as_secs_f64()
            );
            println!("{replayed}");
            Ok(())
        }
        Command::Bench { which } => bench::run(which).await,
        Command::Audit {
            which:
                AuditCommand::Verify {
                    settings,
                    tenant,
                    file,
                },
        } => {
            let settings = settings.load()?;
            std::process::exit(api::audit::cli::run(&settings, tenant, file.as_deref()).await)
        }
        Command::Keys {
            which: KeysCommand::Rotate(settings),
        } => {
            let settings = settings.load()?;
            let db = settings.connect().await?;
            api::identity::keys::rotate(&settings, &db).await
        }
    }
}

/// Runs a process of `mode` until SIGTERM or SIGINT, or until one of its
/// tasks fails.
async fn run(settings: SettingsArgs, mode: Mode) -> anyhow::Result<()> {
    let signal = ShutdownSignal::install()?;
    let app = Application::build(settings.load()?, mode).await?;
    let stop = app.shutdown_handle();
    tokio::spawn(async move {
        signal.recv().await;
        tracing::info!("shutting down");
        stop.send_replace(true);
    });
    app.run().await
}
