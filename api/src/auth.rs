//! Sign-in: Argon2id password hashes, and sessions with an opaque access token
//! and refresh token. Tokens are random 256-bit values shown once; the
//! database keeps only their SHA-256 hashes, so a leaked table grants nothing.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use domain::access::Role;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// How long a refresh token lives.
const REFRESH_TTL_DAYS: i64 = 30;
/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Who is calling, as established from a valid access token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub role: Role,
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
    pub access_token: String,
    pub refresh_token: String,
    pub access_expires_at: DateTime<Utc>,
}

fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Validates a new password's length (10 to 1024 characters).
pub fn check_password_rules(password: &SecretString) -> ApiResult<()> {
    let n = password.expose_secret().chars().count();
    if !(MIN_PASSWORD_CHARS..=1024).contains(&n) {
        return Err(ApiError::invalid(
            "password",
            format!("must be {MIN_PASSWORD_CHARS} to 1024 characters"),
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

/// Session storage.
#[derive(Clone, Debug)]
pub struct Sessions {
    pool: AnyPool,
    access_ttl: chrono::Duration,
}

impl Sessions {
    /// Sessions in `pool`, with access tokens living `access_ttl_seconds`.
    pub fn new(pool: AnyPool, access_ttl_seconds: i64) -> Self {
        Self {
            pool,
            access_ttl: chrono::Duration::seconds(access_ttl_seconds),
        }
    }

    /// Starts a session for `user_id` in `tenant_id` with `role`.
    pub async fn create(&self, user_id: Uuid, tenant_id: Uuid, role: Role) -> ApiResult<Tokens> {
        let now = Utc::now();
        let tokens = Tokens {
            access_token: random_token("hat_"),
            refresh_token: random_token("hrt_"),
            access_expires_at: now + self.access_ttl,
        };
        sqlx::query(
            "INSERT INTO sessions (id, user_id, tenant_id, role, access_hash, access_expires_at, refresh_hash, refresh_expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(user_id.to_string())
        .bind(tenant_id.to_string())
        .bind(role.as_str())
        .bind(hash_token(&tokens.access_token))
        .bind(tokens.access_expires_at.timestamp_micros())
        .bind(hash_token(&tokens.refresh_token))
        .bind((now + chrono::Duration::days(REFRESH_TTL_DAYS)).timestamp_micros())
        .bind(now.timestamp_micros())
        .execute(&self.pool)
        .await?;
        Ok(tokens)
    }

    /// Resolves an `Authorization` header value.
    pub async fn authenticate(&self, header: Option<&str>) -> ApiResult<Caller> {
        let Some(header) = header else {
            return Ok(Caller::Anonymous);
        };
        let Some(token) = header.strip_prefix("Bearer ").map(str::trim) else {
            return Ok(Caller::Invalid);
        };
        if !token.starts_with("hat_") || token.len() > 100 {
            return Ok(Caller::Invalid);
        }
        let row: Option<(String, String, String, String)> = sqlx::query_as(
            "SELECT id, user_id, tenant_id, role FROM sessions
              WHERE access_hash = $1 AND access_expires_at > $2 AND revoked_at IS NULL",
        )
        .bind(hash_token(token))
        .bind(Utc::now().timestamp_micros())
        .fetch_optional(&self.pool)
        .await?;
        let principal = row.and_then(|(id, user, tenant, role)| {
            Some(Principal {
                session_id: Uuid::parse_str(&id).ok()?,
                user_id: Uuid::parse_str(&user).ok()?,
                tenant_id: Uuid::parse_str(&tenant).ok()?,
                role: Role::parse(&role)?,
            })
        });
        Ok(principal.map_or(Caller::Invalid, Caller::Authenticated))
    }

    /// Exchanges a refresh token for new tokens; the old refresh token stops
    /// working. Returns the session's user and tenant with the tokens.
    pub async fn refresh(&self, refresh_token: &str) -> ApiResult<(Uuid, Uuid, Tokens)> {
        let now = Utc::now();
        let tokens = Tokens {
            access_token: random_token("hat_"),
            refresh_token: random_token("hrt_"),
            access_expires_at: now + self.access_ttl,
        };
        let row: Option<(String, String)> = sqlx::query_as(
            "UPDATE sessions SET access_hash = $1, access_expires_at = $2, refresh_hash = $3
              WHERE refresh_hash = $4 AND refresh_expires_at > $5 AND revoked_at IS NULL
              RETURNING user_id, tenant_id",
        )
        .bind(hash_token(&tokens.access_token))
        .bind(tokens.access_expires_at.timestamp_micros())
        .bind(hash_token(&tokens.refresh_token))
        .bind(hash_token(refresh_token))
        .bind(now.timestamp_micros())
        .fetch_optional(&self.pool)
        .await?;
        let (user, tenant) = row.ok_or(ApiError::Unauthenticated(
            "invalid or expired refresh token",
        ))?;
        let parse = |s: &str| Uuid::parse_str(s).map_err(ApiError::internal);
        Ok((parse(&user)?, parse(&tenant)?, tokens))
    }

    /// Ends the session.
    pub async fn revoke(&self, session_id: Uuid) -> ApiResult<()> {
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2")
            .bind(Utc::now().timestamp_micros())
            .bind(session_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = random_token("hat_");
        assert!(a.starts_with("hat_") && a.len() > 40);
        assert_ne!(a, random_token("hat_"));
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
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
