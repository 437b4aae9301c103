//! The `herald` command.

use std::time::Duration;

use anyhow::Context;
use api::{Application, Config, Mode, app, bench, telemetry};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use projections::Projectors;

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
    /// Only the workers (projectors, schedulers).
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    match Cli::parse().command {
        Command::Serve(config) => serve(config, Mode::Serve).await,
        Command::Api(config) => serve(config, Mode::Api).await,
        Command::Worker(config) => {
            let db = app::connect(&config).await?;
            let projectors = Projectors::new(db);
            let (stop, shutdown) = tokio::sync::watch::channel(false);
            let tasks = workers::start(&projectors, shutdown);
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
            let projectors = Projectors::new(db);
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
