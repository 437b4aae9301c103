//! Bluesky accounts of tenants: connecting one (resolve the handle, log in
//! for real, seal the app password with the tenant's data key) and the
//! session cache the publisher and the collector share. Sessions (access and
//! refresh tokens) are kept sealed in `connection_sessions`, refreshed by the
//! client as they expire, and re-created from the sealed app password only
//! when the platform refuses them.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use domain::connection::{Connection, connection_id};
use domain::handle::Handle;
use domain::sealed::Sealed;
use projections::{Database, Keyring, Scope, StoreError};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::bluesky::{self, BlueskyError, Client, ErrorKind};

/// Where handles are resolved when the user names no server.
#[derive(Debug, Clone)]
pub struct Directory {
    /// Service asked to resolve handles (e.g. https://bsky.social).
    pub default_service: String,
    /// PLC directory for `did:plc` documents (e.g. https://plc.directory).
    pub plc_url: String,
}

impl Default for Directory {
    fn default() -> Self {
        Self {
            default_service: "https://bsky.social".into(),
            plc_url: "https://plc.directory".into(),
        }
    }
}

/// The sealed part of a connection.
#[derive(Serialize, Deserialize)]
struct Credentials {
    identifier: String,
    app_password: String,
}

/// A verified account, ready to be recorded as a connection.
#[derive(Debug)]
pub struct Verified {
    pub connection_id: Uuid,
    pub handle: Handle,
    pub did: String,
    pub service_url: String,
    /// The app password, sealed with the tenant's key.
    pub credentials: Sealed,
}

/// Why an account could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Bluesky(#[from] BlueskyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Connects accounts and hands out logged-in clients, one per connection.
#[derive(Clone)]
pub struct Accounts {
    db: Database,
    keyring: Keyring,
    http: reqwest::Client,
    directory: Directory,
    clients: Arc<Mutex<HashMap<Uuid, Arc<Client>>>>,
    /// Digest of the session last written per connection: an unchanged
    /// session is not sealed and written again after every post.
    saved: Arc<Mutex<HashMap<Uuid, [u8; 32]>>>,
}

impl Accounts {
    pub fn new(db: Database, keyring: Keyring, directory: Directory) -> Result<Self, BlueskyError> {
        Ok(Self {
            db,
            keyring,
            http: bluesky::http_client()?,
            directory,
            clients: Arc::default(),
            saved: Arc::default(),
        })
    }

    /// Resolves `handle` (at `service_url` if given), logs in with the app
    /// password to prove it works, seals it and caches the session. Nothing is
    /// recorded when any step fails.
    pub async fn verify(
        &self,
        tenant: Uuid,
        handle: &Handle,
        app_password: &SecretString,
        service_url: Option<&str>,
    ) -> Result<Verified, AccountError> {
        let account = bluesky::resolve(
            &self.http,
            handle.as_str(),
            service_url,
            &self.directory.default_service,
            &self.directory.plc_url,
        )
        .await?;
        let client = Client::login(
            self.http.clone(),
            &account.pds,
            &account.did,
            app_password.expose_secret(),
        )
        .await?;
        let credentials = serde_json::to_string(&Credentials {
            identifier: account.did.clone(),
            app_password: app_password.expose_secret().to_string(),
        })
        .expect("credentials serialize");
        let sealed = self
            .keyring
            .seal(&Scope::Tenant(tenant), &credentials)
            .await?;
        let id = connection_id(tenant, &account.did);
        let client = Arc::new(client);
        self.save_session(id, tenant, &client).await?;
        self.clients.lock().await.insert(id, client);
        Ok(Verified {
            connection_id: id,
            handle: handle.clone(),
            did: account.did,
            service_url: account.pds,
            credentials: sealed,
        })
    }

    /// A logged-in client for connection `id`: cached, else resumed from the
    /// sealed session, else logged in with the sealed app password.
    pub async fn client(
        &self,
        id: Uuid,
        connection: &Connection,
    ) -> Result<Arc<Client>, AccountError> {
        if let Some(client) = self.clients.lock().await.get(&id) {
            return Ok(client.clone());
        }
        let tenant = connection.tenant_id.unwrap_or_default();
        let saved: Option<(String,)> =
            sqlx::query_as("SELECT session FROM connection_sessions WHERE connection_id = $1")
                .bind(id.to_string())
                .fetch_optional(&self.db.any)
                .await
                .map_err(StoreError::from)?;
        let resumed = match saved {
            Some((sealed,)) => {
                let json = self.keyring.reveal(&Sealed::from_stored(sealed)).await?;
                let digest: [u8; 32] = Sha256::digest(json.as_bytes()).into();
                self.saved.lock().await.insert(id, digest);
                Client::resume(self.http.clone(), &connection.service_url, &json).ok()
            }
            None => None,
        };
        let client = match resumed {
            Some(client) => Arc::new(client),
            None => self.log_in(id, tenant, connection).await?,
        };
        self.clients.lock().await.insert(id, client.clone());
        Ok(client)
    }

    /// Logs in anew with the sealed app password (after the platform refused
    /// the cached session).
    pub async fn log_in(
        &self,
        id: Uuid,
        tenant: Uuid,
        connection: &Connection,
    ) -> Result<Arc<Client>, AccountError> {
        let sealed = connection.credentials.as_ref().ok_or_else(|| {
            BlueskyError::new(ErrorKind::Auth, "the connection has no credentials")
        })?;
        let plain = self.keyring.reveal(sealed).await?;
        let credentials: Credentials = serde_json::from_str(&plain).map_err(|_| {
            BlueskyError::new(ErrorKind::Auth, "the stored credentials are unreadable")
        })?;
        let client = Arc::new(
            Client::login(
                self.http.clone(),
                &connection.service_url,
                &credentials.identifier,
                &credentials.app_password,
            )
            .await?,
        );
        self.save_session(id, tenant, &client).await?;
        self.clients.lock().await.insert(id, client.clone());
        Ok(client)
    }

    /// Drops the cached client of `id` (its session was refused).
    pub async fn forget(&self, id: Uuid) {
        self.clients.lock().await.remove(&id);
        self.saved.lock().await.remove(&id);
        let _ = sqlx::query("DELETE FROM connection_sessions WHERE connection_id = $1")
            .bind(id.to_string())
            .execute(&self.db.any)
            .await;
    }

    /// Stores the client's current session sealed, if it has one (the client
    /// refreshes tokens as they expire; this keeps the refreshed ones).
    pub async fn save_session(
        &self,
        id: Uuid,
        tenant: Uuid,
        client: &Client,
    ) -> Result<(), StoreError> {
        let Some(json) = client.session_json().await else {
            return Ok(());
        };
        let digest: [u8; 32] = Sha256::digest(json.as_bytes()).into();
        if self.saved.lock().await.get(&id) == Some(&digest) {
            return Ok(());
        }
        let sealed = self.keyring.seal(&Scope::Tenant(tenant), &json).await?;
        sqlx::query(
            "INSERT INTO connection_sessions (connection_id, tenant_id, session, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (connection_id) DO UPDATE SET session = excluded.session, updated_at = excluded.updated_at",
        )
        .bind(id.to_string())
        .bind(tenant.to_string())
        .bind(sealed.as_str())
        .bind(projections::micros(Utc::now()))
        .execute(&self.db.any)
        .await?;
        self.saved.lock().await.insert(id, digest);
        Ok(())
    }

    /// The shared HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}
