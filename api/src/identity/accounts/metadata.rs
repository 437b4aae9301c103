//! Event metadata for account flows that run without a session: sign-up,
//! invitations, and the links sent by mail.

use chrono::Utc;
use domain::metadata::{Actor, EventMetadata};
use uuid::Uuid;

use crate::error::ApiResult;
use crate::state::AppState;

/// Metadata for `actor` in `tenant_id`, stamped now.
pub(super) fn system_meta(tenant_id: Uuid, actor: Actor, correlation: Uuid) -> EventMetadata {
    EventMetadata::new(tenant_id, actor, correlation, Utc::now())
}

/// Metadata for a person acting on their own account without a session
/// (reset, verification links): their events are filed under their first
/// organisation, so the audit trail of that tenant shows them.
pub(super) async fn own_meta(
    state: &AppState,
    user_id: Uuid,
    correlation: Uuid,
) -> ApiResult<EventMetadata> {
    let tenant_id = state
        .identity
        .memberships(user_id)
        .await?
        .first()
        .map_or(Uuid::nil(), |(t, _)| *t);
    Ok(system_meta(tenant_id, Actor::User(user_id), correlation))
}
