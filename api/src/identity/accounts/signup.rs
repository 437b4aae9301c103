//! Sign-up: a new organisation, its owner, and the owner's first session.

use chrono::Utc;
use domain::access::Role;
use domain::metadata::Actor;
use domain::tenant::{TenantCommand, parse_name};
use domain::user::{Email, UserCommand};
use projections::Scope;
use secrecy::SecretString;
use uuid::Uuid;

use super::credentials::{seal_password, user_id_for};
use super::guard::Guard;
use super::metadata::system_meta;
use super::signin::SignedIn;
use super::verification::VERIFY_TTL;
use crate::error::{ApiError, ApiResult};
use crate::http::client::ClientInfo;
use crate::identity::auth;
use crate::identity::ratelimit::Policy;
use crate::state::{AppState, Target};

/// Creates an organisation and its owner, asks the owner to verify their
/// address, and signs them in. Counted per client IP under
/// [`Policy::SIGN_UP_PER_IP`] once the input is well formed (a typo costs
/// nothing), before the address is looked up (so probing which addresses
/// have accounts is limited too).
pub async fn sign_up(
    state: &AppState,
    organization: &str,
    email: &str,
    password: SecretString,
    client: &ClientInfo,
    correlation: Uuid,
) -> ApiResult<SignedIn> {
    let name = parse_name(organization, "organization")?;
    let email = Email::parse(email)?;
    auth::check_password_rules(&password)?;
    let guard = Guard::new(state, client).await?;
    let policy = Policy {
        max_hits: state.sign_ups_per_hour,
        ..Policy::SIGN_UP_PER_IP
    };
    guard.hit(&[(&policy, guard.ip_key(&policy))]).await?;
    let user_id = user_id_for(&state.keyring, &email).await?;
    if state.load(&state.users, user_id).await?.is_active() {
        return Err(ApiError::Conflict(
            "an account with this e-mail address already exists".into(),
        ));
    }
    let password_hash = seal_password(state, user_id, password).await?;
    let sealed_email = state
        .keyring
        .seal(&Scope::User(user_id), email.as_str())
        .await?;
    let tenant_id = Uuid::now_v7();
    let meta = system_meta(tenant_id, Actor::User(user_id), correlation);
    state
        .execute_as(
            &state.users,
            Target::Existing(user_id),
            UserCommand::Register {
                email: sealed_email,
                password_hash,
                email_verified: false,
            },
            &meta,
        )
        .await?;
    state
        .execute_as(
            &state.tenants,
            Target::New(tenant_id),
            TenantCommand::Create {
                name,
                owner_user_id: user_id,
            },
            &meta,
        )
        .await?;
    state
        .execute_as(
            &state.users,
            Target::Existing(user_id),
            UserCommand::RequestEmailVerification {
                verification_id: Uuid::now_v7(),
                expires_at: Utc::now() + VERIFY_TTL,
            },
            &meta,
        )
        .await?;
    let tokens = state
        .sessions
        .create(user_id, tenant_id, Role::Owner, client)
        .await?;
    Ok(SignedIn {
        user_id,
        tenant_id,
        role: Role::Owner,
        tokens,
        mfa_pending: false,
    })
}
