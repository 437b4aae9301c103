//! Social-account connections: connect a Bluesky account with its handle and
//! an app password (verified with a real session before anything is saved),
//! list them with their status, disconnect.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::access::Action;
use domain::connection::ConnectionCommand;
use domain::handle::Handle;
use projections::from_micros;
use projections::publishing::ConnectionRow;
use secrecy::SecretString;
use uuid::Uuid;
use workers::accounts::AccountError;
use workers::bluesky::ErrorKind;

use crate::error::{ApiError, ApiResult};
use crate::graphql::{execute, parse_id, principal, state};
use crate::state::Target;

/// Whether a connection can publish.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ConnectionStatus {
    /// The credentials work.
    Active,
    /// The credentials stopped working (see `reason`); its posts wait.
    Degraded,
    /// Disconnected; its posts fail.
    Revoked,
}

/// A social platform.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum Platform {
    Bluesky,
}

/// A connected account.
#[derive(SimpleObject)]
pub struct SocialConnection {
    pub id: ID,
    pub platform: Platform,
    pub handle: String,
    /// The account's DID.
    pub did: String,
    /// The account's PDS.
    pub service_url: String,
    pub status: ConnectionStatus,
    /// Why the connection is DEGRADED.
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ConnectionRow> for SocialConnection {
    fn from(row: ConnectionRow) -> Self {
        let status = match row.status.as_str() {
            "ACTIVE" => ConnectionStatus::Active,
            "DEGRADED" => ConnectionStatus::Degraded,
            _ => ConnectionStatus::Revoked,
        };
        Self {
            id: ID(row.id),
            platform: Platform::Bluesky,
            handle: row.handle,
            did: row.did,
            service_url: row.service_url,
            status,
            reason: row.reason,
            created_at: from_micros(row.created_at),
            updated_at: from_micros(row.updated_at),
        }
    }
}

/// One connection of `tenant`, or NOT_FOUND.
pub(crate) async fn connection_by_id(
    ctx: &Context<'_>,
    tenant: Uuid,
    id: Uuid,
) -> ApiResult<SocialConnection> {
    state(ctx)
        .connection_reads
        .get(tenant, id)
        .await?
        .map(Into::into)
        .ok_or(ApiError::NotFound("connection"))
}

#[derive(Default)]
pub struct ConnectionQuery;

#[Object]
impl ConnectionQuery {
    /// The organisation's connected accounts.
    async fn connections(&self, ctx: &Context<'_>) -> ApiResult<Vec<SocialConnection>> {
        let p = principal(ctx, Action::Read)?;
        Ok(state(ctx)
            .connection_reads
            .list(p.tenant_id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

/// Input of `connectBluesky`.
#[derive(InputObject)]
pub struct ConnectBlueskyInput {
    /// The account's handle, e.g. `herald.bsky.social`.
    pub handle: String,
    /// An app password (Settings → App passwords), never the account password.
    #[graphql(secret)]
    pub app_password: String,
    /// The account's PDS, e.g. `https://bsky.social`; found from the handle
    /// when omitted.
    pub service_url: Option<String>,
}

fn valid_service_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// Turns a refusal by the platform into the caller's error, naming the field.
pub(crate) fn account_error(error: AccountError) -> ApiError {
    match error {
        AccountError::Store(e) => e.into(),
        AccountError::Bluesky(e) => match e.kind {
            ErrorKind::Auth => ApiError::Validation {
                field: "appPassword".into(),
                message: "Bluesky refused this handle and app password".into(),
            },
            ErrorKind::Invalid => ApiError::Validation {
                field: "handle".into(),
                message: format!("cannot use this account: {}", e.message),
            },
            ErrorKind::Transient | ErrorKind::RateLimited => ApiError::platform_unavailable(
                format!("Bluesky could not be reached: {}; try again", e.message),
            ),
        },
    }
}

#[derive(Default)]
pub struct ConnectionMutation;

#[Object]
impl ConnectionMutation {
    /// Connects a Bluesky account: resolves the handle, logs in with the app
    /// password to prove it works, and stores it encrypted with the
    /// organisation's key. Connecting the same account again replaces its
    /// credentials (and makes a DEGRADED connection ACTIVE again).
    async fn connect_bluesky(
        &self,
        ctx: &Context<'_>,
        input: ConnectBlueskyInput,
    ) -> ApiResult<SocialConnection> {
        let p = principal(ctx, Action::ManagePosts)?;
        let state = state(ctx);
        let handle = Handle::parse(input.handle.trim().trim_start_matches('@'), "handle")?;
        if input.app_password.trim().is_empty() {
            return Err(ApiError::Validation {
                field: "appPassword".into(),
                message: "an app password is required".into(),
            });
        }
        let service_url = input.service_url.as_deref().map(str::trim);
        if let Some(url) = service_url
            && !valid_service_url(url)
        {
            return Err(ApiError::Validation {
                field: "serviceUrl".into(),
                message: "an http(s) URL such as https://bsky.social".into(),
            });
        }
        let password = SecretString::from(input.app_password);
        let verified = state
            .accounts
            .verify(p.tenant_id, &handle, &password, service_url)
            .await
            .map_err(account_error)?;
        let command = ConnectionCommand::ConnectBluesky {
            handle: verified.handle,
            did: verified.did,
            service_url: verified.service_url,
            credentials: verified.credentials,
        };
        let target = Target::Existing(verified.connection_id);
        execute(ctx, p, |st| &st.connections, target, command).await?;
        connection_by_id(ctx, p.tenant_id, verified.connection_id).await
    }

    /// Disconnects an account: its credentials are dropped and posts that
    /// target it fail instead of publishing.
    async fn disconnect_connection(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<SocialConnection> {
        let p = principal(ctx, Action::ManagePosts)?;
        let state = state(ctx);
        let id = parse_id(&id, "id")?;
        connection_by_id(ctx, p.tenant_id, id).await?;
        let command = ConnectionCommand::Revoke;
        execute(ctx, p, |st| &st.connections, Target::Existing(id), command).await?;
        state.accounts.forget(id).await;
        connection_by_id(ctx, p.tenant_id, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_urls_are_http_urls_with_a_host() {
        assert!(valid_service_url("http://localhost:2583"));
        assert!(!valid_service_url("ftp://x"));
        assert!(!valid_service_url("localhost"));
    }
}
