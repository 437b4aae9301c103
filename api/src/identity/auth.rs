//! Sign-in primitives: Argon2id password hashes, opaque tokens (stored only as
//! SHA-256 hashes), sessions whose refresh token rotates on every use — a
//! rotated token presented again revokes the whole session (the token family)
//! — API keys, and the principal every request acts as.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};
use domain::access::{Action, Role, Subject};
use domain::metadata::Actor;
use domain::sealed::Sealed;
use projections::identity::IdentityQueries;
use projections::{Keyring, Scope, micros};
use secrecy::{ExposeSecret, SecretString};
use sqlx::AnyPool;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::http::client::ClientInfo;
use crate::identity::tokens::{
    ACCESS_PREFIX, API_KEY_PREFIX, DEVICE_SECRET_PREFIX, REFRESH_PREFIX, bearer, hash_token,
    random_token,
};

/// How long a refresh token (and so an idle session) lives.
const REFRESH_TTL_DAYS: i64 = 30;
/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// `last_used_at` is written at most this often per session.
const TOUCH_EVERY_MICROS: i64 = 60_000_000;

/// Who is calling, as established from a valid access token or API key.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: Uuid,
    pub subject: Subject,
    /// Recorded as the actor of the events this caller causes.
    pub actor: Actor,
    /// The signed-in person (absent for API keys and displays).
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    /// The tenant requires 2FA and this user has not enrolled yet: only
    /// their own account may be touched until they do. Read on every
    /// request, so turning the requirement on restricts live sessions too.
    pub mfa_pending: bool,
}

impl Principal {
    /// Whether this caller may do `action`: the permission matrix, and while
    /// a required 2FA enrollment is pending, nothing but their own account.
    /// GraphQL resolvers and REST routes both decide here.
    pub fn permit(&self, action: Action) -> ApiResult<()> {
        domain::access::authorize(self.subject, action)?;
        if self.mfa_pending && action != Action::OwnAccount {
            return Err(ApiError::Forbidden(
                "this organisation requires two-factor authentication: enroll with beginTotpEnrollment first".into(),
            ));
        }
        Ok(())
    }

    /// The member role, for role-escalation rules.
    pub fn role(&self) -> Option<Role> {
        self.subject.role()
    }
}

/// What the request carried in `Authorization`.
#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous,
    Invalid,
    Authenticated(Principal),
}

/// Freshly issued tokens (shown to the client once).
pub struct Tokens {
    pub session_id: Uuid,
    pub access_token: String,
    pub refresh_token: String,
    pub access_expires_at: DateTime<Utc>,
}

/// A small list of passwords attackers try first (breached-password style).
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "password1",
    "password12",
    "password123",
    "password1234",
    "123456789",
    "1234567890",
    "12345678910",
    "qwertyuiop",
    "qwerty123",
    "qwerty1234",
    "1q2w3e4r5t",
    "iloveyou",
    "iloveyou1",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "welcome1",
    "welcome123",
    "letmein123",
    "administrator",
    "changeme",
    "changeme123",
    "trustno1",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "superman",
    "starwars",
    "dragon123",
    "monkey123",
    "abc123456",
    "aaaaaaaaaa",
    "0987654321",
    "zaq12wsx",
    "1qaz2wsx",
    "asdfghjkl",
    "computer",
    "whatever",
    "michael1",
    "jennifer",
    "correcthorse",
    "herald123",
    "heraldherald",
];

/// Validates a new password: 10 to 1024 characters, not a commonly breached
/// one, not one character repeated.
pub fn check_password_rules(password: &SecretString) -> ApiResult<()> {
    let raw = password.expose_secret();
    let n = raw.chars().count();
    if !(MIN_PASSWORD_CHARS..=1024).contains(&n) {
        return Err(ApiError::invalid(
            "password",
            format!("must be {MIN_PASSWORD_CHARS} to 1024 characters"),
        ));
    }
    let lower = raw.to_lowercase();
    let distinct = lower
        .chars()
        .collect::<std::collections::HashSet<_>>()
        .len();
    if distinct < 4 || COMMON_PASSWORDS.iter().any(|c| lower == *c) {
        return Err(ApiError::invalid(
            "password",
            "is too common or too simple; choose a longer passphrase",
        ));
    }
    Ok(())
}

/// Hashes a password with Argon2id on the blocking pool.
pub async fn hash_password(password: SecretString) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(password.expose_secret().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::internal(std::io::Error::other(e.to_string())))
    })
    .await
    .map_err(ApiError::internal)?
}

/// A valid hash of a random password, verified against when the account does
/// not exist so that both cases take the same time.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(random_token("").as_bytes(), &salt)
        .expect("hashing works")
        .to_string()
});

/// Checks `password` against `hash` (or a dummy hash when `None`).
pub async fn verify_password(password: SecretString, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let exists = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.clone());
        let ok = PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.expose_secret().as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        ok && exists
    })
    .await
    .unwrap_or(false)
}

/// A session as its owner sees it in the `sessions` list.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub user_agent: Option<Sealed>,
    pub ip: Option<Sealed>,
}

/// Why a refresh was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshRefused {
    /// Unknown, expired or revoked.
    Invalid,
    /// A rotated token came back: its session was revoked.
    Reused,
}

/// Session storage and token authentication.
#[derive(Clone, Debug)]
pub struct Sessions {
    pool: AnyPool,
    keyring: Keyring,
    identity: IdentityQueries,
    access_ttl: chrono::Duration,
}

/// id, user, tenant.
type SessionRow = (String, String, String);
/// id, tenant, created, last used, user agent, ip.
type SessionListRow = (
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
);

impl Sessions {
    /// Sessions in `pool`, with access tokens living `access_ttl_seconds`.
    pub fn new(pool: AnyPool, keyring: Keyring, access_ttl_seconds: i64) -> Self {
        Self {
            identity: IdentityQueries::new(pool.clone()),
            pool,
            keyring,
            access_ttl: chrono::Duration::seconds(access_ttl_seconds),
        }
    }

    fn new_tokens(&self, session_id: Uuid, now: DateTime<Utc>) -> Tokens {
        Tokens {
            session_id,
            access_token: random_token(ACCESS_PREFIX),
            refresh_token: random_token(REFRESH_PREFIX),
            access_expires_at: now + self.access_ttl,
        }
    }

    /// Starts a session for `user_id` in `tenant_id`. The client's address
    /// and user agent are sealed with the user's key.
    pub async fn create(
        &self,
        user_id: Uuid,
        tenant_id: Uuid,
        role: Role,
        client: &ClientInfo,
    ) -> ApiResult<Tokens> {
        let now = Utc::now();
        let tokens = self.new_tokens(Uuid::now_v7(), now);
        let scope = Scope::User(user_id);
        let ip = match client.ip {
            Some(ip) => Some(self.keyring.seal(&scope, &ip.to_string()).await?),
            None => None,
        };
        let user_agent = match &client.user_agent {
            Some(ua) => Some(self.keyring.seal(&scope, ua).await?),
            None => None,
        };
        sqlx::query(
            "INSERT INTO sessions (id, user_id, tenant_id, role, access_hash, access_expires_at, refresh_hash,
                                   refresh_expires_at, created_at, last_used_at, user_agent, ip)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(tokens.session_id.to_string())
        .bind(user_id.to_string())
        .bind(tenant_id.to_string())
        .bind(role.as_str())
        .bind(hash_token(&tokens.access_token))
        .bind(micros(tokens.access_expires_at))
        .bind(hash_token(&tokens.refresh_token))
        .bind(micros(now + chrono::Duration::days(REFRESH_TTL_DAYS)))
        .bind(micros(now))
        .bind(micros(now))
        .bind(user_agent.map(|s| s.as_str().to_string()))
        .bind(ip.map(|s| s.as_str().to_string()))
        .execute(&self.pool)
        .await?;
        Ok(tokens)
    }

    /// Resolves an `Authorization` header value: a session's access token or
    /// an API key. The role comes from the current membership, so a role
    /// change or removal takes effect on the next request.
    pub async fn authenticate(&self, header: Option<&str>) -> ApiResult<Caller> {
        let Some(header) = header else {
            return Ok(Caller::Anonymous);
        };
        let Some(token) = bearer(header) else {
            return Ok(Caller::Invalid);
        };
        if token.len() > 100 {
            return Ok(Caller::Invalid);
        }
        let now = micros(Utc::now());
        if token.starts_with(API_KEY_PREFIX) {
            let key = self
                .identity
                .api_key_by_hash(&hash_token(token), now)
                .await?;
            return Ok(key
                .and_then(|k| {
                    let role = Role::parse(&k.role)?;
                    let id = Uuid::parse_str(&k.id).ok()?;
                    Some(Caller::Authenticated(Principal {
                        tenant_id: Uuid::parse_str(&k.tenant_id).ok()?,
                        subject: Subject::ApiKey(role),
                        actor: Actor::ApiKey(id),
                        user_id: None,
                        session_id: None,
                        mfa_pending: false,
                    }))
                })
                .unwrap_or(Caller::Invalid));
        }
        if token.starts_with(DEVICE_SECRET_PREFIX) {
            // A paired display: a principal the matrix lets do nothing here
            // but what the display API offers.
            let row: Option<(String, Option<String>)> = sqlx::query_as(
                "SELECT device_id, tenant_id FROM display_devices WHERE secret_hash = $1",
            )
            .bind(hash_token(token))
            .fetch_optional(&self.pool)
            .await?;
            return Ok(row
                .and_then(|(device, tenant)| {
                    Some(Caller::Authenticated(Principal {
                        tenant_id: Uuid::parse_str(&tenant?).ok()?,
                        subject: Subject::Display,
                        actor: Actor::Display(Uuid::parse_str(&device).ok()?),
                        user_id: None,
                        session_id: None,
                        mfa_pending: false,
                    }))
                })
                .unwrap_or(Caller::Invalid));
        }
        if !token.starts_with(ACCESS_PREFIX) {
            return Ok(Caller::Invalid);
        }
        let row: Option<(String, String, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT s.id, s.user_id, s.tenant_id, m.role, t.require_2fa * (1 - u.totp_enabled), s.last_used_at
               FROM sessions s
               JOIN rm_members m ON m.tenant_id = s.tenant_id AND m.user_id = s.user_id
               JOIN rm_tenants t ON t.id = s.tenant_id
               JOIN rm_users u ON u.id = s.user_id
              WHERE s.access_hash = $1 AND s.access_expires_at > $2 AND s.revoked_at IS NULL",
        )
        .bind(hash_token(token))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some((id, user, tenant, role, mfa_pending, last_used)) = row else {
            return Ok(Caller::Invalid);
        };
        if last_used.is_none_or(|t| now - t > TOUCH_EVERY_MICROS) {
            sqlx::query("UPDATE sessions SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&id)
                .execute(&self.pool)
                .await?;
        }
        let principal = (|| {
            let user_id = Uuid::parse_str(&user).ok()?;
            Some(Principal {
                tenant_id: Uuid::parse_str(&tenant).ok()?,
                subject: Subject::Member(Role::parse(&role)?),
                actor: Actor::User(user_id),
                user_id: Some(user_id),
                session_id: Some(Uuid::parse_str(&id).ok()?),
                mfa_pending: mfa_pending != 0,
            })
        })();
        Ok(principal.map_or(Caller::Invalid, Caller::Authenticated))
    }

    /// Exchanges a refresh token for new tokens. The old refresh token is
    /// remembered as rotated in the same transaction, so presenting it again
    /// (even concurrently) is recognised as reuse and ends the session.
    /// Returns the session's user and tenant with the new tokens.
    pub async fn refresh(
        &self,
        refresh_token: &str,
    ) -> ApiResult<Result<(Uuid, Uuid, Tokens), RefreshRefused>> {
        let now = Utc::now();
        let old_hash = hash_token(refresh_token);
        let mut tx = self.pool.begin().await?;
        let pending = self.new_tokens(Uuid::nil(), now);
        let row: Option<SessionRow> = sqlx::query_as(
            "UPDATE sessions SET access_hash = $1, access_expires_at = $2, refresh_hash = $3, last_used_at = $4
              WHERE refresh_hash = $5 AND refresh_expires_at > $4 AND revoked_at IS NULL
              RETURNING id, user_id, tenant_id",
        )
        .bind(hash_token(&pending.access_token))
        .bind(micros(pending.access_expires_at))
        .bind(hash_token(&pending.refresh_token))
        .bind(micros(now))
        .bind(&old_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((id, user, tenant)) = row else {
            tx.rollback().await?;
            return self.refused(&old_hash).await;
        };
        sqlx::query(
            "INSERT INTO rotated_refresh_tokens (hash, session_id, rotated_at) VALUES ($1, $2, $3)",
        )
        .bind(&old_hash)
        .bind(&id)
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let parse = |s: &str| Uuid::parse_str(s).map_err(ApiError::internal);
        let tokens = Tokens {
            session_id: parse(&id)?,
            ..pending
        };
        Ok(Ok((parse(&user)?, parse(&tenant)?, tokens)))
    }

    async fn refused(
        &self,
        old_hash: &str,
    ) -> ApiResult<Result<(Uuid, Uuid, Tokens), RefreshRefused>> {
        let family: Option<(String,)> =
            sqlx::query_as("SELECT session_id FROM rotated_refresh_tokens WHERE hash = $1")
                .bind(old_hash)
                .fetch_optional(&self.pool)
                .await?;
        match family {
            Some((session_id,)) => {
                tracing::warn!(session = %session_id, "rotated refresh token reused; session revoked");
                sqlx::query(
                    "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(micros(Utc::now()))
                .bind(session_id)
                .execute(&self.pool)
                .await?;
                Ok(Err(RefreshRefused::Reused))
            }
            None => Ok(Err(RefreshRefused::Invalid)),
        }
    }

    /// Ends one session.
    pub async fn revoke(&self, session_id: Uuid) -> ApiResult<()> {
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(micros(Utc::now()))
            .bind(session_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends one of `user_id`'s sessions; false if they have no such session.
    pub async fn revoke_own(&self, user_id: Uuid, session_id: Uuid) -> ApiResult<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(micros(Utc::now()))
        .bind(session_id.to_string())
        .bind(user_id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Ends every session of `user_id` (password reset, erasure).
    pub async fn revoke_all(&self, user_id: Uuid) -> ApiResult<()> {
        sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(micros(Utc::now()))
        .bind(user_id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes sessions that can no longer be used (refresh token expired,
    /// or revoked more than a day ago) with their rotated-token records;
    /// returns how many sessions went.
    pub async fn forget_dead(&self) -> ApiResult<u64> {
        let now = Utc::now();
        let revoked_before = micros(now - chrono::Duration::days(1));
        let dead = "SELECT id FROM sessions WHERE refresh_expires_at < $1 OR revoked_at < $2";
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "DELETE FROM rotated_refresh_tokens WHERE session_id IN ({dead})"
        ))
        .bind(micros(now))
        .bind(revoked_before)
        .execute(&mut *tx)
        .await?;
        let done =
            sqlx::query("DELETE FROM sessions WHERE refresh_expires_at < $1 OR revoked_at < $2")
                .bind(micros(now))
                .bind(revoked_before)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// The user's live sessions, newest first.
    pub async fn list(&self, user_id: Uuid) -> ApiResult<Vec<SessionInfo>> {
        let rows: Vec<SessionListRow> = sqlx::query_as(
            "SELECT id, tenant_id, created_at, last_used_at, user_agent, ip FROM sessions
                  WHERE user_id = $1 AND revoked_at IS NULL AND refresh_expires_at > $2
                  ORDER BY created_at DESC, id",
        )
        .bind(user_id.to_string())
        .bind(micros(Utc::now()))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, tenant, created, last, ua, ip)| {
                Some(SessionInfo {
                    id: Uuid::parse_str(&id).ok()?,
                    tenant_id: Uuid::parse_str(&tenant).ok()?,
                    created_at: projections::from_micros(created),
                    last_used_at: last.map(projections::from_micros),
                    user_agent: ua.map(Sealed::from_stored),
                    ip: ip.map(Sealed::from_stored),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = random_token(ACCESS_PREFIX);
        assert!(a.starts_with("hat_") && a.len() > 40);
        assert_ne!(a, random_token(ACCESS_PREFIX));
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
    }

    #[test]
    fn weak_passwords_are_refused() {
        for weak in [
            "short",
            "password123",
            "aaaaaaaaaaaa",
            "ababababab",
            "Qwertyuiop",
        ] {
            assert!(
                check_password_rules(&weak.to_string().into()).is_err(),
                "{weak}"
            );
        }
        assert!(check_password_rules(&"a long enough passphrase".to_string().into()).is_ok());
    }

    #[tokio::test]
    async fn password_round_trip_and_unknown_user_fails() {
        let hash = hash_password("correct horse battery".to_string().into())
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify_password(
                "correct horse battery".to_string().into(),
                Some(hash.clone())
            )
            .await
        );
        assert!(!verify_password("wrong password!".to_string().into(), Some(hash)).await);
        assert!(!verify_password("anything at all".to_string().into(), None).await);
    }
}
