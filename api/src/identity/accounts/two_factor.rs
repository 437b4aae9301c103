//! Second factors: checking a TOTP or backup code (rate limited, each code
//! usable once) and enrolling an authenticator app.

use chrono::Utc;
use domain::metadata::EventMetadata;
use domain::user::{SecondFactor, User, UserCommand};
use projections::{Opened, Scope};
use uuid::Uuid;

use super::guard::Guard;
use crate::error::{ApiError, ApiResult};
use crate::http::client::ClientInfo;
use crate::identity::auth::Principal;
use crate::identity::ratelimit::Policy;
use crate::identity::totp;
use crate::state::{AppState, Target};

/// Checks a second factor (a TOTP code or a backup code) and records its
/// use, so the same code never works twice.
pub async fn use_second_factor(
    state: &AppState,
    user_id: Uuid,
    user: &User,
    code: &str,
    meta: &EventMetadata,
    disable: bool,
) -> ApiResult<()> {
    let guard = Guard::new(state, &ClientInfo::default()).await?;
    let key = guard.account_key(&Policy::TOTP_PER_ACCOUNT, &user_id.to_string());
    let keys = [(&Policy::TOTP_PER_ACCOUNT, Some(key.clone()))];
    guard.hit(&keys).await?;
    let result = check_second_factor(state, user_id, user, code, meta, disable).await;
    match &result {
        Ok(()) => guard.succeeded(&Policy::TOTP_PER_ACCOUNT, &key).await?,
        Err(ApiError::Validation { .. }) => guard.failed(&keys).await?,
        Err(_) => {}
    }
    result
}

async fn check_second_factor(
    state: &AppState,
    user_id: Uuid,
    user: &User,
    code: &str,
    meta: &EventMetadata,
    disable: bool,
) -> ApiResult<()> {
    let invalid = || ApiError::invalid("totp", "not a valid code or already used");
    let factor = if totp::is_backup_code(code) {
        SecondFactor::BackupCode {
            code_hash: totp::hash_backup_code(code),
        }
    } else {
        let sealed = user.totp_secret.as_ref().ok_or_else(invalid)?;
        let Opened::Plain(secret) = state.keyring.open(sealed).await? else {
            return Err(invalid());
        };
        let secret = hex::decode(secret).map_err(ApiError::internal)?;
        let now = Utc::now().timestamp().max(0) as u64;
        let step = totp::matching_step(&secret, code, now).ok_or_else(invalid)?;
        SecondFactor::Totp { step }
    };
    let command = if disable {
        UserCommand::DisableTotp(factor)
    } else {
        UserCommand::UseSecondFactor(factor)
    };
    state
        .execute_as(&state.users, Target::Existing(user_id), command, meta)
        .await?;
    Ok(())
}

/// What `beginTotpEnrollment` returns.
pub struct Enrollment {
    /// The secret, for typing into an authenticator app.
    pub secret_base32: String,
    /// The `otpauth://` URI the QR code encodes.
    pub otpauth_uri: String,
    /// The QR code of `otpauth_uri`, as an SVG data URL.
    pub qr_code: String,
}

/// Starts TOTP enrollment with a fresh secret (sealed in the event).
pub async fn begin_totp(
    state: &AppState,
    principal: &Principal,
    user_id: Uuid,
    correlation: Uuid,
) -> ApiResult<Enrollment> {
    let user = state.load(&state.users, user_id).await?;
    let email = match &user.email {
        Some(sealed) => state.keyring.reveal(sealed).await?,
        None => return Err(ApiError::NotFound("user")),
    };
    let secret = totp::new_secret();
    let sealed = state
        .keyring
        .seal(&Scope::User(user_id), &hex::encode(&secret))
        .await?;
    state
        .execute_as(
            &state.users,
            Target::Existing(user_id),
            UserCommand::BeginTotpEnrollment { secret: sealed },
            &state.metadata(principal, correlation),
        )
        .await?;
    let (otpauth_uri, qr_code) = totp::provisioning(&secret, &email)
        .ok_or_else(|| ApiError::internal(std::io::Error::other("TOTP provisioning failed")))?;
    Ok(Enrollment {
        secret_base32: totp::encode_secret(&secret),
        otpauth_uri,
        qr_code,
    })
}

/// Turns TOTP on with a code from the app; returns the backup codes (once).
pub async fn confirm_totp(
    state: &AppState,
    principal: &Principal,
    user_id: Uuid,
    code: &str,
    correlation: Uuid,
) -> ApiResult<Vec<String>> {
    let user = state.load(&state.users, user_id).await?;
    let invalid = || ApiError::invalid("code", "not the current code of the authenticator app");
    let sealed = user.totp_pending.as_ref().ok_or_else(|| {
        ApiError::Conflict("start the enrollment with beginTotpEnrollment first".into())
    })?;
    let Opened::Plain(secret) = state.keyring.open(sealed).await? else {
        return Err(invalid());
    };
    let secret = hex::decode(secret).map_err(ApiError::internal)?;
    let now = Utc::now().timestamp().max(0) as u64;
    let step = totp::matching_step(&secret, code, now).ok_or_else(invalid)?;
    let codes = totp::new_backup_codes();
    state
        .execute_as(
            &state.users,
            Target::Existing(user_id),
            UserCommand::ConfirmTotp {
                step,
                backup_code_hashes: codes.iter().map(|c| totp::hash_backup_code(c)).collect(),
            },
            &state.metadata(principal, correlation),
        )
        .await?;
    Ok(codes)
}
