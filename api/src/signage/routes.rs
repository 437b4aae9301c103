//! The display API (`/display/v1`, see docs/signage.md): registration,
//! status, the manifest with its ETag, media, the push stream and proof of
//! play. A display authenticates with its device secret; once paired it is
//! a display principal of its tenant, which the permission matrix lets read
//! its own manifest and report plays, nothing else.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, Utc};
use domain::access::{Action, Subject};
use domain::metadata::Actor;
use domain::signage::{Play, PlayReportCommand, play_report_id};
use projections::signage::manifest_json;
use rand::Rng;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::http::client::ClientInfo;
use crate::http::{Http, correlation, rest_error};
use crate::identity::auth::Principal;
use crate::identity::ratelimit::{self, Policy};
use crate::identity::tokens::{DEVICE_SECRET_PREFIX, bearer, hash_token, random_token};
use crate::input;
use crate::state::Target;

/// How long a pairing code is valid.
pub const PAIRING_MINUTES: i64 = 15;
/// Largest play report body.
pub const MAX_PLAYS_BODY_BYTES: usize = 256 * 1024;
/// Characters of pairing codes: no 0/O, 1/I.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A fresh pairing code, `ABCD-EFGH` (40 bits).
fn pairing_code() -> String {
    let mut rng = rand::thread_rng();
    let mut code: String = (0..8)
        .map(|_| CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())] as char)
        .collect();
    code.insert(4, '-');
    code
}

/// A code as typed: case, spaces and dashes do not matter.
pub fn normalize_code(raw: &str) -> String {
    let mut code: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if code.len() == 8 {
        code.insert(4, '-');
    }
    code
}

/// Who is calling the display API.
enum Device {
    /// Registered, not paired yet.
    Pending {
        code: Option<String>,
        expires_at: DateTime<Utc>,
    },
    Paired(Principal),
}

async fn device(http: &Http, headers: &HeaderMap) -> Result<Device, Response> {
    let unauthenticated = || {
        rest_error(&ApiError::Unauthenticated(
            "send Authorization: Bearer <deviceSecret>; register first if you have none",
        ))
    };
    let Some(secret) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .filter(|s| s.starts_with(DEVICE_SECRET_PREFIX) && s.len() <= 100)
    else {
        return Err(unauthenticated());
    };
    let row = http
        .state
        .signage
        .device_by_secret(&hash_token(secret))
        .await
        .map_err(|e| rest_error(&e.into()))?;
    let Some(row) = row else {
        return Err(unauthenticated());
    };
    let expires_at = projections::from_micros(row.code_expires_at);
    match row
        .tenant_id
        .as_deref()
        .and_then(|t| Uuid::parse_str(t).ok())
    {
        Some(tenant) => {
            let id =
                Uuid::parse_str(&row.device_id).map_err(|e| rest_error(&ApiError::internal(e)))?;
            Ok(Device::Paired(Principal {
                tenant_id: tenant,
                subject: Subject::Display,
                actor: Actor::Display(id),
                user_id: None,
                session_id: None,
                mfa_pending: false,
            }))
        }
        None if expires_at <= Utc::now() => Err(rest_error(&ApiError::Unauthenticated(
            "the pairing code expired: register again",
        ))),
        None => Ok(Device::Pending {
            code: row.pairing_code,
            expires_at,
        }),
    }
}

/// The paired display, allowed `action`.
async fn display(
    http: &Http,
    headers: &HeaderMap,
    action: Action,
) -> Result<(Principal, Uuid), Response> {
    match device(http, headers).await? {
        Device::Paired(p) => {
            p.permit(action).map_err(|e| rest_error(&e))?;
            let Actor::Display(id) = p.actor else {
                unreachable!("display principals act as displays")
            };
            Ok((p, id))
        }
        Device::Pending { .. } => Err(rest_error(&ApiError::Conflict(
            "NOT_PAIRED: show the pairing code and wait until it is paired".into(),
        ))),
    }
}

/// `POST /display/v1/register`.
pub async fn register(
    State(http): State<Http>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let client = ClientInfo::from_request(
        peer.map(|Extension(ConnectInfo(a))| a),
        &headers,
        http.trust_proxy,
    );
    let result: ApiResult<Response> = async {
        if let Some(ip) = client.ip {
            let policy = Policy {
                max_hits: http.display_registrations_per_minute,
                ..Policy::DISPLAY_REGISTER
            };
            let secret = http.state.keyring.mac("rate-limit", b"").await?;
            let key = ratelimit::key(&policy, &ratelimit::ip_subject(ip), &secret);
            http.state.limiter.hit(&policy, &key).await?;
        }
        let device = Uuid::now_v7();
        let secret = random_token(DEVICE_SECRET_PREFIX);
        let expires_at = Utc::now() + Duration::minutes(PAIRING_MINUTES);
        // A taken code (40 bits: rare) is drawn again.
        let mut attempts = 0;
        let code = loop {
            let code = pairing_code();
            match http
                .state
                .signage
                .register_device(device, &hash_token(&secret), &code, expires_at)
                .await
            {
                Ok(()) => break code,
                Err(_) if attempts < 3 => attempts += 1,
                Err(e) => return Err(e.into()),
            }
        };
        Ok((
            StatusCode::CREATED,
            Json(json!({
                "deviceId": device, "deviceSecret": secret,
                "pairingCode": code, "expiresAt": expires_at,
            })),
        )
            .into_response())
    }
    .await;
    result.unwrap_or_else(|e| rest_error(&e))
}

/// `GET /display/v1/status`.
pub async fn status(State(http): State<Http>, headers: HeaderMap) -> Response {
    match device(&http, &headers).await {
        Err(r) => r,
        Ok(Device::Pending { code, expires_at }) => Json(json!({
            "paired": false, "pairingCode": code, "expiresAt": expires_at,
        }))
        .into_response(),
        Ok(Device::Paired(p)) => {
            let Actor::Display(id) = p.actor else {
                unreachable!("display principals act as displays")
            };
            match http.state.signage.display(p.tenant_id, id).await {
                Ok(Some(row)) => Json(json!({
                    "paired": true, "displayId": id,
                    "name": row.profile().map(|p| p.name).unwrap_or_default(),
                }))
                .into_response(),
                Ok(None) => rest_error(&ApiError::Unauthenticated("the display was unpaired")),
                Err(e) => rest_error(&e.into()),
            }
        }
    }
}

/// The ETag of a manifest body (generation time excluded).
fn etag(body: &serde_json::Value) -> String {
    let digest = Sha256::digest(body.to_string().as_bytes());
    format!("\"{}\"", hex::encode(&digest[..12]))
}

/// `GET /display/v1/manifest`.
pub async fn manifest(State(http): State<Http>, headers: HeaderMap) -> Response {
    let (p, id) = match display(&http, &headers, Action::DisplayManifest).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let now = Utc::now();
    let (profile, manifest) = match http.state.signage.manifest(p.tenant_id, id, now).await {
        Ok(Some(found)) => found,
        Ok(None) => return rest_error(&ApiError::Unauthenticated("the display was unpaired")),
        Err(e) => return rest_error(&e.into()),
    };
    let mut body = manifest_json(id, &profile.name, &manifest);
    let tag = etag(&body);
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        body["generatedAt"] = json!(now);
        Json(body).into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&tag).expect("hex is a valid header"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /display/v1/media/{id}`: an image of the display's tenant.
pub async fn media(
    State(http): State<Http>,
    headers: HeaderMap,
    Path(asset): Path<String>,
) -> Response {
    let (p, _) = match display(&http, &headers, Action::DisplayManifest).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let result: ApiResult<Response> = async {
        let asset = Uuid::parse_str(&asset).map_err(|_| ApiError::NotFound("media asset"))?;
        let row = http
            .state
            .media_reads
            .get(p.tenant_id, asset)
            .await?
            .ok_or(ApiError::NotFound("media asset"))?;
        let key = http.state.load(&http.state.media, asset).await?.key;
        let bytes = http
            .state
            .media_store
            .get(&key)
            .await
            .map_err(ApiError::internal)?;
        let mut response = Response::new(Body::from(bytes));
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&row.mime).map_err(ApiError::internal)?,
        );
        // Assets never change: an id names one upload.
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=31536000, immutable"),
        );
        Ok(response)
    }
    .await;
    result.unwrap_or_else(|e| rest_error(&e))
}

/// `GET /display/v1/events`.
pub async fn events(State(http): State<Http>, headers: HeaderMap) -> Response {
    let (p, id) = match display(&http, &headers, Action::DisplayManifest).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let groups = match http.state.signage.display(p.tenant_id, id).await {
        Ok(Some(row)) => {
            let state = match http.state.signage.state(p.tenant_id).await {
                Ok(s) => s,
                Err(e) => return rest_error(&e.into()),
            };
            let ctx = row.profile().map(|prof| state.context(id, &prof));
            ctx.map(|c| (c.group_id, c.parent_group_id))
                .unwrap_or_default()
        }
        Ok(None) => return rest_error(&ApiError::Unauthenticated("the display was unpaired")),
        Err(e) => return rest_error(&e.into()),
    };
    crate::signage::sse::sse_response(http.state.hub.subscribe(p.tenant_id, id, groups))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlaysBody {
    report_id: Uuid,
    plays: Vec<PlayBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlayBody {
    notice_id: Uuid,
    played_at: DateTime<Utc>,
    duration_seconds: u32,
}

/// `POST /display/v1/plays`.
pub async fn plays(
    State(http): State<Http>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (p, id) = match display(&http, &headers, Action::DisplayReport).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let result: ApiResult<Response> = async {
        let body: PlaysBody = match input::json_body(&body, "a play report") {
            // More than MAX_PLAYS_PER_REPORT plays: a report too large to
            // take, whatever its bytes.
            Err(e @ ApiError::Validation { .. }) if e.field() == Some("plays") => {
                let mut response = rest_error(&e);
                *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
                return Ok(response);
            }
            body => body?,
        };
        let state = http.state.signage.state(p.tenant_id).await?;
        let unknown: Vec<Uuid> = body
            .plays
            .iter()
            .map(|play| play.notice_id)
            .filter(|n| !state.notices.contains_key(n))
            .collect();
        let plays = body
            .plays
            .into_iter()
            .map(|play| Play {
                notice_id: play.notice_id,
                played_at: play.played_at,
                duration_seconds: play.duration_seconds,
            })
            .collect::<Vec<_>>();
        let accepted = plays.len();
        let command = PlayReportCommand::Report {
            display_id: id,
            plays,
            unknown,
            now: Utc::now(),
        };
        let report = Target::New(play_report_id(id, body.report_id));
        let state = &http.state;
        match state
            .execute(
                &state.play_reports,
                &p,
                correlation(&headers),
                report,
                command,
            )
            .await
        {
            Ok(_) => Ok(Json(json!({"accepted": accepted, "duplicate": false})).into_response()),
            Err(e) => match e {
                ApiError::Conflict(_) => {
                    Ok(Json(json!({"accepted": 0, "duplicate": true})).into_response())
                }
                e => Err(e),
            },
        }
    }
    .await;
    result.unwrap_or_else(|e| rest_error(&e))
}

/// The display routes, with the play report's body limit.
pub fn routes() -> axum::Router<Http> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/display/v1/register", post(register))
        .route("/display/v1/status", get(status))
        .route("/display/v1/manifest", get(manifest))
        .route("/display/v1/media/{id}", get(media))
        .route("/display/v1/events", get(events))
        .route(
            "/display/v1/plays",
            post(plays).layer(tower_http::limit::RequestBodyLimitLayer::new(
                MAX_PLAYS_BODY_BYTES,
            )),
        )
}
