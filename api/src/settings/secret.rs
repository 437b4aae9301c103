//! Serde of secrets: read as text, written as [`REDACTED`], so neither
//! `Debug` nor `herald config` shows one.

use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serializer};

/// What a secret shows instead of its value.
pub const REDACTED: &str = "[redacted]";

/// Writes [`REDACTED`].
pub fn serialize<S: Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(REDACTED)
}

/// Reads the secret as text.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    String::deserialize(d).map(SecretString::from)
}

/// The same for an optional secret (an empty one is none).
pub mod option {
    use secrecy::SecretString;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(_) => s.serialize_some(super::REDACTED),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
        Ok(Option::<String>::deserialize(d)?
            .filter(|s| !s.is_empty())
            .map(SecretString::from))
    }
}
