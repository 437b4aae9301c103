//! Account flows that span aggregates and infrastructure: sign-up, sign-in
//! with an optional second factor, invitations, password reset, e-mail
//! verification, TOTP enrollment and erasure. GraphQL resolvers call these and
//! only map inputs and outputs.
//!
//! Personal data about a person (their address, session IPs, user agents) is
//! sealed with that person's data key — known before they register, since
//! user ids derive from the address's blind index — so erasing a user shreds
//! it everywhere, invitations included. Tokens sent by mail are MACs over ids
//! ([`Keyring::issue_token`]); none is stored.

use chrono::{Duration, Utc};
use domain::access::Role;
use domain::metadata::{Actor, EventMetadata};
use domain::sealed::Sealed;
use domain::tenant::{TenantCommand, parse_name};
use domain::user::{Email, SecondFactor, User, UserCommand, user_id_for_index};
use projections::{Keyring, Opened, Scope};
use secrecy::SecretString;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::http::client::ClientInfo;
use crate::identity::auth::{self, Principal, RefreshRefused, Tokens};
use crate::identity::ratelimit::{self, Policy};
use crate::identity::totp;
use crate::state::AppState;

/// How long an invitation is valid.
pub const INVITATION_TTL: Duration = Duration::days(7);
/// How long a password-reset link is valid.
pub const RESET_TTL: Duration = Duration::hours(1);
/// How long an e-mail verification link is valid.
pub const VERIFY_TTL: Duration = Duration::days(2);

/// Token purposes and prefixes.
pub use projections::crypto::{
    INVITATION_TOKEN as INVITATION, RESET_TOKEN as RESET, VERIFY_TOKEN as VERIFY,
};

const BAD_LOGIN: ApiError = ApiError::Unauthenticated("invalid e-mail address or password");

/// Rate-limit keys of one request: keyed hashes of its IP and the account
/// it names, so the limits table holds no address.
struct Guard<'a> {
    state: &'a AppState,
    secret: [u8; 32],
    ip: Option<std::net::IpAddr>,
}

impl<'a> Guard<'a> {
    async fn new(state: &'a AppState, client: &ClientInfo) -> ApiResult<Self> {
        Ok(Self {
            state,
            secret: state.keyring.mac("rate-limit", b"").await?,
            ip: client.ip,
        })
    }

    fn ip_key(&self, policy: &Policy) -> Option<String> {
        self.ip
            .map(|ip| ratelimit::key(policy, &ratelimit::ip_subject(ip), &self.secret))
    }

    fn account_key(&self, policy: &Policy, account: &str) -> String {
        ratelimit::key(policy, account, &self.secret)
    }

    /// Counts an attempt against both keys; refused while either is over
    /// its limit or locked.
    async fn hit(&self, keys: &[(&Policy, Option<String>)]) -> ApiResult<()> {
        for (policy, key) in keys {
            if let Some(key) = key {
                self.state.limiter.hit(policy, key).await?;
            }
        }
        Ok(())
    }

    /// Records a failed attempt on every key (for unknown accounts too, so a
    /// lock-out reveals nothing).
    async fn failed(&self, keys: &[(&Policy, Option<String>)]) -> ApiResult<()> {
        for (policy, key) in keys {
            if let Some(key) = key {
                self.state.limiter.failure(policy, key).await?;
            }
        }
        Ok(())
    }

    /// Forgets an account's failures after a success (never an IP's: one
    /// valid account must not clear an attacker's record).
    async fn succeeded(&self, policy: &Policy, key: &str) -> ApiResult<()> {
        self.state.limiter.success(policy, key).await?;
        Ok(())
    }
}

/// A signed-in session's identity.
pub struct SignedIn {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub role: Role,
    pub tokens: Tokens,
    pub mfa_pending: bool,
}

/// The user id that belongs to `email`.
pub async fn user_id_for(keyring: &Keyring, email: &Email) -> ApiResult<Uuid> {
    Ok(user_id_for_index(
        &keyring.blind_index("email", email.as_str()).await?,
    ))
}

fn system_meta(tenant_id: Uuid, actor: Actor, correlation: Uuid) -> EventMetadata {
    EventMetadata::new(tenant_id, actor, correlation, Utc::now())
}

/// Metadata for a person acting on their own account without a session
/// (reset, verification links): their events are filed under their first
/// organisation, so the audit trail of that tenant shows them.
async fn own_meta(state: &AppState, user_id: Uuid, correlation: Uuid) -> ApiResult<EventMetadata> {
    let tenant_id = state
        .identity
        .memberships(user_id)
        .await?
        .first()
        .map_or(Uuid::nil(), |(t, _)| *t);
    Ok(system_meta(tenant_id, Actor::User(user_id), correlation))
}

async fn open_hash(state: &AppState, user: &User) -> ApiResult<Option<String>> {
    match (&user.password_hash, user.is_active()) {
        (Some(sealed), true) => match state.keyring.open(sealed).await? {
            Opened::Plain(hash) => Ok(Some(hash)),
            Opened::Erased => Ok(None),
        },
        _ => Ok(None),
    }
}

async fn seal_password(
    state: &AppState,
    user_id: Uuid,
    password: SecretString,
) -> ApiResult<Sealed> {
    auth::check_password_rules(&password)?;
    let hash = auth::hash_password(password).await?;
    Ok(state.keyring.seal(&Scope::User(user_id), &hash).await?)
}

/// Creates an organisation and its owner, asks the owner to verify their
/// address, and signs them in.
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
        .run(
            &state.users,
            user_id,
            UserCommand::Register {
                email: sealed_email,
                password_hash,
                email_verified: false,
            },
            &meta,
        )
        .await?;
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
    state.run(&state.users, user_id, command, meta).await?;
    Ok(())
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
    let invitation_id = Uuid::now_v7();
    let meta = state.metadata(principal, correlation);
    state
        .run(
            &state.tenants,
            principal.tenant_id,
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
            .run(
                &state.users,
                user_id,
                UserCommand::Register {
                    email: sealed_email,
                    password_hash,
                    email_verified: true,
                },
                &meta,
            )
            .await?;
    }
    state
        .run(
            &state.tenants,
            tenant_id,
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
        .run(
            &state.users,
            user_id,
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
        .run(
            &state.users,
            user_id,
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
        .run(
            &state.users,
            user_id,
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

/// What `beginTotpEnrollment` returns.
pub struct Enrollment {
    pub secret_base32: String,
    pub otpauth_uri: String,
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
        .run(
            &state.users,
            user_id,
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
        .run(
            &state.users,
            user_id,
            UserCommand::ConfirmTotp {
                step,
                backup_code_hashes: codes.iter().map(|c| totp::hash_backup_code(c)).collect(),
            },
            &state.metadata(principal, correlation),
        )
        .await?;
    Ok(codes)
}

/// Erases the caller: leaves every tenant, then destroys their data key so
/// their personal data reads as erased in every read model and export.
pub async fn erase_user(
    state: &AppState,
    principal: &Principal,
    user_id: Uuid,
    password: SecretString,
    correlation: Uuid,
) -> ApiResult<()> {
    let user = state.load(&state.users, user_id).await?;
    let hash = open_hash(state, &user).await?;
    if !auth::verify_password(password, hash).await {
        return Err(ApiError::Unauthenticated("wrong password"));
    }
    let memberships = state.identity.memberships(user_id).await?;
    for (tenant_id, role) in &memberships {
        if *role == Role::Owner {
            let owners = state
                .identity
                .members(*tenant_id)
                .await?
                .iter()
                .filter(|m| m.role == Role::Owner.as_str())
                .count();
            if owners == 1 {
                return Err(ApiError::Conflict(
                    "you are the last owner of an organisation: make someone else owner first"
                        .into(),
                ));
            }
        }
    }
    let meta = state.metadata(principal, correlation);
    for (tenant_id, _) in memberships {
        let meta = EventMetadata {
            tenant_id,
            ..meta.clone()
        };
        state
            .run(
                &state.tenants,
                tenant_id,
                TenantCommand::RemoveMember {
                    user_id,
                    by: Role::Owner,
                },
                &meta,
            )
            .await?;
    }
    state
        .run(&state.users, user_id, UserCommand::Erase, &meta)
        .await?;
    state.keyring.destroy(&Scope::User(user_id)).await?;
    state.sessions.revoke_all(user_id).await
}
