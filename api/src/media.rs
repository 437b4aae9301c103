//! `POST /api/v1/media`: upload an image (multipart, field `file`). The type
//! is sniffed from the bytes, the size and pixel dimensions checked against
//! Bluesky's limits, the bytes stored in the object store and the asset
//! recorded; the answer is its id. Nothing is stored when a check fails.

use axum::Json;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::Scoped;
use domain::access::Action;
use domain::media::MediaCommand;
use serde_json::json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::http::{Http, rest_error, rest_principal};

/// Largest upload body accepted by the route (larger files get 413); files
/// over Bluesky's own limit but under this get a clear `VALIDATION` error.
pub const MAX_UPLOAD_BYTES: usize = 8 * 1024 * 1024;

fn invalid(message: impl Into<String>) -> Response {
    rest_error(StatusCode::BAD_REQUEST, &ApiError::invalid("file", message))
}

/// `POST /api/v1/media`.
pub async fn upload(State(http): State<Http>, headers: HeaderMap, mut form: Multipart) -> Response {
    let principal = match rest_principal(&http, &headers, Action::ManagePosts).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    let mut file = None;
    loop {
        match form.next_field().await {
            Ok(Some(field)) if field.name() == Some("file") => {
                let filename = field.file_name().unwrap_or("upload").to_string();
                match field.bytes().await {
                    Ok(bytes) => file = Some((filename, bytes)),
                    Err(_) => return invalid("the upload was cut off or too large"),
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => return invalid("expected multipart/form-data with a `file` field"),
        }
    }
    let Some((filename, bytes)) = file else {
        return invalid("expected multipart/form-data with a `file` field");
    };
    let Some(facts) = workers::media::sniff(&bytes) else {
        return invalid("not an image Bluesky shows (PNG, JPEG, WebP or GIF)");
    };
    if let Err(e) = facts.check("file") {
        return rest_error(StatusCode::BAD_REQUEST, &e.into());
    }
    let state = &http.state;
    let id = Uuid::now_v7();
    let key = format!("{}/{id}", principal.tenant_id);
    if let Err(e) = state.media_store.put(&key, bytes.clone()).await {
        tracing::error!(error = %e, "storing an upload failed");
        return rest_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &ApiError::Unavailable("the media store is unavailable; try again".into()),
        );
    }
    let filename: String = filename
        .chars()
        .filter(|c| !c.is_control())
        .take(255)
        .collect();
    let meta = state.metadata(&principal, Uuid::now_v7());
    let result = state
        .create(
            &state.media,
            id,
            Scoped {
                tenant_id: principal.tenant_id,
                command: MediaCommand::Upload {
                    facts: facts.clone(),
                    key: key.clone(),
                    filename: filename.clone(),
                },
            },
            &meta,
        )
        .await;
    if let Err(e) = result {
        let _ = state.media_store.delete(&key).await;
        let status = match e {
            ApiError::Validation { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        return rest_error(status, &e);
    }
    (
        StatusCode::CREATED,
        Json(json!({
            "id": id, "mime": facts.mime, "size": facts.size,
            "width": facts.width, "height": facts.height, "filename": filename,
        })),
    )
        .into_response()
}
