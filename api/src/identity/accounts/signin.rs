//! Sessions: signing in with a password (and a second factor when
//! enabled), refreshing a session and switching to another tenant.

use domain::access::Role;
use domain::metadata::Actor;
use domain::user::{Email, User};
use secrecy::SecretString;
use uuid::Uuid;

use super::credentials::{BAD_LOGIN, open_hash, user_id_for};
use super::guard::Guard;
use super::metadata::system_meta;
use super::two_factor::use_second_factor;
use crate::error::{ApiError, ApiResult};
use crate::http::client::ClientInfo;
use crate::identity::auth::{self, Principal, RefreshRefused, Tokens};
use crate::identity::ratelimit::Policy;
use crate::state::AppState;

/// A signed-in session's identity.
pub struct SignedIn {
    /// Who signed in.
    pub user_id: Uuid,
    /// The tenant the session acts in.
    pub tenant_id: Uuid,
    /// The user's role in that tenant.
    pub role: Role,
    /// The session's access and refresh tokens.
    pub tokens: Tokens,
    /// The tenant requires 2FA and the user has not enrolled yet.
    pub mfa_pending: bool,
}

/// Whether `tenant_id` requires 2FA and `user` has not enrolled (what the
/// session may do is decided per request; this tells the client).
async fn enrollment_required(state: &AppState, tenant_id: Uuid, user: &User) -> ApiResult<bool> {
    let required = state
        .identity
        .tenant(tenant_id)
        .await?
        .is_some_and(|t| t.require_2fa != 0);
    Ok(required && user.totp_secret.is_none())
}

/// Signs in with address and password (and a second factor when enabled).
/// Unknown addresses and wrong passwords get the same answer in the same time.
pub async fn log_in(
    state: &AppState,
    email: &str,
    password: SecretString,
    tenant_id: Option<Uuid>,
    second_factor: Option<&str>,
    client: &ClientInfo,
    correlation: Uuid,
) -> ApiResult<SignedIn> {
    let guard = Guard::new(state, client).await?;
    let account_key = guard.account_key(&Policy::LOGIN_PER_ACCOUNT, email.trim());
    let keys = [
        (&Policy::LOGIN_PER_IP, guard.ip_key(&Policy::LOGIN_PER_IP)),
        (&Policy::LOGIN_PER_ACCOUNT, Some(account_key.clone())),
    ];
    guard.hit(&keys).await?;
    let found = match Email::parse(email) {
        Ok(email) => {
            let id = user_id_for(&state.keyring, &email).await?;
            Some((id, state.load(&state.users, id).await?))
        }
        Err(_) => None,
    };
    let hash = match &found {
        Some((_, user)) => open_hash(state, user).await?,
        None => None,
    };
    if !auth::verify_password(password, hash).await {
        guard.failed(&keys).await?;
        return Err(BAD_LOGIN);
    }
    let (user_id, user) = found.ok_or(BAD_LOGIN)?;
    guard
        .succeeded(&Policy::LOGIN_PER_ACCOUNT, &account_key)
        .await?;
    let memberships = state.identity.memberships(user_id).await?;
    let (tenant_id, role) = memberships
        .into_iter()
        .find(|(t, _)| tenant_id.is_none_or(|want| want == *t))
        .ok_or(BAD_LOGIN)?;
    let meta = system_meta(tenant_id, Actor::User(user_id), correlation);
    if user.totp_secret.is_some() {
        let code = second_factor.ok_or(ApiError::SecondFactorRequired)?;
        use_second_factor(state, user_id, &user, code, &meta, false).await?;
    }
    let mfa_pending = enrollment_required(state, tenant_id, &user).await?;
    let tokens = state
        .sessions
        .create(user_id, tenant_id, role, client)
        .await?;
    Ok(SignedIn {
        user_id,
        tenant_id,
        role,
        tokens,
        mfa_pending,
    })
}

/// Exchanges a refresh token; the role is read from the current membership.
pub async fn refresh(
    state: &AppState,
    refresh_token: &str,
    client: &ClientInfo,
) -> ApiResult<SignedIn> {
    let guard = Guard::new(state, client).await?;
    let keys = [(
        &Policy::REFRESH_PER_IP,
        guard.ip_key(&Policy::REFRESH_PER_IP),
    )];
    guard.hit(&keys).await?;
    let outcome = state.sessions.refresh(refresh_token).await?;
    if outcome.is_err() {
        guard.failed(&keys).await?;
    }
    let (user_id, tenant_id, tokens) = match outcome {
        Ok(ok) => ok,
        Err(RefreshRefused::Invalid) => {
            return Err(ApiError::Unauthenticated(
                "invalid or expired refresh token",
            ));
        }
        Err(RefreshRefused::Reused) => {
            return Err(ApiError::Unauthenticated(
                "this refresh token was already used; the session has been revoked, sign in again",
            ));
        }
    };
    let role = state
        .identity
        .member(tenant_id, user_id)
        .await?
        .and_then(|m| Role::parse(&m.role))
        .ok_or(ApiError::Unauthenticated("membership ended"))?;
    let user = state.load(&state.users, user_id).await?;
    Ok(SignedIn {
        user_id,
        tenant_id,
        role,
        tokens,
        mfa_pending: enrollment_required(state, tenant_id, &user).await?,
    })
}

/// A new session in another of the caller's tenants; the current one ends.
pub async fn switch_tenant(
    state: &AppState,
    principal: &Principal,
    user_id: Uuid,
    tenant_id: Uuid,
    client: &ClientInfo,
) -> ApiResult<SignedIn> {
    let role = state
        .identity
        .member(tenant_id, user_id)
        .await?
        .and_then(|m| Role::parse(&m.role))
        .ok_or(ApiError::NotFound("tenant"))?;
    let user = state.load(&state.users, user_id).await?;
    let mfa_pending = enrollment_required(state, tenant_id, &user).await?;
    let tokens = state
        .sessions
        .create(user_id, tenant_id, role, client)
        .await?;
    if let Some(old) = principal.session_id {
        state.sessions.revoke(old).await?;
    }
    Ok(SignedIn {
        user_id,
        tenant_id,
        role,
        tokens,
        mfa_pending,
    })
}
