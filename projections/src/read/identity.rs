//! The identity read model: tenants, users, memberships, invitations and API
//! keys, as sign-in, authorization and the member screens need them. Personal
//! data stays sealed here; the API opens it for display, so an erased user's
//! data reads as erased everywhere without touching these rows.

use async_trait::async_trait;
use domain::access::Role;
use domain::sealed::Sealed;
use domain::tenant::TenantEvent;
use domain::user::UserEvent;
use sqlx::{AnyConnection, AnyPool, FromRow};
use uuid::Uuid;

use crate::{Projection, StoreError, StoredEvent, micros};

/// The identity projection.
pub struct Identity;

impl Identity {
    /// The projection's name (checkpoint key, `--projection` argument, and
    /// what an operation names when it waits for this read model).
    pub const NAME: &'static str = "identity";
}

#[async_trait]
impl Projection for Identity {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "rm_tenants",
            "rm_users",
            "rm_members",
            "rm_invitations",
            "rm_api_keys",
        ]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        events: &[StoredEvent],
    ) -> Result<(), StoreError> {
        for event in events {
            match event.aggregate_type.as_str() {
                "Tenant" => tenant(conn, event).await?,
                "User" => user(conn, event).await?,
                _ => {}
            }
        }
        Ok(())
    }
}

async fn tenant(conn: &mut AnyConnection, event: &StoredEvent) -> Result<(), StoreError> {
    let id = event.aggregate_id.as_str();
    let at = micros(event.metadata.recorded_at);
    let q = |sql: &'static str| sqlx::query(sql);
    match event.decode::<TenantEvent>()? {
        TenantEvent::TenantCreated {
            name,
            owner_user_id,
        } => {
            q("INSERT INTO rm_tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
                .bind(id)
                .bind(name)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            member(conn, id, owner_user_id, Role::Owner, at).await?;
        }
        TenantEvent::MemberInvited {
            invitation_id,
            email,
            role,
            expires_at,
        } => {
            q("INSERT INTO rm_invitations (id, tenant_id, email, role, status, expires_at, created_at)
               VALUES ($1, $2, $3, $4, 'PENDING', $5, $6) ON CONFLICT (id) DO NOTHING")
            .bind(invitation_id.to_string())
            .bind(id)
            .bind(email.as_str().to_string())
            .bind(role.as_str())
            .bind(micros(expires_at))
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        TenantEvent::InvitationAccepted {
            invitation_id,
            user_id,
            role,
        } => {
            invitation_status(conn, invitation_id, "ACCEPTED").await?;
            member(conn, id, user_id, role, at).await?;
        }
        TenantEvent::InvitationRevoked { invitation_id } => {
            invitation_status(conn, invitation_id, "REVOKED").await?;
        }
        TenantEvent::MemberRoleChanged { user_id, role } => {
            q("UPDATE rm_members SET role = $1 WHERE tenant_id = $2 AND user_id = $3")
                .bind(role.as_str())
                .bind(id)
                .bind(user_id.to_string())
                .execute(&mut *conn)
                .await?;
        }
        TenantEvent::MemberRemoved { user_id } => {
            q("DELETE FROM rm_members WHERE tenant_id = $1 AND user_id = $2")
                .bind(id)
                .bind(user_id.to_string())
                .execute(&mut *conn)
                .await?;
        }
        TenantEvent::TwoFactorRequirementChanged { required } => {
            q("UPDATE rm_tenants SET require_2fa = $1 WHERE id = $2")
                .bind(required as i64)
                .bind(id)
                .execute(&mut *conn)
                .await?;
        }
        TenantEvent::ApiKeyCreated {
            key_id,
            name,
            role,
            key_hash,
            expires_at,
        } => {
            q("INSERT INTO rm_api_keys (id, tenant_id, name, role, key_hash, expires_at, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING")
            .bind(key_id.to_string())
            .bind(id)
            .bind(name)
            .bind(role.as_str())
            .bind(key_hash)
            .bind(expires_at.map(micros))
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        TenantEvent::ApiKeyRevoked { key_id } => {
            q("UPDATE rm_api_keys SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3")
                .bind(at)
                .bind(key_id.to_string())
                .bind(id)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

async fn member(
    conn: &mut AnyConnection,
    tenant_id: &str,
    user_id: Uuid,
    role: Role,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO rm_members (tenant_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role",
    )
    .bind(tenant_id)
    .bind(user_id.to_string())
    .bind(role.as_str())
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn invitation_status(
    conn: &mut AnyConnection,
    invitation_id: Uuid,
    status: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE rm_invitations SET status = $1 WHERE id = $2")
        .bind(status)
        .bind(invitation_id.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn user(conn: &mut AnyConnection, event: &StoredEvent) -> Result<(), StoreError> {
    let id = event.aggregate_id.as_str();
    let at = micros(event.metadata.recorded_at);
    let set = |sql: &'static str| sqlx::query(sql);
    match event.decode::<UserEvent>()? {
        UserEvent::UserRegistered {
            email,
            email_verified,
            ..
        } => {
            set("INSERT INTO rm_users (id, email, email_verified, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET email = excluded.email, email_verified = excluded.email_verified,
                 totp_enabled = 0, erased = 0, created_at = excluded.created_at")
            .bind(id)
            .bind(email.as_str().to_string())
            .bind(email_verified as i64)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        UserEvent::EmailVerified { .. } => {
            set("UPDATE rm_users SET email_verified = 1 WHERE id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
        }
        UserEvent::TotpEnabled { .. } => {
            set("UPDATE rm_users SET totp_enabled = 1 WHERE id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
        }
        UserEvent::TotpDisabled => {
            set("UPDATE rm_users SET totp_enabled = 0 WHERE id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
        }
        UserEvent::UserErased => {
            set("UPDATE rm_users SET erased = 1, totp_enabled = 0 WHERE id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            set("DELETE FROM rm_members WHERE user_id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
        }
        _ => {}
    }
    Ok(())
}

/// A member of a tenant as listed.
#[derive(Debug, Clone, FromRow)]
pub struct MemberRow {
    pub user_id: String,
    pub role: String,
    pub joined_at: i64,
    pub email: Option<String>,
    pub totp_enabled: Option<i64>,
}

impl MemberRow {
    /// The sealed address (absent for accounts that predate this model).
    pub fn email(&self) -> Option<Sealed> {
        self.email.clone().map(Sealed::from_stored)
    }
}

/// An invitation as listed.
#[derive(Debug, Clone, FromRow)]
pub struct InvitationRow {
    pub id: String,
    pub email: String,
    pub role: String,
    pub status: String,
    pub expires_at: i64,
    pub created_at: i64,
}

/// An API key as listed (never the key itself).
#[derive(Debug, Clone, FromRow)]
pub struct ApiKeyRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub role: String,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub created_at: i64,
}

/// A tenant as listed.
#[derive(Debug, Clone, FromRow)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub require_2fa: i64,
}

/// Read-side queries of the identity model. Every tenant-owned row is looked
/// up with the caller's tenant id.
#[derive(Debug, Clone)]
pub struct IdentityQueries {
    pool: AnyPool,
}

const MEMBER_SELECT: &str = "SELECT m.user_id, m.role, m.joined_at, u.email, u.totp_enabled
    FROM rm_members m LEFT JOIN rm_users u ON u.id = m.user_id";

impl IdentityQueries {
    /// Queries over `pool`.
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// The tenant's members, oldest first.
    pub async fn members(&self, tenant_id: Uuid) -> Result<Vec<MemberRow>, StoreError> {
        let mut conn = crate::db::scoped(&self.pool, tenant_id).await?;
        Ok(sqlx::query_as(&format!(
            "{MEMBER_SELECT} WHERE m.tenant_id = $1 ORDER BY m.joined_at, m.user_id"
        ))
        .bind(tenant_id.to_string())
        .fetch_all(&mut *conn)
        .await?)
    }

    /// One member of the tenant.
    pub async fn member(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<MemberRow>, StoreError> {
        let mut conn = crate::db::scoped(&self.pool, tenant_id).await?;
        Ok(sqlx::query_as(&format!(
            "{MEMBER_SELECT} WHERE m.tenant_id = $1 AND m.user_id = $2"
        ))
        .bind(tenant_id.to_string())
        .bind(user_id.to_string())
        .fetch_optional(&mut *conn)
        .await?)
    }

    /// The tenants a user belongs to, with the role in each, oldest first.
    pub async fn memberships(&self, user_id: Uuid) -> Result<Vec<(Uuid, Role)>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT tenant_id, role FROM rm_members WHERE user_id = $1 ORDER BY joined_at, tenant_id",
        )
        .bind(user_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(t, r)| Some((Uuid::parse_str(&t).ok()?, Role::parse(&r)?)))
            .collect())
    }

    /// The tenant's invitations, newest first.
    pub async fn invitations(&self, tenant_id: Uuid) -> Result<Vec<InvitationRow>, StoreError> {
        let mut conn = crate::db::scoped(&self.pool, tenant_id).await?;
        Ok(sqlx::query_as(
            "SELECT id, email, role, status, expires_at, created_at FROM rm_invitations
              WHERE tenant_id = $1 ORDER BY created_at DESC, id",
        )
        .bind(tenant_id.to_string())
        .fetch_all(&mut *conn)
        .await?)
    }

    /// One invitation of the tenant.
    pub async fn invitation(
        &self,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Option<InvitationRow>, StoreError> {
        let mut conn = crate::db::scoped(&self.pool, tenant_id).await?;
        Ok(sqlx::query_as(
            "SELECT id, email, role, status, expires_at, created_at FROM rm_invitations
              WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?)
    }

    /// One API key of the tenant.
    pub async fn api_key(
        &self,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Option<ApiKeyRow>, StoreError> {
        let mut conn = crate::db::scoped(&self.pool, tenant_id).await?;
        Ok(sqlx::query_as(
            "SELECT id, tenant_id, name, role, expires_at, revoked_at, created_at FROM rm_api_keys
              WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?)
    }

    /// The tenant's API keys, newest first.
    pub async fn api_keys(&self, tenant_id: Uuid) -> Result<Vec<ApiKeyRow>, StoreError> {
        let mut conn = crate::db::scoped(&self.pool, tenant_id).await?;
        Ok(sqlx::query_as(
            "SELECT id, tenant_id, name, role, expires_at, revoked_at, created_at FROM rm_api_keys
              WHERE tenant_id = $1 ORDER BY created_at DESC, id",
        )
        .bind(tenant_id.to_string())
        .fetch_all(&mut *conn)
        .await?)
    }

    /// The active key with this hash, if any.
    pub async fn api_key_by_hash(
        &self,
        key_hash: &str,
        now: i64,
    ) -> Result<Option<ApiKeyRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, tenant_id, name, role, expires_at, revoked_at, created_at FROM rm_api_keys
              WHERE key_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(key_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// A tenant by id.
    pub async fn tenant(&self, tenant_id: Uuid) -> Result<Option<TenantRow>, StoreError> {
        let mut conn = crate::db::scoped(&self.pool, tenant_id).await?;
        Ok(
            sqlx::query_as("SELECT id, name, require_2fa FROM rm_tenants WHERE id = $1")
                .bind(tenant_id.to_string())
                .fetch_optional(&mut *conn)
                .await?,
        )
    }
}
