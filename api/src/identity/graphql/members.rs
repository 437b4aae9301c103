//! Members, invitations, API keys and tenant security settings.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::access::Action;
use domain::sealed::Sealed;
use domain::tenant::TenantCommand;
use projections::from_micros;
use projections::identity::{InvitationRow, MemberRow};
use secrecy::SecretString;
use uuid::Uuid;

use super::account::AuthPayload;
use crate::error::{ApiError, ApiResult};
use crate::graphql::{client, correlation, parse_id, principal, state};
use crate::identity::accounts;
use crate::identity::tokens::{API_KEY_PREFIX, hash_token, random_token};
use crate::state::{AppState, Target};

/// A member's role.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::access::Role")]
pub enum MemberRole {
    Owner,
    Admin,
    Editor,
    Viewer,
}

/// A member of the organisation.
#[derive(SimpleObject)]
pub struct Member {
    pub user_id: ID,
    /// `[erased]` for erased users.
    pub email: String,
    pub role: String,
    pub joined_at: DateTime<Utc>,
    pub totp_enabled: bool,
}

/// An invitation.
#[derive(SimpleObject)]
pub struct Invitation {
    pub id: ID,
    pub email: String,
    pub role: String,
    /// PENDING, ACCEPTED or REVOKED (expired ones stay PENDING past `expiresAt`).
    pub status: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// An API key (the key itself is shown only by `createApiKey`).
#[derive(SimpleObject)]
pub struct ApiKey {
    pub id: ID,
    pub name: String,
    pub role: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// What `createApiKey` returns.
#[derive(SimpleObject)]
pub struct CreatedApiKey {
    /// Send as `Authorization: Bearer <key>`. Shown once; only its hash is kept.
    pub key: String,
    pub api_key: ApiKey,
}

/// Input of `inviteMember`.
#[derive(InputObject)]
pub struct InviteMemberInput {
    pub email: String,
    pub role: MemberRole,
}

/// Input of `acceptInvitation`.
#[derive(InputObject)]
pub struct AcceptInvitationInput {
    #[graphql(secret)]
    pub token: String,
    /// A new password, or the existing account's password.
    #[graphql(secret)]
    pub password: String,
}

/// Input of `changeMemberRole`.
#[derive(InputObject)]
pub struct ChangeMemberRoleInput {
    pub user_id: ID,
    pub role: MemberRole,
}

/// Input of `createApiKey`.
#[derive(InputObject)]
pub struct CreateApiKeyInput {
    pub name: String,
    pub role: MemberRole,
    pub expires_at: Option<DateTime<Utc>>,
}

fn api_key(row: projections::identity::ApiKeyRow) -> ApiKey {
    ApiKey {
        id: ID(row.id),
        name: row.name,
        role: row.role.to_uppercase(),
        expires_at: row.expires_at.map(from_micros),
        revoked_at: row.revoked_at.map(from_micros),
        created_at: from_micros(row.created_at),
    }
}

/// An invitation row as the API shows it (the address opened for display).
async fn invitation_node(state: &AppState, row: InvitationRow) -> ApiResult<Invitation> {
    Ok(Invitation {
        id: ID(row.id),
        email: state
            .keyring
            .reveal(&Sealed::from_stored(row.email))
            .await?,
        role: row.role.to_uppercase(),
        status: row.status,
        expires_at: from_micros(row.expires_at),
        created_at: from_micros(row.created_at),
    })
}

/// One invitation of the tenant.
async fn invitation(state: &AppState, tenant: Uuid, id: Uuid) -> ApiResult<Invitation> {
    let row = state
        .identity
        .invitation(tenant, id)
        .await?
        .ok_or(ApiError::NotFound("invitation"))?;
    invitation_node(state, row).await
}

/// A member row as the API shows it.
async fn member_node(state: &AppState, row: MemberRow) -> ApiResult<Member> {
    Ok(Member {
        email: match row.email() {
            Some(sealed) => state.keyring.reveal(&sealed).await?,
            None => projections::crypto::ERASED.to_string(),
        },
        user_id: ID(row.user_id),
        role: row.role.to_uppercase(),
        joined_at: from_micros(row.joined_at),
        totp_enabled: row.totp_enabled.unwrap_or(0) != 0,
    })
}

/// One API key of the tenant.
async fn api_key_by_id(state: &AppState, tenant: Uuid, id: Uuid) -> ApiResult<ApiKey> {
    state
        .identity
        .api_key(tenant, id)
        .await?
        .map(api_key)
        .ok_or(ApiError::NotFound("API key"))
}

#[derive(Default)]
pub struct MemberQuery;

#[Object]
impl MemberQuery {
    /// The organisation's members, oldest first.
    async fn members(&self, ctx: &Context<'_>) -> ApiResult<Vec<Member>> {
        let p = principal(ctx, Action::Read)?;
        let state = state(ctx);
        let mut out = Vec::new();
        for row in state.identity.members(p.tenant_id).await? {
            out.push(member_node(state, row).await?);
        }
        Ok(out)
    }

    /// The organisation's invitations, newest first.
    async fn invitations(&self, ctx: &Context<'_>) -> ApiResult<Vec<Invitation>> {
        let p = principal(ctx, Action::ManageMembers)?;
        let state = state(ctx);
        let mut out = Vec::new();
        for row in state.identity.invitations(p.tenant_id).await? {
            out.push(invitation_node(state, row).await?);
        }
        Ok(out)
    }

    /// The organisation's API keys, newest first.
    async fn api_keys(&self, ctx: &Context<'_>) -> ApiResult<Vec<ApiKey>> {
        let p = principal(ctx, Action::ManageApiKeys)?;
        Ok(state(ctx)
            .identity
            .api_keys(p.tenant_id)
            .await?
            .into_iter()
            .map(api_key)
            .collect())
    }
}

#[derive(Default)]
pub struct MemberMutation;

#[Object]
impl MemberMutation {
    /// Invites someone by e-mail with a role (at most the inviter's own);
    /// the link in the mail is valid for 7 days and works once.
    async fn invite_member(
        &self,
        ctx: &Context<'_>,
        input: InviteMemberInput,
    ) -> ApiResult<Invitation> {
        let p = principal(ctx, Action::ManageMembers)?;
        let id = accounts::invite(
            state(ctx),
            p,
            &input.email,
            input.role.into(),
            correlation(ctx),
        )
        .await?;
        invitation(state(ctx), p.tenant_id, id).await
    }

    /// Withdraws a pending invitation.
    async fn revoke_invitation(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Invitation> {
        let p = principal(ctx, Action::ManageMembers)?;
        let id = parse_id(&id, "id")?;
        let state = state(ctx);
        state
            .execute_as(
                &state.tenants,
                Target::Existing(p.tenant_id),
                TenantCommand::RevokeInvitation { invitation_id: id },
                &state.metadata(p, correlation(ctx)),
            )
            .await?;
        invitation(state, p.tenant_id, id).await
    }

    /// Joins an organisation with an invitation's token, creating the
    /// account or confirming an existing one with its password.
    async fn accept_invitation(
        &self,
        ctx: &Context<'_>,
        input: AcceptInvitationInput,
    ) -> ApiResult<AuthPayload> {
        let state = state(ctx);
        let signed_in = accounts::accept_invitation(
            state,
            &input.token,
            SecretString::from(input.password),
            &client(ctx),
            correlation(ctx),
        )
        .await?;
        super::account::payload_for(state, signed_in).await
    }

    /// Changes a member's role (never above the caller's own; the last owner
    /// stays owner).
    async fn change_member_role(
        &self,
        ctx: &Context<'_>,
        input: ChangeMemberRoleInput,
    ) -> ApiResult<Member> {
        let p = principal(ctx, Action::ManageMembers)?;
        let user_id = parse_id(&input.user_id, "userId")?;
        let by = p
            .role()
            .ok_or_else(|| ApiError::Forbidden("ManageMembers".into()))?;
        let state = state(ctx);
        state
            .execute_as(
                &state.tenants,
                Target::Existing(p.tenant_id),
                TenantCommand::ChangeMemberRole {
                    user_id,
                    role: input.role.into(),
                    by,
                },
                &state.metadata(p, correlation(ctx)),
            )
            .await?;
        let row = state
            .identity
            .member(p.tenant_id, user_id)
            .await?
            .ok_or(ApiError::NotFound("member"))?;
        member_node(state, row).await
    }

    /// Removes a member; their sessions in this organisation stop working.
    async fn remove_member(&self, ctx: &Context<'_>, user_id: ID) -> ApiResult<bool> {
        let p = principal(ctx, Action::ManageMembers)?;
        let user_id = parse_id(&user_id, "userId")?;
        let by = p
            .role()
            .ok_or_else(|| ApiError::Forbidden("ManageMembers".into()))?;
        let state = state(ctx);
        state
            .execute_as(
                &state.tenants,
                Target::Existing(p.tenant_id),
                TenantCommand::RemoveMember { user_id, by },
                &state.metadata(p, correlation(ctx)),
            )
            .await?;
        Ok(true)
    }

    /// Requires (or stops requiring) two-factor authentication for every
    /// member of the organisation.
    async fn require_two_factor(&self, ctx: &Context<'_>, required: bool) -> ApiResult<bool> {
        let p = principal(ctx, Action::ManageSecurity)?;
        let state = state(ctx);
        state
            .execute_as(
                &state.tenants,
                Target::Existing(p.tenant_id),
                TenantCommand::RequireTwoFactor { required },
                &state.metadata(p, correlation(ctx)),
            )
            .await?;
        Ok(required)
    }

    /// Creates an API key acting with `role` (at most the caller's own).
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
    ) -> ApiResult<CreatedApiKey> {
        let p = principal(ctx, Action::ManageApiKeys)?;
        let by = p
            .role()
            .ok_or_else(|| ApiError::Forbidden("ManageApiKeys".into()))?;
        let key = random_token(API_KEY_PREFIX);
        let key_id = crate::ids::new_id();
        let state = state(ctx);
        state
            .execute_as(
                &state.tenants,
                Target::Existing(p.tenant_id),
                TenantCommand::CreateApiKey {
                    key_id,
                    name: input.name,
                    role: input.role.into(),
                    by,
                    key_hash: hash_token(&key),
                    expires_at: input.expires_at,
                    now: Utc::now(),
                },
                &state.metadata(p, correlation(ctx)),
            )
            .await?;
        Ok(CreatedApiKey {
            key,
            api_key: api_key_by_id(state, p.tenant_id, key_id).await?,
        })
    }

    /// Revokes an API key at once.
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ApiKey> {
        let p = principal(ctx, Action::ManageApiKeys)?;
        let key_id = parse_id(&id, "id")?;
        let state = state(ctx);
        state
            .execute_as(
                &state.tenants,
                Target::Existing(p.tenant_id),
                TenantCommand::RevokeApiKey { key_id },
                &state.metadata(p, correlation(ctx)),
            )
            .await?;
        api_key_by_id(state, p.tenant_id, key_id).await
    }
}
