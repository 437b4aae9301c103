//! Who an address belongs to and the sealed password hash: what sign-in,
//! invitations, reset and erasure check a person by.

use domain::sealed::Sealed;
use domain::user::{Email, User, user_id_for_index};
use projections::{Keyring, Opened, Scope};
use secrecy::SecretString;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::identity::auth;
use crate::state::AppState;

/// The one answer to an unknown address and to a wrong password.
pub(super) const BAD_LOGIN: ApiError =
    ApiError::Unauthenticated("invalid e-mail address or password");

/// The user id that belongs to `email`.
pub async fn user_id_for(keyring: &Keyring, email: &Email) -> ApiResult<Uuid> {
    Ok(user_id_for_index(
        &keyring.blind_index("email", email.as_str()).await?,
    ))
}

/// The user's password hash, if they are active and not erased.
pub(super) async fn open_hash(state: &AppState, user: &User) -> ApiResult<Option<String>> {
    match (&user.password_hash, user.is_active()) {
        (Some(sealed), true) => match state.keyring.open(sealed).await? {
            Opened::Plain(hash) => Ok(Some(hash)),
            Opened::Erased => Ok(None),
        },
        _ => Ok(None),
    }
}

/// Checks the password rules, hashes the password and seals the hash with
/// the user's data key.
pub(super) async fn seal_password(
    state: &AppState,
    user_id: Uuid,
    password: SecretString,
) -> ApiResult<Sealed> {
    auth::check_password_rules(&password)?;
    let hash = auth::hash_password(password).await?;
    Ok(state.keyring.seal(&Scope::User(user_id), &hash).await?)
}
