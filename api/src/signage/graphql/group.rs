//! Display groups: listing them, creating one (groups nest one level) and
//! setting a group's default playlist.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use domain::access::Action;
use domain::signage::{GroupCommand, SignageState};
use uuid::Uuid;

use super::support::{Target, check_group, check_playlist, content, execute, id, opt_id};
use crate::error::{ApiError, ApiResult};
use crate::graphql::{parse_id, principal};

/// A group of displays; groups nest one level.
#[derive(SimpleObject)]
pub struct DisplayGroup {
    pub id: ID,
    pub name: String,
    pub parent_id: Option<ID>,
    /// Plays when no schedule matches a display of the group (or of its
    /// child groups without a default of their own).
    pub default_playlist_id: Option<ID>,
}

#[derive(InputObject)]
pub struct CreateDisplayGroupInput {
    pub name: String,
    /// A top-level group (groups nest one level).
    pub parent_id: Option<ID>,
    pub default_playlist_id: Option<ID>,
}

fn group_out(id_: Uuid, s: &SignageState) -> ApiResult<DisplayGroup> {
    let g = s
        .groups
        .get(&id_)
        .ok_or(ApiError::NotFound("display group"))?;
    Ok(DisplayGroup {
        id: id(id_),
        name: g.name.clone(),
        parent_id: g.parent_id.map(id),
        default_playlist_id: g.default_playlist_id.map(id),
    })
}

/// The display group queries.
#[derive(Default)]
pub struct GroupQuery;

#[Object]
impl GroupQuery {
    /// Display groups, by name.
    async fn display_groups(&self, ctx: &Context<'_>) -> ApiResult<Vec<DisplayGroup>> {
        let p = principal(ctx, Action::Read)?;
        let s = content(ctx, p).await?;
        let mut out: Vec<DisplayGroup> = s
            .groups
            .keys()
            .map(|g| group_out(*g, &s))
            .collect::<ApiResult<_>>()?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// The display group mutations.
#[derive(Default)]
pub struct GroupMutation;

#[Object]
impl GroupMutation {
    async fn create_display_group(
        &self,
        ctx: &Context<'_>,
        input: CreateDisplayGroupInput,
    ) -> ApiResult<DisplayGroup> {
        let p = principal(ctx, Action::ManageDisplays)?;
        let s = content(ctx, p).await?;
        let parent = opt_id(&input.parent_id, "parentId")?;
        let playlist = opt_id(&input.default_playlist_id, "defaultPlaylistId")?;
        if let Some(g) = parent {
            check_group(&s, g)?;
            if !s.top_level_group(g) {
                return Err(ApiError::invalid(
                    "parentId",
                    "groups nest one level: the parent must be a top-level group",
                ));
            }
        }
        if let Some(pl) = playlist {
            check_playlist(&s, pl)?;
        }
        let group = crate::ids::new_id();
        execute(
            ctx,
            p,
            |st| &st.display_groups,
            Target::New(group),
            GroupCommand::Create {
                name: input.name,
                parent_id: parent,
                default_playlist_id: playlist,
            },
        )
        .await?;
        group_out(group, &content(ctx, p).await?)
    }

    /// Sets (or with null removes) a group's default playlist.
    async fn set_group_default_playlist(
        &self,
        ctx: &Context<'_>,
        id: ID,
        playlist_id: Option<ID>,
    ) -> ApiResult<DisplayGroup> {
        let p = principal(ctx, Action::ManageDisplays)?;
        let group = parse_id(&id, "id")?;
        let playlist = opt_id(&playlist_id, "playlistId")?;
        if let Some(pl) = playlist {
            check_playlist(&content(ctx, p).await?, pl)?;
        }
        execute(
            ctx,
            p,
            |st| &st.display_groups,
            Target::Existing(group),
            GroupCommand::SetDefaultPlaylist {
                playlist_id: playlist,
            },
        )
        .await?;
        group_out(group, &content(ctx, p).await?)
    }
}
