//! E-mail verification: confirming an address from the mailed link.

use chrono::{Duration, Utc};
use domain::user::UserCommand;
use projections::crypto::VERIFY_TOKEN as VERIFY;
use uuid::Uuid;

use super::metadata::own_meta;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Target};

/// How long an e-mail verification link is valid.
pub const VERIFY_TTL: Duration = Duration::days(2);

/// Confirms an address from a verification link.
pub async fn verify_email(state: &AppState, token: &str, correlation: Uuid) -> ApiResult<()> {
    let (purpose, prefix) = VERIFY;
    let bad = || ApiError::invalid("token", "the link has expired or was already used");
    let (user_id, verification_id) = state
        .keyring
        .read_token(purpose, prefix, token)
        .await?
        .ok_or_else(bad)?;
    let meta = own_meta(state, user_id, correlation).await?;
    state
        .execute_as(
            &state.users,
            Target::Existing(user_id),
            UserCommand::VerifyEmail {
                verification_id,
                now: Utc::now(),
            },
            &meta,
        )
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => bad(),
            other => other,
        })?;
    Ok(())
}
