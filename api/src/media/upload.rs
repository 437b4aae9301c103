//! Uploading an image, the one path behind `POST /api/v1/media` and the
//! GraphQL mutation `uploadMedia`: the type is sniffed from the bytes, the
//! size and pixel dimensions checked against Bluesky's limits, the bytes
//! stored in the object store and the asset recorded. Nothing is stored when
//! a check fails.

use axum::body::Bytes;
use domain::media::{ImageFacts, MediaCommand};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::identity::auth::Principal;
use crate::state::{AppState, Target};

/// Largest upload body accepted (larger bodies get 413, refused from their
/// declared length before they are read); files over Bluesky's own limit but
/// under this get a clear `VALIDATION` error.
pub const MAX_UPLOAD_BYTES: usize = 8 * 1024 * 1024;

/// Longest filename kept, in characters.
const MAX_FILENAME_CHARS: usize = 255;

/// A recorded upload.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub id: Uuid,
    pub facts: ImageFacts,
    /// The client's filename, without control characters.
    pub filename: String,
}

/// Sniffs, checks, stores and records an image for `principal`'s tenant
/// (`field` names the input in validation errors). The caller has
/// authorized the principal. When a check fails nothing is stored; when
/// recording fails the stored bytes are removed again.
#[tracing::instrument(skip_all, fields(tenant = %principal.tenant_id, size = bytes.len()))]
pub async fn store_upload(
    state: &AppState,
    principal: &Principal,
    correlation: Uuid,
    field: &str,
    filename: &str,
    bytes: Bytes,
) -> ApiResult<Uploaded> {
    let facts = workers::media::sniff(&bytes).ok_or_else(|| {
        ApiError::invalid(field, "not an image Bluesky shows (PNG, JPEG, WebP or GIF)")
    })?;
    facts.check(field)?;
    let id = crate::ids::new_id();
    let key = format!("{}/{id}", principal.tenant_id);
    if let Err(error) = state.media_store.put(&key, bytes).await {
        tracing::error!(%error, "storing an upload failed");
        return Err(ApiError::platform_unavailable(
            "the media store is unavailable; try again",
        ));
    }
    let filename: String = filename
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_FILENAME_CHARS)
        .collect();
    let command = MediaCommand::Upload {
        facts: facts.clone(),
        key: key.clone(),
        filename: filename.clone(),
    };
    let recorded = state
        .execute(
            &state.media,
            principal,
            correlation,
            Target::New(id),
            command,
        )
        .await;
    if let Err(e) = recorded {
        if let Err(error) = state.media_store.delete(&key).await {
            tracing::warn!(%error, "an upload that was not recorded left its file behind");
        }
        return Err(e);
    }
    Ok(Uploaded {
        id,
        facts,
        filename,
    })
}
