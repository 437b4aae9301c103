//! Uploading an image, the one path behind `POST /api/v1/media` and the
//! GraphQL mutation `uploadMedia`: the bytes are decoded (type, byte size
//! and pixel size checked against the limits in `domain::media` first, then
//! every pixel, see [`workers::media::inspect`]), stored in the object store
//! under an id of ours, and the asset recorded with a sanitised display
//! name. Nothing is stored when a check fails.

use axum::body::Bytes;
use domain::media::{ImageFacts, MediaCommand};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::identity::auth::Principal;
use crate::state::{AppState, Target};

/// Largest upload body accepted (larger bodies get 413, refused from their
/// declared length before they are read); files over Bluesky's own limit but
/// under this get a clear `VALIDATION` error.
pub const MAX_UPLOAD_BYTES: usize = 8 * 1024 * 1024;

/// Longest display name kept, in characters.
pub const MAX_FILENAME_CHARS: usize = 255;

/// The display name of a file whose name leaves nothing to show.
pub const FALLBACK_FILENAME: &str = "image";

/// Uploads this process decodes at once. Each may take up to
/// [`workers::media::MAX_DECODE_BYTES`], so this bounds the memory uploads
/// can take together (and leaves the other core to everything else).
const PARALLEL_DECODES: usize = 2;

static DECODES: Semaphore = Semaphore::const_new(PARALLEL_DECODES);

/// A recorded upload.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub id: Uuid,
    pub facts: ImageFacts,
    /// The client's file name as [`display_name`] cleaned it.
    pub filename: String,
}

/// The name an upload is shown under, from the name the client sent: its
/// last path component (`/` and `\` both separate), without control and
/// bidirectional-formatting characters (which could make `gnp.exe` read as
/// `exe.png`), trimmed, and cut to [`MAX_FILENAME_CHARS`] characters;
/// [`FALLBACK_FILENAME`] when nothing is left. It is only ever displayed:
/// files are stored under `<tenant>/<asset id>`, never under this name.
pub fn display_name(sent: &str) -> String {
    let last = sent.rsplit(['/', '\\']).next().unwrap_or_default();
    let kept: String = last
        .chars()
        .filter(|&c| !c.is_control() && !is_bidi_control(c))
        .collect();
    let name: String = kept.trim().chars().take(MAX_FILENAME_CHARS).collect();
    match name.trim_end() {
        "" | "." | ".." => FALLBACK_FILENAME.to_string(),
        name => name.to_string(),
    }
}

/// Unicode's bidirectional formatting characters (marks, embeddings,
/// overrides and isolates), which reorder how the text around them shows.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// [`workers::media::inspect`] on a blocking thread, at most
/// [`PARALLEL_DECODES`] at a time. A decoder that panics on hostile bytes
/// refuses the file like any other that does not decode.
async fn inspect(bytes: Bytes, field: &str) -> ApiResult<ImageFacts> {
    let _permit = DECODES.acquire().await.map_err(ApiError::internal)?;
    let owned = field.to_string();
    match tokio::task::spawn_blocking(move || workers::media::inspect(&bytes, &owned)).await {
        Ok(inspected) => Ok(inspected?),
        Err(error) => {
            tracing::warn!(%error, "an image decoder failed on an upload");
            Err(ApiError::invalid(
                field,
                "the file does not decode as an image",
            ))
        }
    }
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
    let facts = inspect(bytes.clone(), field).await?;
    let filename = display_name(filename);
    let id = crate::ids::new_id();
    let key = format!("{}/{id}", principal.tenant_id);
    if let Err(error) = state.media_store.put(&key, bytes).await {
        tracing::error!(%error, "storing an upload failed");
        return Err(ApiError::platform_unavailable(
            "the media store is unavailable; try again",
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_keep_only_the_last_path_component() {
        assert_eq!(display_name("../../../../x.png"), "x.png");
        assert_eq!(display_name("/etc/passwd"), "passwd");
        assert_eq!(display_name("C:\\Users\\ada\\photo.png"), "photo.png");
        assert_eq!(display_name("..\\..\\x.png"), "x.png");
        assert_eq!(display_name("a/b\\c.gif"), "c.gif");
        assert_eq!(display_name("holiday photo.jpg"), "holiday photo.jpg");
        assert_eq!(display_name("Zoë.png"), "Zoë.png");
    }

    #[test]
    fn display_names_lose_control_and_bidi_characters_and_outer_space() {
        assert_eq!(display_name("a\0b\r\n\tc\u{7f}.png"), "abc.png");
        assert_eq!(display_name("\u{202E}gnp.exe"), "gnp.exe");
        assert_eq!(display_name("x\u{2066}y\u{2069}\u{200F}.png"), "xy.png");
        assert_eq!(display_name("  spaced.png  "), "spaced.png");
    }

    #[test]
    fn empty_or_dot_names_fall_back() {
        for sent in [
            "",
            "   ",
            "/",
            "dir/",
            "..",
            ".",
            "../..",
            "\0\u{202E}",
            " . ",
        ] {
            assert_eq!(display_name(sent), FALLBACK_FILENAME, "{sent:?}");
        }
        assert_eq!(display_name("...png"), "...png");
    }

    #[test]
    fn display_names_are_cut_on_a_character_boundary() {
        let long = "é".repeat(10_000);
        let cut = display_name(&long);
        assert_eq!(cut.chars().count(), MAX_FILENAME_CHARS);
        assert_eq!(cut, "é".repeat(MAX_FILENAME_CHARS));
        let emoji = "👩‍👩‍👧".repeat(200);
        assert_eq!(display_name(&emoji).chars().count(), MAX_FILENAME_CHARS);
        // A cut that ends in a space does not leave it at the end.
        let spaced = format!("{} b", "a".repeat(MAX_FILENAME_CHARS - 1));
        assert_eq!(display_name(&spaced), "a".repeat(MAX_FILENAME_CHARS - 1));
        assert_eq!(
            display_name(&"x".repeat(MAX_FILENAME_CHARS)).len(),
            MAX_FILENAME_CHARS
        );
    }
}
