//! Sign-up: a new organisation, its owner, and the owner's first session.

use chrono::Utc;
use cqrs_es::Aggregate;
use domain::access::Role;
use domain::metadata::Actor;
use domain::tenant::{Tenant, TenantCommand, parse_name};
use domain::user::{Email, User, UserCommand};
use projections::identity::Identity;
use projections::store::MAX_CONFLICT_RETRIES;
use projections::{Loaded, Scope};
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
use crate::state::{AppState, SETTLE_TIMEOUT};

/// Creates an organisation and its owner, asks the owner to verify their
/// address, and signs them in. Counted per client IP under
/// [`Policy::SIGN_UP_PER_IP`] once the input is well formed (a typo costs
/// nothing), before the address is looked up (so probing which addresses
/// have accounts is limited too).
///
/// The owner's registration, the organisation and the verification request
/// are one atomic append: a failure leaves nothing behind, so the address
/// stays free for a retry. A sign-up that was left half-finished before
/// this was so (registered, never verified, in no organisation) is
/// replaced by the next sign-up with its address.
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
    let user = state.users.load_versioned(&user_id.to_string()).await?;
    if user.state.is_active() && !unfinished(state, &user, user_id).await? {
        return Err(taken());
    }
    let password_hash = seal_password(state, user_id, password).await?;
    let sealed_email = state
        .keyring
        .seal(&Scope::User(user_id), email.as_str())
        .await?;
    let tenant_id = Uuid::now_v7();
    let meta = system_meta(tenant_id, Actor::User(user_id), correlation);
    let mut committed = false;
    for attempt in 0..=MAX_CONFLICT_RETRIES {
        let mut user = state.users.load_versioned(&user_id.to_string()).await?;
        let replaces_unfinished =
            user.state.is_active() && unfinished(state, &user, user_id).await?;
        if attempt > 0 && user.state.is_active() && !replaces_unfinished {
            return Err(taken());
        }
        let mut tenant = Loaded {
            id: tenant_id.to_string(),
            state: Tenant::default(),
            sequence: 0,
        };
        let staged = [
            state
                .users
                .stage(
                    &mut user,
                    UserCommand::Register {
                        email: sealed_email.clone(),
                        password_hash: password_hash.clone(),
                        email_verified: false,
                        replaces_unfinished,
                    },
                    &meta,
                )
                .await?,
            state
                .tenants
                .stage(
                    &mut tenant,
                    TenantCommand::Create {
                        name: name.clone(),
                        owner_user_id: user_id,
                    },
                    &meta,
                )
                .await?,
            state
                .users
                .stage(
                    &mut user,
                    UserCommand::RequestEmailVerification {
                        verification_id: Uuid::now_v7(),
                        expires_at: Utc::now() + VERIFY_TTL,
                    },
                    &meta,
                )
                .await?,
        ];
        if state
            .commit_all(&staged, &[Identity::NAME])
            .await?
            .is_some()
        {
            committed = true;
            break;
        }
    }
    if !committed {
        return Err(ApiError::Conflict(
            "the sign-up was changed concurrently; try again".into(),
        ));
    }
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

fn taken() -> ApiError {
    ApiError::Conflict("an account with this e-mail address already exists".into())
}

/// Whether the registered `user` is a sign-up that never finished: never
/// verified and in no organisation (every finished sign-up owns one). The
/// read models are first brought up to the user's last event, so a sign-up
/// that finished a moment ago is never mistaken for an unfinished one.
async fn unfinished(state: &AppState, user: &Loaded<User>, user_id: Uuid) -> ApiResult<bool> {
    if user.state.email_verified || user.sequence == 0 {
        return Ok(false);
    }
    let Some(position) = state
        .log
        .position_of(User::TYPE, &user.id, user.sequence as i64)
        .await?
    else {
        return Ok(false);
    };
    if !state
        .projectors
        .wait_for(position, &[Identity::NAME], SETTLE_TIMEOUT)
        .await?
    {
        return Ok(false);
    }
    Ok(state.identity.memberships(user_id).await?.is_empty())
}
