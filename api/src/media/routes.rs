//! `POST /api/v1/media` (multipart, field `file`): an upload over REST.

use axum::Json;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::access::Action;
use serde_json::json;

use super::upload::{Uploaded, store_upload};
use crate::error::ApiError;
use crate::http::{Http, correlation, rest_error, rest_principal};

fn invalid(message: impl Into<String>) -> Response {
    rest_error(&ApiError::invalid("file", message))
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
    match store_upload(
        &http.state,
        &principal,
        correlation(&headers),
        "file",
        &filename,
        bytes,
    )
    .await
    {
        Ok(Uploaded {
            id,
            facts,
            filename,
        }) => (
            StatusCode::CREATED,
            Json(json!({
                "id": id, "mime": facts.mime, "size": facts.size,
                "width": facts.width, "height": facts.height, "filename": filename,
            })),
        )
            .into_response(),
        Err(e) => {
            if let ApiError::Internal(source) = &e {
                tracing::error!(error = %source, "recording an upload failed");
            }
            rest_error(&e)
        }
    }
}
