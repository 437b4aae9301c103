//! Background work of a `herald worker` (or `herald serve`) process: today the
//! projector runners; the publish scheduler and the other process managers
//! join them here. Every task stops when `shutdown` flips to true.

use projections::Projectors;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Starts every background task of a worker process.
pub fn start(projectors: &Projectors, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    tracing::info!(projections = ?projectors.names(), "starting projectors");
    projectors.spawn(shutdown)
}
