//! Uploaded images: upload, list, look up, delete. `uploadMedia` takes the
//! file as a multipart request (the GraphQL multipart request spec) and goes
//! the same way as `POST /api/v1/media`; either answers the asset id used in
//! `createPost`.

use async_graphql::{Context, ID, Object, SimpleObject, Upload};
use chrono::{DateTime, Utc};
use domain::access::Action;
use domain::media::MediaCommand;
use projections::from_micros;
use projections::media::MediaRow;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::graphql::{correlation, parse_id, principal, state};
use crate::state::Target;

/// An uploaded image.
#[derive(SimpleObject)]
pub struct MediaAsset {
    pub id: ID,
    /// Sniffed from the bytes, e.g. `image/png`.
    pub mime: String,
    /// In bytes.
    pub size: i64,
    /// In pixels (published as the aspect ratio).
    pub width: i64,
    pub height: i64,
    pub filename: String,
    pub created_at: DateTime<Utc>,
}

impl From<MediaRow> for MediaAsset {
    fn from(row: MediaRow) -> Self {
        Self {
            id: ID(row.id),
            mime: row.mime,
            size: row.size,
            width: row.width,
            height: row.height,
            filename: row.filename,
            created_at: from_micros(row.created_at),
        }
    }
}

async fn asset_by_id(ctx: &Context<'_>, tenant: Uuid, id: Uuid) -> ApiResult<MediaAsset> {
    state(ctx)
        .media_reads
        .get(tenant, id)
        .await?
        .map(Into::into)
        .ok_or(ApiError::NotFound("media asset"))
}

#[derive(Default)]
pub struct MediaQuery;

#[Object]
impl MediaQuery {
    /// The organisation's images, newest first (at most 500).
    async fn media_assets(&self, ctx: &Context<'_>) -> ApiResult<Vec<MediaAsset>> {
        let p = principal(ctx, Action::Read)?;
        Ok(state(ctx)
            .media_reads
            .list(p.tenant_id, 500)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// One image.
    async fn media_asset(&self, ctx: &Context<'_>, id: ID) -> ApiResult<MediaAsset> {
        let p = principal(ctx, Action::Read)?;
        asset_by_id(ctx, p.tenant_id, parse_id(&id, "id")?).await
    }
}

/// Result of `deleteMedia`.
#[derive(SimpleObject)]
pub struct DeletedMedia {
    pub id: ID,
}

#[derive(Default)]
pub struct MediaMutation;

#[Object]
impl MediaMutation {
    /// Uploads an image: PNG, JPEG, WebP or GIF (judged from the bytes), at
    /// most 1,000,000 bytes. Send it as a multipart request by the GraphQL
    /// multipart request spec, the file mapped to this argument.
    async fn upload_media(&self, ctx: &Context<'_>, file: Upload) -> ApiResult<MediaAsset> {
        let p = principal(ctx, Action::ManagePosts)?;
        let file = file.value(ctx).map_err(ApiError::internal)?;
        let uploaded = super::upload::store_upload(
            state(ctx),
            p,
            correlation(ctx),
            "file",
            &file.filename,
            file.content,
        )
        .await?;
        asset_by_id(ctx, p.tenant_id, uploaded.id).await
    }

    /// Deletes an image no post uses (`CONFLICT` otherwise).
    async fn delete_media(&self, ctx: &Context<'_>, id: ID) -> ApiResult<DeletedMedia> {
        let p = principal(ctx, Action::ManagePosts)?;
        let state = state(ctx);
        let asset = parse_id(&id, "id")?;
        asset_by_id(ctx, p.tenant_id, asset).await?;
        let in_use = state.media_reads.in_use(asset).await?;
        state
            .execute(
                &state.media,
                p,
                correlation(ctx),
                Target::Existing(asset),
                MediaCommand::Delete { in_use },
            )
            .await?;
        let key = state.load(&state.media, asset).await?.key;
        if let Err(error) = state.media_store.delete(&key).await {
            tracing::warn!(%error, "deleted media left its file behind");
        }
        Ok(DeletedMedia { id })
    }
}
