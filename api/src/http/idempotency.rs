//! `Idempotency-Key`: a write that is sent again with the same key is
//! carried out once.
//!
//! A client that got no answer (a dropped connection, a 503 while the
//! database was away) cannot know whether its write happened; it retries
//! with the key it sent the first time. For each tenant and key the first
//! request's method, path and body (their hash) and, once it finished, its
//! answer are kept for [`KEEP_FOR`]:
//! - the same request again gets the stored answer (`Idempotent-Replayed:
//!   true`), without running;
//! - another request with the key gets CONFLICT, as does another caller;
//! - a request whose earlier attempt failed on the server's side (no answer
//!   was stored) runs again, and then it is the commands that keep it from
//!   doubling: each command of the request has an id derived from the key,
//!   recorded as the causation id of its events, and a command whose id
//!   the aggregate already holds is not appended twice ([`AppState::execute`]
//!   asks the store for that). The ids of what the request creates are
//!   derived from the key too ([`ids::new_id`]), so the retry finds the first
//!   attempt's aggregates instead of making new ones.
//!
//! Keys apply to authenticated writes: POST, PUT, PATCH and DELETE on the
//! REST routes, and GraphQL mutations. Sign-up needs none: an address can
//! only sign up once.
//!
//! [`AppState::execute`]: crate::state::AppState::execute

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use uuid::Uuid;

use super::{Http, rest_error};
use crate::error::{ApiError, ApiResult};
use crate::identity::auth::{Caller, Principal};
use crate::ids;

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// The response header marking a stored answer sent again.
pub const REPLAYED: &str = "idempotent-replayed";

/// How long a key and its answer are kept.
pub const KEEP_FOR: Duration = Duration::from_secs(24 * 3600);

/// Longest accepted key.
pub const MAX_KEY_CHARS: usize = 255;

/// Largest answer kept (a bigger one is sent but not stored).
const MAX_STORED_BODY: usize = 1 << 20;

/// The middleware (see the module docs).
pub async fn layer(State(http): State<Http>, request: Request, next: Next) -> Response {
    let Some(key) = request.headers().get(HEADER).cloned() else {
        return next.run(request).await;
    };
    if !matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        return next.run(request).await;
    }
    let key = match parse_key(&key) {
        Ok(key) => key,
        Err(error) => return rest_error(&error),
    };
    let auth = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("invalid"));
    let principal = match http.state.sessions.authenticate(auth).await {
        Ok(Caller::Authenticated(principal)) => principal,
        // The route answers for itself (sign-up, or 401).
        Ok(_) => return next.run(request).await,
        Err(error) => return rest_error(&error),
    };
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(
        body,
        http.max_body_bytes.max(crate::media::MAX_UPLOAD_BYTES),
    )
    .await
    {
        Ok(bytes) => bytes,
        Err(_) => {
            return rest_error(&ApiError::invalid(
                "body",
                "the body could not be read: cut off or over the size limit",
            ));
        }
    };
    if parts.uri.path() == "/graphql" && !is_mutation(&bytes) {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    }
    let hash = request_hash(&parts.method, parts.uri.path(), &bytes);
    let keys = Keys(http.state.db.any.clone());
    let started_at = match keys.begin(&principal, &key, &hash).await {
        Ok(Begun::Run { started_at }) => started_at,
        Ok(Begun::Replay(response)) => return response,
        Err(error) => return rest_error(&error),
    };
    let seed = Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("{}|{key}|{hash}", principal.tenant_id).as_bytes(),
    );
    let request = Request::from_parts(parts, Body::from(bytes));
    let response = ids::derived(seed, (started_at / 1000) as u64, next.run(request)).await;
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_STORED_BODY).await else {
        tracing::warn!("an answer too large to keep under its idempotency key");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if worth_repeating(parts.status, &body) {
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json");
        if let Err(error) = keys
            .finish(&principal, &key, parts.status, content_type, &body)
            .await
        {
            tracing::warn!(error = ?error, "the answer to a keyed request was not kept");
        }
    }
    Response::from_parts(parts, Body::from(body))
}

fn parse_key(value: &HeaderValue) -> ApiResult<String> {
    let key = value.to_str().unwrap_or_default();
    if key.is_empty()
        || key.chars().count() > MAX_KEY_CHARS
        || !key.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            format!("must be 1 to {MAX_KEY_CHARS} visible ASCII characters (a UUID, say)"),
        ));
    }
    Ok(key.to_string())
}

/// Whether a GraphQL body holds a mutation (anything unreadable counts as
/// one: the endpoint will refuse it, and a refusal is worth keeping).
fn is_mutation(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Body {
        query: String,
        #[serde(rename = "operationName")]
        operation_name: Option<String>,
    }
    let Ok(body) = serde_json::from_slice::<Body>(body) else {
        return true;
    };
    let Ok(document) = async_graphql::parser::parse_query(&body.query) else {
        return true;
    };
    document.operations.iter().any(|(name, operation)| {
        let chosen = match (&body.operation_name, name) {
            (Some(wanted), Some(name)) => wanted == name.as_str(),
            _ => true,
        };
        chosen && operation.node.ty == async_graphql::parser::types::OperationType::Mutation
    })
}

fn request_hash(method: &Method, path: &str, body: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(method.as_str().as_bytes())
        .chain_update(b" ")
        .chain_update(path.as_bytes())
        .chain_update(b"\n")
        .chain_update(body)
        .finalize();
    hex::encode(digest)
}

/// An answer is kept unless the server failed: a 5xx, or a GraphQL error
/// coded INTERNAL or UNAVAILABLE (then a retry runs again, safely).
fn worth_repeating(status: StatusCode, body: &Bytes) -> bool {
    if status.is_server_error() {
        return false;
    }
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return true;
    };
    !json["errors"].as_array().is_some_and(|errors| {
        errors.iter().any(|e| {
            matches!(
                e["extensions"]["code"].as_str(),
                Some("INTERNAL" | "UNAVAILABLE")
            )
        })
    })
}

enum Begun {
    /// Run the request; ids derive from `started_at` (micros).
    Run { started_at: i64 },
    /// The stored answer, or the refusal.
    Replay(Response),
}

/// The `idempotency_keys` table.
struct Keys(AnyPool);

type Row = (
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
);

impl Keys {
    async fn begin(&self, principal: &Principal, key: &str, hash: &str) -> ApiResult<Begun> {
        let now = projections::micros(Utc::now());
        let fresh_after = now - KEEP_FOR.as_micros() as i64;
        let tenant = principal.tenant_id.to_string();
        let actor = principal.actor.to_string();
        // Claim the key; a row past its 24 hours is taken over.
        sqlx::query(
            "INSERT INTO idempotency_keys (tenant_id, key, actor, request_hash, started_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant_id, key) DO UPDATE
                SET actor = excluded.actor, request_hash = excluded.request_hash,
                    started_at = excluded.started_at, status = NULL,
                    content_type = NULL, body = NULL
              WHERE idempotency_keys.started_at < $6",
        )
        .bind(&tenant)
        .bind(key)
        .bind(&actor)
        .bind(hash)
        .bind(now)
        .bind(fresh_after)
        .execute(&self.0)
        .await?;
        let (stored_actor, stored_hash, started_at, status, content_type, body): Row =
            sqlx::query_as(
                "SELECT actor, request_hash, started_at, status, content_type, body
                   FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
            )
            .bind(&tenant)
            .bind(key)
            .fetch_one(&self.0)
            .await?;
        if stored_actor != actor || stored_hash != hash {
            return Ok(Begun::Replay(rest_error(&ApiError::Conflict(
                "this Idempotency-Key was used for another request".into(),
            ))));
        }
        match (status, body) {
            (Some(status), Some(body)) => {
                let mut response = Response::new(Body::from(body));
                *response.status_mut() =
                    StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    content_type
                        .and_then(|c| HeaderValue::from_str(&c).ok())
                        .unwrap_or(HeaderValue::from_static("application/json")),
                );
                headers.insert(REPLAYED, HeaderValue::from_static("true"));
                Ok(Begun::Replay(response))
            }
            _ => Ok(Begun::Run { started_at }),
        }
    }

    async fn finish(
        &self,
        principal: &Principal,
        key: &str,
        status: StatusCode,
        content_type: &str,
        body: &[u8],
    ) -> ApiResult<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET status = $1, content_type = $2, body = $3
              WHERE tenant_id = $4 AND key = $5 AND status IS NULL",
        )
        .bind(status.as_u16() as i64)
        .bind(content_type)
        .bind(String::from_utf8_lossy(body).into_owned())
        .bind(principal.tenant_id.to_string())
        .bind(key)
        .execute(&self.0)
        .await?;
        Ok(())
    }
}

/// Deletes keys older than [`KEEP_FOR`] (housekeeping).
pub async fn forget_expired(db: &AnyPool) -> Result<u64, sqlx::Error> {
    let before = projections::micros(Utc::now()) - KEEP_FOR.as_micros() as i64;
    Ok(
        sqlx::query("DELETE FROM idempotency_keys WHERE started_at < $1")
            .bind(before)
            .execute(db)
            .await?
            .rows_affected(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_visible_ascii() {
        assert!(parse_key(&HeaderValue::from_static("5f0c-ab")).is_ok());
        for bad in ["", "has space", &"k".repeat(256)] {
            let value = HeaderValue::from_str(bad).unwrap();
            assert!(parse_key(&value).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_mutations_are_keyed_on_graphql() {
        assert!(is_mutation(br#"{"query":"mutation { a }"}"#));
        assert!(!is_mutation(br#"{"query":"{ a }"}"#));
        assert!(!is_mutation(
            br#"{"query":"query Q { a } mutation M { b }","operationName":"Q"}"#
        ));
    }

    #[test]
    fn server_failures_are_not_kept() {
        assert!(!worth_repeating(
            StatusCode::SERVICE_UNAVAILABLE,
            &Bytes::new()
        ));
        let internal =
            Bytes::from_static(br#"{"data":null,"errors":[{"extensions":{"code":"INTERNAL"}}]}"#);
        assert!(!worth_repeating(StatusCode::OK, &internal));
        let refused =
            Bytes::from_static(br#"{"data":null,"errors":[{"extensions":{"code":"VALIDATION"}}]}"#);
        assert!(worth_repeating(StatusCode::OK, &refused));
    }
}
