//! Erasure: a person leaves every tenant and their data key is destroyed,
//! which shreds their personal data everywhere it was sealed.

use domain::access::Role;
use domain::metadata::EventMetadata;
use domain::tenant::TenantCommand;
use domain::user::UserCommand;
use projections::Scope;
use secrecy::SecretString;
use uuid::Uuid;

use super::credentials::open_hash;
use crate::error::{ApiError, ApiResult};
use crate::identity::auth::{self, Principal};
use crate::state::{AppState, Target};

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
            .execute_as(
                &state.tenants,
                Target::Existing(tenant_id),
                TenantCommand::RemoveMember {
                    user_id,
                    by: Role::Owner,
                },
                &meta,
            )
            .await?;
    }
    state
        .execute_as(
            &state.users,
            Target::Existing(user_id),
            UserCommand::Erase,
            &meta,
        )
        .await?;
    state.keyring.destroy(&Scope::User(user_id)).await?;
    state.sessions.revoke_all(user_id).await
}
