//! The master key: where it comes from, and `herald keys rotate`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use projections::{Database, Keyring, MasterKey};
use secrecy::{ExposeSecret, SecretString};

use crate::settings::Settings;

fn key_file(settings: &Settings) -> PathBuf {
    settings.data_dir.join("master.key")
}

fn write_key_file(path: &Path, encoded: &SecretString) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut file, encoded.expose_secret().as_bytes())?;
    Ok(())
}

/// The configured master key: `HERALD_MASTER_KEY`, else `<data-dir>/master.key`;
/// on the embedded database a missing file is created (with a warning), on
/// PostgreSQL a key must be configured so every process shares it.
pub fn master_key(settings: &Settings, db: &Database) -> anyhow::Result<MasterKey> {
    if let Some(encoded) = &settings.identity.master_key {
        return MasterKey::from_base64(encoded).context("invalid HERALD_MASTER_KEY");
    }
    let path = key_file(settings);
    if path.exists() {
        let encoded = SecretString::from(
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        );
        return MasterKey::from_base64(&encoded)
            .with_context(|| format!("invalid master key in {}", path.display()));
    }
    if db.is_postgres() {
        bail!(
            "HERALD_MASTER_KEY is required with PostgreSQL: base64 of 32 random bytes (e.g. `openssl rand -base64 32`), the same for every herald process"
        );
    }
    let (key, encoded) = MasterKey::generate();
    write_key_file(&path, &encoded)?;
    tracing::warn!(
        path = %path.display(),
        "no HERALD_MASTER_KEY configured: generated a master key file; back it up, since encrypted data cannot be read without it"
    );
    Ok(key)
}

/// The keyring for `db` with the configured master key(s).
pub fn keyring(settings: &Settings, db: &Database) -> anyhow::Result<Keyring> {
    let master = master_key(settings, db)?;
    let previous = settings
        .identity
        .previous_master_key
        .as_ref()
        .map(|k| MasterKey::from_base64(k).context("invalid HERALD_PREVIOUS_MASTER_KEY"))
        .transpose()?;
    Ok(Keyring::new(
        db.any.clone(),
        master,
        previous.into_iter().collect(),
    ))
}

/// `herald keys rotate`: re-wraps every data key with a new master key. The
/// new key comes from `HERALD_NEW_MASTER_KEY` or is generated; a key kept in
/// the data directory's file is replaced there (the old one is kept beside
/// it as `master.key.previous`), a configured key is printed once for the
/// operator to install.
pub async fn rotate(settings: &Settings, db: &Database) -> anyhow::Result<()> {
    let keyring = keyring(settings, db)?;
    let (new, encoded) = match std::env::var("HERALD_NEW_MASTER_KEY") {
        Ok(value) => {
            let encoded = SecretString::from(value);
            (
                MasterKey::from_base64(&encoded).context("invalid HERALD_NEW_MASTER_KEY")?,
                encoded,
            )
        }
        Err(_) => MasterKey::generate(),
    };
    let count = keyring.rotate_master(&new).await?;
    if settings.identity.master_key.is_none() {
        let path = key_file(settings);
        std::fs::copy(&path, path.with_extension("key.previous"))?;
        write_key_file(&path, &encoded)?;
        println!(
            "re-wrapped {count} data keys; the new master key ({}) is in {}",
            new.id(),
            path.display()
        );
    } else {
        println!(
            "re-wrapped {count} data keys with master key {}.\nSet HERALD_MASTER_KEY to the new key below on every process (and HERALD_PREVIOUS_MASTER_KEY to the old one until all have restarted):\n{}",
            new.id(),
            encoded.expose_secret()
        );
    }
    Ok(())
}
