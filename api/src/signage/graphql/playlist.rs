//! Playlists: listing them, creating and updating one.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use domain::access::Action;
use domain::manifest::PlaylistItem;
use domain::signage::{PlaylistCommand, SignageState};
use uuid::Uuid;

use super::support::{Target, content, execute, id};
use crate::error::{ApiError, ApiResult};
use crate::graphql::{parse_id, principal};

/// An entry of a playlist.
#[derive(SimpleObject)]
pub struct PlaylistEntry {
    pub notice_id: ID,
    pub duration_seconds: i32,
}

/// An ordered list of notices with their durations.
#[derive(SimpleObject)]
pub struct Playlist {
    pub id: ID,
    pub name: String,
    pub items: Vec<PlaylistEntry>,
}

#[derive(InputObject)]
pub struct PlaylistItemInput {
    pub notice_id: ID,
    pub duration_seconds: i32,
}

#[derive(InputObject)]
pub struct PlaylistInput {
    pub name: String,
    pub items: Vec<PlaylistItemInput>,
}

fn playlist_out(id_: Uuid, s: &SignageState) -> ApiResult<Playlist> {
    let (name, items) = s
        .playlists
        .get(&id_)
        .ok_or(ApiError::NotFound("playlist"))?;
    Ok(Playlist {
        id: id(id_),
        name: name.clone(),
        items: items
            .iter()
            .map(|i| PlaylistEntry {
                notice_id: id(i.notice_id),
                duration_seconds: i.duration_seconds as i32,
            })
            .collect(),
    })
}

/// Validates playlist items in the tenant.
fn playlist_items(s: &SignageState, items: Vec<PlaylistItemInput>) -> ApiResult<Vec<PlaylistItem>> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let notice = parse_id(&item.notice_id, &format!("items.{i}.noticeId"))?;
            if s.notices.get(&notice).is_none_or(|n| n.deleted) {
                return Err(ApiError::NotFound("notice"));
            }
            if !(1..=3600).contains(&item.duration_seconds) {
                return Err(ApiError::invalid(
                    &format!("items.{i}.durationSeconds"),
                    "between 1 and 3600 seconds",
                ));
            }
            Ok(PlaylistItem {
                notice_id: notice,
                duration_seconds: item.duration_seconds as u32,
            })
        })
        .collect()
}

/// The playlist queries.
#[derive(Default)]
pub struct PlaylistQuery;

#[Object]
impl PlaylistQuery {
    /// Playlists, by name.
    async fn playlists(&self, ctx: &Context<'_>) -> ApiResult<Vec<Playlist>> {
        let p = principal(ctx, Action::Read)?;
        let s = content(ctx, p).await?;
        let mut out: Vec<Playlist> = s
            .playlists
            .keys()
            .map(|i| playlist_out(*i, &s))
            .collect::<ApiResult<_>>()?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// The playlist mutations.
#[derive(Default)]
pub struct PlaylistMutation;

#[Object]
impl PlaylistMutation {
    async fn create_playlist(
        &self,
        ctx: &Context<'_>,
        input: PlaylistInput,
    ) -> ApiResult<Playlist> {
        let p = principal(ctx, Action::ManageSignage)?;
        let items = playlist_items(&content(ctx, p).await?, input.items)?;
        let playlist = crate::ids::new_id();
        execute(
            ctx,
            p,
            |st| &st.playlists,
            Target::New(playlist),
            PlaylistCommand::Create {
                name: input.name,
                items,
            },
        )
        .await?;
        playlist_out(playlist, &content(ctx, p).await?)
    }

    async fn update_playlist(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: PlaylistInput,
    ) -> ApiResult<Playlist> {
        let p = principal(ctx, Action::ManageSignage)?;
        let playlist = parse_id(&id, "id")?;
        let items = playlist_items(&content(ctx, p).await?, input.items)?;
        execute(
            ctx,
            p,
            |st| &st.playlists,
            Target::Existing(playlist),
            PlaylistCommand::Update {
                name: input.name,
                items,
            },
        )
        .await?;
        playlist_out(playlist, &content(ctx, p).await?)
    }
}
