#![recursion_limit = "256"]
//! The `herald` command.

use std::time::Duration;

use anyhow::Context;
use api::{Application, Config, Mode, app, audit_cli, bench, telemetry};
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
    Serve(Config),
    /// Only the HTTP API.
    Api(Config),
    /// Only the workers (projectors, schedulers, the mail sender).
    Worker(Config),
    /// Apply database migrations and exit.
    Migrate(Config),
    /// Rebuild read models from the event log.
    Replay {
        #[command(flatten)]
        config: Config,
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
    Rotate(Config),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check a tenant's hash chain in the database, or an exported file
    /// (CSV, JSON or NDJSON). Exit 0: intact; 1: broken (the first broken
    /// row is named); 2: could not check.
    Verify {
        #[command(flatten)]
        config: Config,
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
        Command::Serve(config) => serve(config, Mode::Serve).await,
        Command::Api(config) => serve(config, Mode::Api).await,
        Command::Worker(config) => {
            let db = app::connect(&config).await?;
            let keyring = api::keys::keyring(&config, &db)?;
            let mail = app::mail_sender(&config, db.clone(), &keyring)?;
            let accounts = app::accounts(&config, &db, &keyring)?;
            let projectors = workers::projectors(
                db.clone(),
                &keyring,
                &app::public_url(&config),
                projections::push::Hub::new(),
            );
            let publisher = workers::publisher(
                &db,
                &projectors,
                accounts.clone(),
                config.media_store()?,
                config.publisher(),
            );
            let collector = workers::collector(&db, &projectors, accounts, config.collector());
            let (stop, shutdown) = tokio::sync::watch::channel(false);
            let tasks = workers::start(&projectors, mail, publisher, collector, shutdown);
            app::shutdown_signal().await;
            stop.send_replace(true);
            for task in tasks {
                let _ = task.await;
            }
            Ok(())
        }
        Command::Migrate(config) => {
            app::connect(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Replay { config, projection } => {
            let db = app::connect(&config).await?;
            let projectors = app::projectors(&config, &db)?;
            let bar = ProgressBar::new(0).with_style(
                ProgressStyle::with_template(
                    "{prefix:>10} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            let started = std::time::Instant::now();
            let applied = projectors
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
                "replayed {applied} events in {:.2}s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Bench { which } => bench::run(which).await,
        Command::Audit {
            which:
                AuditCommand::Verify {
                    config,
                    tenant,
                    file,
                },
        } => std::process::exit(audit_cli::run(&config, tenant, file.as_deref()).await),
        Command::Keys {
            which: KeysCommand::Rotate(config),
        } => {
            let db = app::connect(&config).await?;
            api::keys::rotate(&config, &db).await
        }
    }
}

async fn serve(config: Config, mode: Mode) -> anyhow::Result<()> {
    let app = Application::build(config, mode).await?;
    let stop = app.shutdown_handle();
    tokio::spawn(async move {
        app::shutdown_signal().await;
        tracing::info!("shutting down");
        stop.send_replace(true);
    });
    app.run().await
}
