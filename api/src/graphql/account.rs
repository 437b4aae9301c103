//! Sign-up, sign-in and the caller's identity.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::access::{Action, Role};
use domain::metadata::{Actor, EventMetadata};
use domain::tenant::{TenantCommand, parse_name};
use domain::user::{Email, UserCommand, user_id_for_email};
use secrecy::SecretString;
use uuid::Uuid;

use super::{correlation, principal, state};
use crate::auth::{self, Tokens};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A user as others see them.
#[derive(SimpleObject, Clone)]
pub struct UserInfo {
    pub id: Uuid,
    pub email: String,
}

/// An organisation.
#[derive(SimpleObject, Clone)]
pub struct TenantInfo {
    pub id: Uuid,
    pub name: String,
}

/// Tokens and identity after signing in.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Send as `Authorization: Bearer <accessToken>`.
    pub access_token: String,
    pub access_token_expires_at: DateTime<Utc>,
    /// Exchange with `refreshSession` for new tokens.
    pub refresh_token: String,
    pub user: UserInfo,
    pub tenant: TenantInfo,
    pub role: String,
}

/// Input of `signUp`.
#[derive(InputObject)]
pub struct SignUpInput {
    pub organization: String,
    pub email: String,
    #[graphql(secret)]
    pub password: String,
}

/// Input of `logIn`.
#[derive(InputObject)]
pub struct LogInInput {
    pub email: String,
    #[graphql(secret)]
    pub password: String,
    /// Which organisation to sign in to, if the user belongs to several.
    pub tenant_id: Option<Uuid>,
}

/// The signed-in caller.
#[derive(SimpleObject)]
pub struct Me {
    pub user: UserInfo,
    pub tenant: TenantInfo,
    pub role: String,
}

async fn identity(
    state: &AppState,
    user_id: Uuid,
    tenant_id: Uuid,
) -> ApiResult<(UserInfo, TenantInfo)> {
    let user = state.load(&state.users, user_id).await?;
    let tenant = state.load(&state.tenants, tenant_id).await?;
    Ok((
        UserInfo {
            id: user_id,
            email: user.email.ok_or(ApiError::NotFound("user"))?,
        },
        TenantInfo {
            id: tenant_id,
            name: tenant.name.ok_or(ApiError::NotFound("tenant"))?,
        },
    ))
}

async fn payload(
    state: &AppState,
    user_id: Uuid,
    tenant_id: Uuid,
    role: Role,
    tokens: Tokens,
) -> ApiResult<AuthPayload> {
    let (user, tenant) = identity(state, user_id, tenant_id).await?;
    Ok(AuthPayload {
        access_token: tokens.access_token,
        access_token_expires_at: tokens.access_expires_at,
        refresh_token: tokens.refresh_token,
        user,
        tenant,
        role: role.as_str().to_uppercase(),
    })
}

const BAD_LOGIN: ApiError = ApiError::Unauthenticated("invalid e-mail address or password");

#[derive(Default)]
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    /// The signed-in user, organisation and role.
    async fn me(&self, ctx: &Context<'_>) -> ApiResult<Me> {
        let p = principal(ctx, Action::Read)?;
        let (user, tenant) = identity(state(ctx), p.user_id, p.tenant_id).await?;
        Ok(Me {
            user,
            tenant,
            role: p.role.as_str().to_uppercase(),
        })
    }
}

#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Creates an organisation and its owner, and signs the owner in.
    async fn sign_up(&self, ctx: &Context<'_>, input: SignUpInput) -> ApiResult<AuthPayload> {
        let state = state(ctx);
        let name = parse_name(&input.organization, "organization")?;
        let email = Email::parse(&input.email)?;
        let password = SecretString::from(input.password);
        auth::check_password_rules(&password)?;
        let user_id = user_id_for_email(&email);
        if state.load(&state.users, user_id).await?.email.is_some() {
            return Err(ApiError::Conflict(
                "an account with this e-mail address already exists".into(),
            ));
        }
        let password_hash = auth::hash_password(password).await?;
        let tenant_id = Uuid::now_v7();
        let meta = EventMetadata::new(
            tenant_id,
            Actor::User(user_id),
            correlation(ctx),
            Utc::now(),
        );
        state
            .create(
                &state.tenants,
                tenant_id,
                TenantCommand::Create {
                    name,
                    owner_user_id: user_id,
                },
                &meta,
            )
            .await?;
        state
            .run(
                &state.users,
                user_id,
                UserCommand::Register {
                    email,
                    password_hash,
                    tenant_id,
                    role: Role::Owner,
                },
                &meta,
            )
            .await?;
        let tokens = state
            .sessions
            .create(user_id, tenant_id, Role::Owner)
            .await?;
        payload(state, user_id, tenant_id, Role::Owner, tokens).await
    }

    /// Signs in with e-mail address and password. Unknown addresses and wrong
    /// passwords get the same answer in the same time.
    async fn log_in(&self, ctx: &Context<'_>, input: LogInInput) -> ApiResult<AuthPayload> {
        let state = state(ctx);
        let password = SecretString::from(input.password);
        let user = match Email::parse(&input.email) {
            Ok(email) => {
                let id = user_id_for_email(&email);
                Some((id, state.load(&state.users, id).await?))
            }
            Err(_) => None,
        };
        let hash = user.as_ref().and_then(|(_, u)| u.password_hash.clone());
        if !auth::verify_password(password, hash).await {
            return Err(BAD_LOGIN);
        }
        let (user_id, user) = user.ok_or(BAD_LOGIN)?;
        let (tenant_id, role) = user
            .memberships
            .iter()
            .find(|(t, _)| input.tenant_id.is_none_or(|want| want == *t))
            .copied()
            .ok_or(BAD_LOGIN)?;
        let tokens = state.sessions.create(user_id, tenant_id, role).await?;
        payload(state, user_id, tenant_id, role, tokens).await
    }

    /// Exchanges a refresh token for a new access and refresh token.
    async fn refresh_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] refresh_token: String,
    ) -> ApiResult<AuthPayload> {
        let state = state(ctx);
        let (user_id, tenant_id, tokens) = state.sessions.refresh(&refresh_token).await?;
        let user = state.load(&state.users, user_id).await?;
        let role = user
            .memberships
            .iter()
            .find(|(t, _)| *t == tenant_id)
            .map(|(_, r)| *r)
            .ok_or(ApiError::Unauthenticated("membership ended"))?;
        payload(state, user_id, tenant_id, role, tokens).await
    }

    /// Ends the current session.
    async fn log_out(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let p = principal(ctx, Action::Read)?;
        state(ctx).sessions.revoke(p.session_id).await?;
        Ok(true)
    }
}
