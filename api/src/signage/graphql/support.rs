//! What several signage resolvers share: the tenant's signage state, the
//! checks that an id names something of the caller's tenant, the id helpers,
//! [`execute`] with its [`Target`], and [`Removed`].
//!
//! Every id an input names is looked up in the caller's tenant first, so a
//! foreign id is `NOT_FOUND` exactly like one that does not exist.

use async_graphql::{Context, ID, SimpleObject};
use domain::signage::SignageState;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
pub(super) use crate::graphql::execute;
use crate::graphql::{parse_id, state};
use crate::identity::auth::Principal;
pub(super) use crate::state::Target;

/// The id of something just removed.
#[derive(SimpleObject)]
pub struct Removed {
    pub id: ID,
}

/// A uuid as a GraphQL id.
pub(super) fn id(u: Uuid) -> ID {
    ID(u.to_string())
}

/// Parses an optional id argument; `field` names it in the error.
pub(super) fn opt_id(raw: &Option<ID>, field: &str) -> ApiResult<Option<Uuid>> {
    raw.as_ref().map(|i| parse_id(i, field)).transpose()
}

/// Parses a list of ids; `field` names the list (`displayIds.3` in the
/// error).
pub(super) fn parse_ids(raw: &[ID], field: &str) -> ApiResult<Vec<Uuid>> {
    raw.iter()
        .enumerate()
        .map(|(i, id)| parse_id(id, &format!("{field}.{i}")))
        .collect()
}

/// The caller's tenant's signage content: groups, notices, categories,
/// playlists, schedules and emergencies.
pub(super) async fn content(ctx: &Context<'_>, p: &Principal) -> ApiResult<SignageState> {
    Ok(state(ctx).signage.state(p.tenant_id).await?)
}

/// `NOT_FOUND` unless `group` is a display group of the tenant.
pub(super) fn check_group(s: &SignageState, group: Uuid) -> ApiResult<()> {
    s.groups
        .contains_key(&group)
        .then_some(())
        .ok_or(ApiError::NotFound("display group"))
}

/// `NOT_FOUND` unless `playlist` is a playlist of the tenant.
pub(super) fn check_playlist(s: &SignageState, playlist: Uuid) -> ApiResult<()> {
    s.playlists
        .contains_key(&playlist)
        .then_some(())
        .ok_or(ApiError::NotFound("playlist"))
}

/// `NOT_FOUND` unless `media`, when given, is a media asset of the tenant.
pub(super) async fn check_media(
    ctx: &Context<'_>,
    p: &Principal,
    media: Option<Uuid>,
) -> ApiResult<()> {
    if let Some(m) = media {
        state(ctx)
            .media_reads
            .get(p.tenant_id, m)
            .await?
            .ok_or(ApiError::NotFound("media asset"))?;
    }
    Ok(())
}
