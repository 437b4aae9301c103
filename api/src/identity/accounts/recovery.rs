//! Password reset: requesting a link (without revealing whether the account
//! exists) and setting a new password from it.

use chrono::{Duration, Utc};
use domain::user::{Email, UserCommand};
use projections::crypto::RESET_TOKEN as RESET;
use secrecy::SecretString;
use uuid::Uuid;

use super::credentials::{seal_password, user_id_for};
use super::guard::Guard;
use super::metadata::own_meta;
use crate::error::{ApiError, ApiResult};
use crate::http::client::ClientInfo;
use crate::identity::ratelimit::Policy;
use crate::state::{AppState, Target};

/// How long a password-reset link is valid.
pub const RESET_TTL: Duration = Duration::hours(1);

/// Starts a password reset. Always succeeds, so the answer does not tell
/// whether an account exists; the mail goes out only if it does.
pub async fn request_password_reset(
    state: std::sync::Arc<AppState>,
    email: &str,
    client: &ClientInfo,
    correlation: Uuid,
) -> ApiResult<()> {
    let Ok(email) = Email::parse(email) else {
        return Err(ApiError::invalid("email", "not a valid e-mail address"));
    };
    let guard = Guard::new(&state, client).await?;
    guard
        .hit(&[
            (
                &Policy::PASSWORD_RESET_PER_IP,
                guard.ip_key(&Policy::PASSWORD_RESET_PER_IP),
            ),
            (
                &Policy::PASSWORD_RESET_PER_ACCOUNT,
                Some(guard.account_key(&Policy::PASSWORD_RESET_PER_ACCOUNT, email.as_str())),
            ),
        ])
        .await?;
    // The rest runs after the answer, so an existing account does not
    // answer measurably slower than a missing one.
    tokio::spawn(async move {
        if let Err(error) = start_reset(&state, &email, correlation).await {
            tracing::error!(error = ?error, "password reset request failed");
        }
    });
    Ok(())
}

async fn start_reset(state: &AppState, email: &Email, correlation: Uuid) -> ApiResult<()> {
    let user_id = user_id_for(&state.keyring, email).await?;
    let user = state.load(&state.users, user_id).await?;
    if !user.is_active() {
        return Ok(());
    }
    let meta = own_meta(state, user_id, correlation).await?;
    state
        .execute_as(
            &state.users,
            Target::Existing(user_id),
            UserCommand::RequestPasswordReset {
                reset_id: Uuid::now_v7(),
                expires_at: Utc::now() + RESET_TTL,
            },
            &meta,
        )
        .await?;
    Ok(())
}

/// Sets a new password from a reset link; every session of the user ends.
pub async fn reset_password(
    state: &AppState,
    token: &str,
    password: SecretString,
    client: &ClientInfo,
    correlation: Uuid,
) -> ApiResult<()> {
    let (purpose, prefix) = RESET;
    let bad = || ApiError::invalid("token", "the link has expired or was already used");
    let guard = Guard::new(state, client).await?;
    let keys = [(
        &Policy::PASSWORD_RESET_PER_IP,
        guard.ip_key(&Policy::PASSWORD_RESET_PER_IP),
    )];
    guard.hit(&keys).await?;
    let Some((user_id, reset_id)) = state.keyring.read_token(purpose, prefix, token).await? else {
        guard.failed(&keys).await?;
        return Err(bad());
    };
    let password_hash = seal_password(state, user_id, password).await?;
    let meta = own_meta(state, user_id, correlation).await?;
    state
        .execute_as(
            &state.users,
            Target::Existing(user_id),
            UserCommand::ResetPassword {
                reset_id,
                password_hash,
                now: Utc::now(),
            },
            &meta,
        )
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => bad(),
            other => other,
        })?;
    state.sessions.revoke_all(user_id).await
}
