//! Values encrypted with a tenant's or user's data key (envelope encryption).
//! The domain only carries them: sealing and opening need keys and happen at
//! the edges (`projections::crypto`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Prefix of values written before encryption existed (upcast `UserRegistered`
/// v1). They are readable without a key and are never written anew.
pub const LEGACY_PREFIX: &str = "plain:";

/// Ciphertext of personal data or a credential, as stored in an event.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(String);

impl Sealed {
    /// Wraps a stored ciphertext string.
    pub fn from_stored(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// A value that predates encryption (only upcasters create these).
    pub fn legacy(plain: &str) -> Self {
        Self(format!("{LEGACY_PREFIX}{plain}"))
    }

    /// The stored form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Never prints the value: legacy values are plaintext.
impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealed(..)")
    }
}
