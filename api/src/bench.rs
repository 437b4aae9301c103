//! Benchmarks of the service levels in SPEC §3.

/// Which benchmark to run.
#[derive(Debug, clap::Subcommand)]
pub enum Which {}

/// Runs a benchmark and prints its figures.
pub async fn run(which: Which) -> anyhow::Result<()> {
    match which {}
}
