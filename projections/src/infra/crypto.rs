//! Envelope encryption and crypto-shredding.
//!
//! A master key from configuration wraps one random data key per scope (a
//! tenant, a user, or a system purpose); data keys encrypt personal data and
//! credentials with AES-256-GCM. Wrapped data keys live in `data_keys`;
//! destroying one (erasing a user or tenant) makes everything sealed with it
//! unreadable while the events that carry it still load and replay.
//!
//! Stored form of a sealed value: `hk1:<data key id>:<base64url(nonce ‖ ciphertext)>`,
//! with the key id as associated data so a value cannot be moved to another key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use domain::sealed::{LEGACY_PREFIX, Sealed};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use uuid::Uuid;

use crate::{StoreError, micros};

const SEALED_PREFIX: &str = "hk1:";
const NONCE_LEN: usize = 12;
/// How long an unwrapped data key is cached. Bounds how late another process
/// notices a key destroyed elsewhere; this process forgets it at once.
const CACHE_TTL: Duration = Duration::from_secs(30);

/// What a data key belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// A tenant's credentials and the personal data of people it invites.
    Tenant(Uuid),
    /// A user's personal data (e-mail address, sessions' IPs) and credentials.
    User(Uuid),
    /// Server-wide purposes: keyed look-up indexes and token derivation.
    System(&'static str),
}

impl Scope {
    fn key(&self) -> String {
        match self {
            Scope::Tenant(id) => format!("tenant:{id}"),
            Scope::User(id) => format!("user:{id}"),
            Scope::System(name) => format!("system:{name}"),
        }
    }
}

pub use crate::error::CryptoError;

/// A master key (32 bytes), identified by a fingerprint that is safe to store.
pub struct MasterKey {
    id: String,
    key: SecretBox<[u8; 32]>,
}

impl MasterKey {
    /// Parses the base64 form of `HERALD_MASTER_KEY`.
    pub fn from_base64(encoded: &SecretString) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(encoded.expose_secret().trim())
            .map_err(|_| CryptoError::BadMasterKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadMasterKey)?;
        Ok(Self::from_bytes(key))
    }

    /// A new random key and its base64 form (to show the operator once).
    pub fn generate() -> (Self, SecretString) {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        let encoded = SecretString::from(STANDARD.encode(key));
        (Self::from_bytes(key), encoded)
    }

    fn from_bytes(key: [u8; 32]) -> Self {
        let id =
            hex::encode(&Sha256::digest([b"herald-master-key-id:".as_slice(), &key].concat())[..8]);
        Self {
            id,
            key: SecretBox::new(Box::new(key)),
        }
    }

    /// The fingerprint stored beside each wrapped data key.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A sealed value opened.
#[derive(Clone, PartialEq, Eq)]
pub enum Opened {
    Plain(String),
    /// The key was destroyed (crypto-shredded).
    Erased,
}

impl Opened {
    /// The plaintext, or the marker shown for erased data.
    pub fn or_erased(self) -> String {
        match self {
            Opened::Plain(s) => s,
            Opened::Erased => ERASED.to_string(),
        }
    }
}

/// Token kinds sent by mail: (MAC purpose, prefix).
pub const INVITATION_TOKEN: (&str, &str) = ("invitation", "hin_");
pub const RESET_TOKEN: (&str, &str) = ("password-reset", "hpr_");
pub const VERIFY_TOKEN: (&str, &str) = ("verify-email", "hev_");

/// What read models and exports show in place of erased personal data.
pub const ERASED: &str = "[erased]";

fn seal_with(key: &[u8; 32], key_id: &str, plaintext: &[u8]) -> String {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: key_id.as_bytes(),
            },
        )
        .expect("AES-GCM encryption of in-memory data cannot fail");
    let mut blob = nonce.to_vec();
    blob.extend(ciphertext);
    URL_SAFE_NO_PAD.encode(blob)
}

fn open_with(key: &[u8; 32], key_id: &str, encoded: &str) -> Result<Vec<u8>, CryptoError> {
    let blob = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| CryptoError::Corrupt)?;
    if blob.len() < NONCE_LEN {
        return Err(CryptoError::Corrupt);
    }
    let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: key_id.as_bytes(),
            },
        )
        .map_err(|_| CryptoError::Corrupt)
}

#[derive(Clone)]
struct CachedKey {
    id: String,
    /// `None` once destroyed.
    key: Option<Arc<[u8; 32]>>,
    loaded: Instant,
}

/// The data keys, unwrapped on demand and cached briefly.
#[derive(Clone)]
pub struct Keyring {
    pool: AnyPool,
    master: Arc<MasterKey>,
    /// Older master keys still accepted while a rotation rolls out.
    previous: Arc<Vec<MasterKey>>,
    by_scope: Arc<Mutex<HashMap<String, CachedKey>>>,
    by_id: Arc<Mutex<HashMap<String, CachedKey>>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("master", &self.master.id)
            .finish_non_exhaustive()
    }
}

type Row = (String, String, Option<String>);

impl Keyring {
    /// A keyring over the `data_keys` table in `pool`.
    pub fn new(pool: AnyPool, master: MasterKey, previous: Vec<MasterKey>) -> Self {
        Self {
            pool,
            master: Arc::new(master),
            previous: Arc::new(previous),
            by_scope: Default::default(),
            by_id: Default::default(),
        }
    }

    fn unwrap_key(&self, id: &str, master_id: &str, wrapped: &str) -> Result<[u8; 32], StoreError> {
        let master = std::iter::once(self.master.as_ref())
            .chain(self.previous.iter())
            .find(|m| m.id == master_id)
            .ok_or_else(|| CryptoError::UnknownMaster(id.into(), master_id.into()))?;
        let plain = open_with(master.key.expose_secret(), id, wrapped)?;
        Ok(plain.try_into().map_err(|_| CryptoError::Corrupt)?)
    }

    fn cached(&self, scope: Option<&str>, id: Option<&str>) -> Option<CachedKey> {
        let hit = match (scope, id) {
            (Some(s), _) => self.by_scope.lock().expect("lock").get(s).cloned(),
            (_, Some(i)) => self.by_id.lock().expect("lock").get(i).cloned(),
            _ => None,
        };
        hit.filter(|c| c.loaded.elapsed() < CACHE_TTL)
    }

    fn remember(&self, scope: &str, row: &Row) -> Result<CachedKey, StoreError> {
        let (id, master_id, wrapped) = row;
        let key = match wrapped {
            Some(w) => Some(Arc::new(self.unwrap_key(id, master_id, w)?)),
            None => None,
        };
        let entry = CachedKey {
            id: id.clone(),
            key,
            loaded: Instant::now(),
        };
        self.by_scope
            .lock()
            .expect("lock")
            .insert(scope.to_string(), entry.clone());
        self.by_id
            .lock()
            .expect("lock")
            .insert(id.clone(), entry.clone());
        Ok(entry)
    }

    /// The scope's key, created on first use (concurrent creators agree: the
    /// first insert wins and everyone reads it back).
    async fn key_for(&self, scope: &Scope) -> Result<CachedKey, StoreError> {
        let scope_key = scope.key();
        if let Some(hit) = self.cached(Some(&scope_key), None) {
            return Ok(hit);
        }
        let select = "SELECT id, master_key_id, wrapped FROM data_keys WHERE scope = $1";
        let mut row: Option<Row> = sqlx::query_as(select)
            .bind(&scope_key)
            .fetch_optional(&self.pool)
            .await?;
        if row.is_none() {
            let id = Uuid::now_v7().simple().to_string();
            let mut key = [0u8; 32];
            OsRng.fill_bytes(&mut key);
            let wrapped = seal_with(self.master.key.expose_secret(), &id, &key);
            sqlx::query(
                "INSERT INTO data_keys (id, scope, master_key_id, wrapped, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope) DO NOTHING",
            )
            .bind(&id)
            .bind(&scope_key)
            .bind(&self.master.id)
            .bind(&wrapped)
            .bind(micros(chrono::Utc::now()))
            .execute(&self.pool)
            .await?;
            row = sqlx::query_as(select)
                .bind(&scope_key)
                .fetch_optional(&self.pool)
                .await?;
        }
        let row = row.ok_or(CryptoError::Corrupt)?;
        self.remember(&scope_key, &row)
    }

    async fn key_by_id(&self, id: &str) -> Result<CachedKey, StoreError> {
        if let Some(hit) = self.cached(None, Some(id)) {
            return Ok(hit);
        }
        let row: Option<(String, String, String, Option<String>)> =
            sqlx::query_as("SELECT scope, id, master_key_id, wrapped FROM data_keys WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        match row {
            Some((scope, id, master, wrapped)) => self.remember(&scope, &(id, master, wrapped)),
            // A value sealed with a key whose row is gone reads as erased too.
            None => Ok(CachedKey {
                id: id.to_string(),
                key: None,
                loaded: Instant::now(),
            }),
        }
    }

    /// Encrypts `plaintext` with the scope's data key. Sealing for an erased
    /// scope is refused.
    pub async fn seal(&self, scope: &Scope, plaintext: &str) -> Result<Sealed, StoreError> {
        let entry = self.key_for(scope).await?;
        let key = entry.key.ok_or(StoreError::Erased)?;
        Ok(Sealed::from_stored(format!(
            "{SEALED_PREFIX}{}:{}",
            entry.id,
            seal_with(&key, &entry.id, plaintext.as_bytes())
        )))
    }

    /// Encrypts `plaintext` with the key that sealed `other`, so both are
    /// shredded together (a mail body with its recipient's address). Never
    /// creates a key, which makes it safe inside another transaction.
    pub async fn seal_alongside(
        &self,
        other: &Sealed,
        plaintext: &str,
    ) -> Result<Sealed, StoreError> {
        let (id, _) = other
            .as_str()
            .strip_prefix(SEALED_PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .ok_or(CryptoError::Corrupt)?;
        let entry = self.key_by_id(id).await?;
        let key = entry.key.ok_or(StoreError::Erased)?;
        Ok(Sealed::from_stored(format!(
            "{SEALED_PREFIX}{id}:{}",
            seal_with(&key, id, plaintext.as_bytes())
        )))
    }

    /// Decrypts a sealed value; values under a destroyed key read as erased.
    pub async fn open(&self, sealed: &Sealed) -> Result<Opened, StoreError> {
        let stored = sealed.as_str();
        if let Some(plain) = stored.strip_prefix(LEGACY_PREFIX) {
            return Ok(Opened::Plain(plain.to_string()));
        }
        let (id, blob) = stored
            .strip_prefix(SEALED_PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .ok_or(CryptoError::Corrupt)?;
        let entry = self.key_by_id(id).await?;
        let Some(key) = entry.key else {
            return Ok(Opened::Erased);
        };
        let plain = open_with(&key, id, blob)?;
        Ok(Opened::Plain(
            String::from_utf8(plain).map_err(|_| CryptoError::Corrupt)?,
        ))
    }

    /// [`Keyring::open`] for display: erased values become [`ERASED`].
    pub async fn reveal(&self, sealed: &Sealed) -> Result<String, StoreError> {
        Ok(self.open(sealed).await?.or_erased())
    }

    /// Destroys the scope's data key: everything sealed with it becomes
    /// unreadable, here at once and in other processes within the cache TTL.
    /// The row goes too, so the scope can get a fresh key later (an erased
    /// person may register again).
    pub async fn destroy(&self, scope: &Scope) -> Result<(), StoreError> {
        let scope_key = scope.key();
        sqlx::query("DELETE FROM data_keys WHERE scope = $1")
            .bind(&scope_key)
            .execute(&self.pool)
            .await?;
        if let Some(old) = self.by_scope.lock().expect("lock").remove(&scope_key) {
            self.by_id.lock().expect("lock").insert(
                old.id.clone(),
                CachedKey {
                    key: None,
                    loaded: Instant::now(),
                    ..old
                },
            );
        }
        Ok(())
    }

    /// A keyed hash of `value` for `purpose` (look-up indexes of e-mail
    /// addresses, rate-limit keys): stable across master-key rotations,
    /// meaningless without the server's keys.
    pub async fn blind_index(&self, purpose: &str, value: &str) -> Result<String, StoreError> {
        Ok(hex::encode(self.mac(purpose, value.as_bytes()).await?))
    }

    /// HMAC-SHA256 under the server's derivation key, for tokens derived from
    /// an id (invitation, password reset) so that no token is ever stored.
    pub async fn mac(&self, purpose: &str, data: &[u8]) -> Result<[u8; 32], StoreError> {
        let entry = self.key_for(&Scope::System("derive")).await?;
        let key = entry.key.ok_or(StoreError::Erased)?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_ref()).expect("any key length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(data);
        Ok(mac.finalize().into_bytes().into())
    }

    /// A token for `purpose` naming two ids (say tenant and invitation), with
    /// a MAC over both: nothing needs storing, the server recomputes it.
    /// Shape: `prefix` + base64url(a ‖ b ‖ mac).
    pub async fn issue_token(
        &self,
        purpose: &str,
        prefix: &str,
        a: Uuid,
        b: Uuid,
    ) -> Result<SecretString, StoreError> {
        let mut raw = [a.as_bytes().as_slice(), b.as_bytes()].concat();
        let mac = self.mac(purpose, &raw).await?;
        raw.extend(mac);
        Ok(SecretString::from(format!(
            "{prefix}{}",
            URL_SAFE_NO_PAD.encode(raw)
        )))
    }

    /// The ids of a token made by [`Keyring::issue_token`] for the same
    /// purpose, or `None` if it is malformed or forged (MAC compared in
    /// constant time).
    pub async fn read_token(
        &self,
        purpose: &str,
        prefix: &str,
        token: &str,
    ) -> Result<Option<(Uuid, Uuid)>, StoreError> {
        let Some(raw) = token
            .trim()
            .strip_prefix(prefix)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
        else {
            return Ok(None);
        };
        if raw.len() != 64 {
            return Ok(None);
        }
        let (ids, mac) = raw.split_at(32);
        let expected = self.mac(purpose, ids).await?;
        if !bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_slice(), mac)) {
            return Ok(None);
        }
        let a = Uuid::from_slice(&ids[..16]).map_err(|_| CryptoError::Corrupt)?;
        let b = Uuid::from_slice(&ids[16..]).map_err(|_| CryptoError::Corrupt)?;
        Ok(Some((a, b)))
    }

    /// Re-wraps every data key with `new` (the keys themselves, and so all
    /// sealed values, stay as they are). Returns how many were re-wrapped.
    /// Run with the old key as the current master; afterwards configure `new`.
    pub async fn rotate_master(&self, new: &MasterKey) -> Result<usize, StoreError> {
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT id, master_key_id, wrapped FROM data_keys WHERE wrapped IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut count = 0;
        for (id, master_id, wrapped) in rows {
            if master_id == new.id {
                continue;
            }
            let key = self.unwrap_key(&id, &master_id, wrapped.as_deref().unwrap_or_default())?;
            let rewrapped = seal_with(new.key.expose_secret(), &id, &key);
            sqlx::query(
                "UPDATE data_keys SET wrapped = $1, master_key_id = $2 WHERE id = $3 AND master_key_id = $4 AND wrapped IS NOT NULL",
            )
            .bind(rewrapped)
            .bind(&new.id)
            .bind(&id)
            .bind(&master_id)
            .execute(&self.pool)
            .await?;
            count += 1;
        }
        self.by_scope.lock().expect("lock").clear();
        self.by_id.lock().expect("lock").clear();
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_and_bind_the_key_id() {
        let key = [7u8; 32];
        let blob = seal_with(&key, "k1", b"ada@example.org");
        assert!(!blob.contains("ada"));
        assert_eq!(open_with(&key, "k1", &blob).unwrap(), b"ada@example.org");
        assert!(
            open_with(&key, "k2", &blob).is_err(),
            "key id is authenticated"
        );
        assert!(open_with(&[8u8; 32], "k1", &blob).is_err());
        assert_ne!(
            blob,
            seal_with(&key, "k1", b"ada@example.org"),
            "random nonce"
        );
    }

    #[test]
    fn master_key_parses_base64_of_32_bytes_only() {
        let (key, encoded) = MasterKey::generate();
        assert_eq!(MasterKey::from_base64(&encoded).unwrap().id(), key.id());
        assert!(MasterKey::from_base64(&"c2hvcnQ=".to_string().into()).is_err());
        assert!(MasterKey::from_base64(&"not base64!".to_string().into()).is_err());
    }
}
