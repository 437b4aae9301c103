//! Display presence: every process writes heartbeats for the displays
//! connected to it (a table, not events), and turns displays whose
//! heartbeats disagree with the read model ONLINE or OFFLINE (events: only
//! the transitions). Any number of processes may sweep: the Display
//! aggregate records a transition once, whoever asks first.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::Scoped;
use domain::metadata::{Actor, EventMetadata};
use domain::signage::DisplayCommand;
use tokio::sync::watch;
use uuid::Uuid;

use crate::state::AppState;

/// How often heartbeats are written and presence is swept.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// A display not seen for this long is OFFLINE.
pub const OFFLINE_AFTER_SECONDS: i64 = 60;

/// Heartbeats and sweeps until `shutdown`.
pub async fn run(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Err(error) = tick(&state).await {
                    tracing::warn!(%error, "display presence failed");
                }
            }
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}

/// One heartbeat and one sweep.
pub async fn tick(state: &AppState) -> Result<(), projections::StoreError> {
    state.signage.heartbeat(&state.hub.connected()).await?;
    for (tenant, display_id, online) in state
        .signage
        .presence_changes(OFFLINE_AFTER_SECONDS)
        .await?
    {
        let meta = EventMetadata::new(tenant, Actor::System, Uuid::now_v7(), Utc::now());
        let command = if online {
            DisplayCommand::MarkOnline
        } else {
            DisplayCommand::MarkOffline
        };
        let result = state
            .displays
            .execute(
                &display_id.to_string(),
                Scoped {
                    tenant_id: tenant,
                    command,
                },
                &meta,
            )
            .await;
        if let Err(error) = result {
            tracing::debug!(%display_id, error = %error, "presence transition not recorded");
        }
    }
    Ok(())
}
