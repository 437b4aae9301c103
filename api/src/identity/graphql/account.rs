//! Sign-up, sign-in, sessions, second factor, password reset, e-mail
//! verification, erasure and the caller's identity. The flows live in
//! `crate::identity::accounts`; these resolvers map inputs and outputs.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::access::{Action, Role};
use secrecy::SecretString;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::graphql::{client, correlation, parse_id, person, principal, state};
use crate::identity::accounts::{self, SignedIn};
use crate::state::{AppState, Target};

/// A user as others see them.
#[derive(SimpleObject, Clone)]
pub struct UserInfo {
    pub id: Uuid,
    /// `[erased]` once the user was erased.
    pub email: String,
    pub email_verified: bool,
    pub totp_enabled: bool,
}

/// An organisation.
#[derive(SimpleObject, Clone)]
pub struct TenantInfo {
    pub id: Uuid,
    pub name: String,
    pub requires_two_factor: bool,
}

/// Tokens and identity after signing in.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Send as `Authorization: Bearer <accessToken>`.
    pub access_token: String,
    pub access_token_expires_at: DateTime<Utc>,
    /// Exchange with `refreshSession` for new tokens; each works once.
    pub refresh_token: String,
    pub session_id: Uuid,
    pub user: UserInfo,
    pub tenant: TenantInfo,
    pub role: String,
    /// The organisation requires 2FA and this account has none yet: only
    /// enrollment is allowed until `confirmTotpEnrollment`.
    pub two_factor_enrollment_required: bool,
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
    /// A TOTP code or a backup code, when two-factor authentication is on.
    #[graphql(secret)]
    pub totp: Option<String>,
}

/// Input of `resetPassword`.
#[derive(InputObject)]
pub struct ResetPasswordInput {
    #[graphql(secret)]
    pub token: String,
    #[graphql(secret)]
    pub password: String,
}

/// Input of `eraseUser`.
#[derive(InputObject)]
pub struct EraseUserInput {
    /// The caller's password, to confirm.
    #[graphql(secret)]
    pub password: String,
}

/// The signed-in caller.
#[derive(SimpleObject)]
pub struct Me {
    /// Absent when an API key calls.
    pub user: Option<UserInfo>,
    pub tenant: TenantInfo,
    pub role: Option<String>,
    /// `user:<id>` or `api_key:<id>`.
    pub actor: String,
}

/// One of the caller's sessions.
#[derive(SimpleObject)]
pub struct SessionInfo {
    pub id: ID,
    pub tenant_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// The session making this request.
    pub current: bool,
}

/// What `beginTotpEnrollment` returns.
#[derive(SimpleObject)]
pub struct TotpEnrollment {
    /// For manual entry in an authenticator app.
    pub secret: String,
    pub otpauth_uri: String,
    /// The URI as a QR code (SVG data URL).
    pub qr_code: String,
}

/// What `confirmTotpEnrollment` returns.
#[derive(SimpleObject)]
pub struct BackupCodes {
    /// Ten one-time codes, shown only now.
    pub backup_codes: Vec<String>,
}

pub(crate) async fn user_info(state: &AppState, user_id: Uuid) -> ApiResult<UserInfo> {
    let user = state.load(&state.users, user_id).await?;
    let email = match &user.email {
        Some(sealed) => state.keyring.reveal(sealed).await?,
        None => projections::crypto::ERASED.to_string(),
    };
    Ok(UserInfo {
        id: user_id,
        email,
        email_verified: user.email_verified,
        totp_enabled: user.totp_secret.is_some(),
    })
}

pub(crate) async fn tenant_info(state: &AppState, tenant_id: Uuid) -> ApiResult<TenantInfo> {
    let tenant = state.load(&state.tenants, tenant_id).await?;
    Ok(TenantInfo {
        id: tenant_id,
        name: tenant.name.ok_or(ApiError::NotFound("tenant"))?,
        requires_two_factor: tenant.require_two_factor,
    })
}

pub(crate) fn role_name(role: Role) -> String {
    role.as_str().to_uppercase()
}

pub(crate) async fn payload_for(state: &AppState, signed_in: SignedIn) -> ApiResult<AuthPayload> {
    Ok(AuthPayload {
        access_token: signed_in.tokens.access_token,
        access_token_expires_at: signed_in.tokens.access_expires_at,
        refresh_token: signed_in.tokens.refresh_token,
        session_id: signed_in.tokens.session_id,
        user: user_info(state, signed_in.user_id).await?,
        tenant: tenant_info(state, signed_in.tenant_id).await?,
        role: role_name(signed_in.role),
        two_factor_enrollment_required: signed_in.mfa_pending,
    })
}

#[derive(Default)]
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    /// The caller: user (or API key), organisation and role.
    async fn me(&self, ctx: &Context<'_>) -> ApiResult<Me> {
        let p = principal(ctx, Action::Read)?;
        let state = state(ctx);
        Ok(Me {
            user: match p.user_id {
                Some(id) => Some(user_info(state, id).await?),
                None => None,
            },
            tenant: tenant_info(state, p.tenant_id).await?,
            role: p.role().map(role_name),
            actor: p.actor.to_string(),
        })
    }

    /// The caller's live sessions, newest first.
    async fn sessions(&self, ctx: &Context<'_>) -> ApiResult<Vec<SessionInfo>> {
        let (p, user_id) = person(ctx, Action::OwnAccount)?;
        let state = state(ctx);
        let mut out = Vec::new();
        for s in state.sessions.list(user_id).await? {
            let reveal = |v: Option<domain::sealed::Sealed>| async move {
                match v {
                    Some(sealed) => state.keyring.reveal(&sealed).await.map(Some),
                    None => Ok(None),
                }
            };
            out.push(SessionInfo {
                id: ID(s.id.to_string()),
                tenant_id: s.tenant_id,
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                user_agent: reveal(s.user_agent).await?,
                ip: reveal(s.ip).await?,
                current: p.session_id == Some(s.id),
            });
        }
        Ok(out)
    }
}

#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Creates an organisation and its owner, and signs the owner in. A
    /// verification link goes to the address.
    async fn sign_up(&self, ctx: &Context<'_>, input: SignUpInput) -> ApiResult<AuthPayload> {
        let state = state(ctx);
        let signed_in = accounts::sign_up(
            state,
            &input.organization,
            &input.email,
            SecretString::from(input.password),
            &client(ctx),
            correlation(ctx),
        )
        .await?;
        payload_for(state, signed_in).await
    }

    /// Signs in with e-mail address and password, plus `totp` when
    /// two-factor authentication is on. Unknown addresses and wrong
    /// passwords get the same answer in the same time.
    async fn log_in(&self, ctx: &Context<'_>, input: LogInInput) -> ApiResult<AuthPayload> {
        let state = state(ctx);
        let signed_in = accounts::log_in(
            state,
            &input.email,
            SecretString::from(input.password),
            input.tenant_id,
            input.totp.as_deref(),
            &client(ctx),
            correlation(ctx),
        )
        .await?;
        payload_for(state, signed_in).await
    }

    /// Exchanges a refresh token for new tokens. Each refresh token works
    /// once; presenting a used one again revokes the session.
    async fn refresh_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] refresh_token: String,
    ) -> ApiResult<AuthPayload> {
        let state = state(ctx);
        let signed_in = accounts::refresh(state, &refresh_token, &client(ctx)).await?;
        payload_for(state, signed_in).await
    }

    /// Ends the current session.
    async fn log_out(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let (p, _) = person(ctx, Action::OwnAccount)?;
        if let Some(id) = p.session_id {
            state(ctx).sessions.revoke(id).await?;
        }
        Ok(true)
    }

    /// Ends one of the caller's sessions.
    async fn revoke_session(&self, ctx: &Context<'_>, id: ID) -> ApiResult<bool> {
        let (_, user_id) = person(ctx, Action::OwnAccount)?;
        let id = parse_id(&id, "id")?;
        if state(ctx).sessions.revoke_own(user_id, id).await? {
            Ok(true)
        } else {
            Err(ApiError::NotFound("session"))
        }
    }

    /// Signs in to another organisation the caller belongs to; the current
    /// session ends.
    async fn switch_tenant(&self, ctx: &Context<'_>, tenant_id: ID) -> ApiResult<AuthPayload> {
        let (p, user_id) = person(ctx, Action::OwnAccount)?;
        let tenant_id = parse_id(&tenant_id, "tenantId")?;
        let state = state(ctx);
        let signed_in = accounts::switch_tenant(state, p, user_id, tenant_id, &client(ctx)).await?;
        payload_for(state, signed_in).await
    }

    /// Sends a password-reset link if the address has an account (the
    /// answer is the same either way).
    async fn request_password_reset(&self, ctx: &Context<'_>, email: String) -> ApiResult<bool> {
        accounts::request_password_reset(
            ctx.data_unchecked::<std::sync::Arc<AppState>>().clone(),
            &email,
            &client(ctx),
            correlation(ctx),
        )
        .await?;
        Ok(true)
    }

    /// Sets a new password with a reset link's token; all sessions end.
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        input: ResetPasswordInput,
    ) -> ApiResult<bool> {
        accounts::reset_password(
            state(ctx),
            &input.token,
            SecretString::from(input.password),
            &client(ctx),
            correlation(ctx),
        )
        .await?;
        Ok(true)
    }

    /// Confirms the e-mail address with the token from the verification mail.
    async fn verify_email(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] token: String,
    ) -> ApiResult<bool> {
        accounts::verify_email(state(ctx), &token, correlation(ctx)).await?;
        Ok(true)
    }

    /// Sends a new verification mail.
    async fn request_email_verification(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let (p, user_id) = person(ctx, Action::OwnAccount)?;
        let state = state(ctx);
        state
            .execute_as(
                &state.users,
                Target::Existing(user_id),
                domain::user::UserCommand::RequestEmailVerification {
                    verification_id: Uuid::now_v7(),
                    expires_at: Utc::now() + accounts::VERIFY_TTL,
                },
                &state.metadata(p, correlation(ctx)),
            )
            .await?;
        Ok(true)
    }

    /// Starts TOTP enrollment: add the secret to an authenticator app, then
    /// confirm with a code.
    async fn begin_totp_enrollment(&self, ctx: &Context<'_>) -> ApiResult<TotpEnrollment> {
        let (p, user_id) = person(ctx, Action::OwnAccount)?;
        let e = accounts::begin_totp(state(ctx), p, user_id, correlation(ctx)).await?;
        Ok(TotpEnrollment {
            secret: e.secret_base32,
            otpauth_uri: e.otpauth_uri,
            qr_code: e.qr_code,
        })
    }

    /// Turns TOTP on with the app's current code; returns backup codes.
    async fn confirm_totp_enrollment(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] code: String,
    ) -> ApiResult<BackupCodes> {
        let (p, user_id) = person(ctx, Action::OwnAccount)?;
        let backup_codes =
            accounts::confirm_totp(state(ctx), p, user_id, &code, correlation(ctx)).await?;
        Ok(BackupCodes { backup_codes })
    }

    /// Turns TOTP off; needs a fresh code (or a backup code).
    async fn disable_totp(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] code: String,
    ) -> ApiResult<bool> {
        let (p, user_id) = person(ctx, Action::OwnAccount)?;
        let state = state(ctx);
        let user = state.load(&state.users, user_id).await?;
        let meta = state.metadata(p, correlation(ctx));
        accounts::use_second_factor(state, user_id, &user, &code, &meta, true).await?;
        Ok(true)
    }

    /// Erases the caller's account: they leave every organisation and their
    /// personal data becomes unreadable everywhere (crypto-shredding).
    async fn erase_user(&self, ctx: &Context<'_>, input: EraseUserInput) -> ApiResult<bool> {
        let (p, user_id) = person(ctx, Action::OwnAccount)?;
        accounts::erase_user(
            state(ctx),
            p,
            user_id,
            SecretString::from(input.password),
            correlation(ctx),
        )
        .await?;
        Ok(true)
    }
}
