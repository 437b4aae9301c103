//! Herald's opaque tokens: what each kind starts with, how one is made and
//! how it is stored. The prefixes tell the kinds apart at a glance (and in
//! secret scanners); every feature that issues or checks a token takes its
//! prefix from here.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Access tokens of a session.
pub const ACCESS_PREFIX: &str = "hat_";
/// Refresh tokens of a session.
pub const REFRESH_PREFIX: &str = "hrt_";
/// API keys.
pub const API_KEY_PREFIX: &str = "hak_";
/// Secrets of paired signage displays.
pub const DEVICE_SECRET_PREFIX: &str = "hds_";

/// The token of an `Authorization` header value `Bearer <token>`, or
/// `None` for another scheme. The scheme is matched in any case, as RFC 9110
/// (§11.1) has it; every route that reads a bearer token reads it here.
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("Bearer").then(|| token.trim())
}

/// A new random token with `prefix` (256 bits of entropy).
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
