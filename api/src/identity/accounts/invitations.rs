//! Invitations: inviting an address into a tenant and accepting by the
//! mailed link, which registers the invitee or checks their password.

use chrono::{Duration, Utc};
use domain::access::Role;
use domain::metadata::Actor;
use domain::sealed::Sealed;
use domain::tenant::TenantCommand;
use domain::user::{Email, UserCommand};
use projections::crypto::INVITATION_TOKEN as INVITATION;
use projections::{Opened, Scope};
use secrecy::SecretString;
use uuid::Uuid;

use super::credentials::{BAD_LOGIN, open_hash, seal_password, user_id_for};
use super::metadata::system_meta;
use super::signin::SignedIn;
use crate::error::{ApiError, ApiResult};
use crate::http::client::ClientInfo;
use crate::identity::auth::{self, Principal};
use crate::state::{AppState, Target};

/// How long an invitation is valid.
pub const INVITATION_TTL: Duration = Duration::days(7);

/// Invites `email` into the caller's tenant with `role`.
pub async fn invite(
    state: &AppState,
    principal: &Principal,
    email: &str,
    role: Role,
    correlation: Uuid,
) -> ApiResult<Uuid> {
    let by = principal
        .role()
        .ok_or_else(|| ApiError::Forbidden("ManageMembers".into()))?;
    let email = Email::parse(email)?;
    let invitee = user_id_for(&state.keyring, &email).await?;
    if state
        .identity
        .member(principal.tenant_id, invitee)
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict("this person is already a member".into()));
    }
    let sealed = state
        .keyring
        .seal(&Scope::User(invitee), email.as_str())
        .await?;
    let invitation_id = crate::ids::new_id();
    let meta = state.metadata(principal, correlation);
    state
        .execute_as(
            &state.tenants,
            Target::Existing(principal.tenant_id),
            TenantCommand::InviteMember {
                invitation_id,
                email: sealed,
                role,
                by,
                expires_at: Utc::now() + INVITATION_TTL,
            },
            &meta,
        )
        .await?;
    Ok(invitation_id)
}

/// Accepts an invitation: creates the account (the invitation proves the
/// address) or, for an existing account, checks its password; then joins.
pub async fn accept_invitation(
    state: &AppState,
    token: &str,
    password: SecretString,
    client: &ClientInfo,
    correlation: Uuid,
) -> ApiResult<SignedIn> {
    let (purpose, prefix) = INVITATION;
    let bad = || ApiError::invalid("token", "the invitation has expired or was already used");
    let (tenant_id, invitation_id) = state
        .keyring
        .read_token(purpose, prefix, token)
        .await?
        .ok_or_else(bad)?;
    let tenant = state.load(&state.tenants, tenant_id).await?;
    let invitation = tenant.invitations.get(&invitation_id).ok_or_else(bad)?;
    if invitation.status != domain::tenant::InvitationStatus::Pending
        || invitation.expires_at <= Utc::now()
    {
        return Err(bad());
    }
    let row = state
        .identity
        .invitation(tenant_id, invitation_id)
        .await?
        .ok_or_else(bad)?;
    let Opened::Plain(address) = state.keyring.open(&Sealed::from_stored(row.email)).await? else {
        return Err(bad());
    };
    let email = Email::parse(&address)?;
    let user_id = user_id_for(&state.keyring, &email).await?;
    let user = state.load(&state.users, user_id).await?;
    let meta = system_meta(tenant_id, Actor::User(user_id), correlation);
    if user.is_active() {
        let hash = open_hash(state, &user).await?;
        if !auth::verify_password(password, hash).await {
            return Err(BAD_LOGIN);
        }
    } else {
        let password_hash = seal_password(state, user_id, password).await?;
        let sealed_email = state
            .keyring
            .seal(&Scope::User(user_id), email.as_str())
            .await?;
        state
            .execute_as(
                &state.users,
                Target::Existing(user_id),
                UserCommand::Register {
                    email: sealed_email,
                    password_hash,
                    email_verified: true,
                    replaces_unfinished: false,
                },
                &meta,
            )
            .await?;
    }
    state
        .execute_as(
            &state.tenants,
            Target::Existing(tenant_id),
            TenantCommand::AcceptInvitation {
                invitation_id,
                user_id,
                now: Utc::now(),
            },
            &meta,
        )
        .await?;
    let role = invitation.role;
    let mfa_pending = tenant.require_two_factor && user.totp_secret.is_none();
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
