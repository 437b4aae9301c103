//! The settings of a Herald process: one nested struct, each default written
//! once, and what the rest of Herald builds from it.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::secret;

/// Every setting of a Herald process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Directory for files Herald keeps besides the database.
    pub data_dir: PathBuf,
    /// Names this process for its leases. Give each process its own and keep
    /// it across restarts (a StatefulSet pod name): a restart then takes its
    /// predecessor's leases at once, even on another host.
    pub node_id: Option<String>,
    pub database: DatabaseSettings,
    pub http: HttpSettings,
    pub identity: IdentitySettings,
    pub mail: MailSettings,
    pub publishing: PublishingSettings,
    pub bluesky: BlueskySettings,
    pub media: MediaSettings,
    pub signage: SignageSettings,
}

/// Where the event store and the read models live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://FILE` (embedded) or `postgres://…`.
    #[serde(with = "secret")]
    pub url: SecretString,
    /// Connections per pool.
    pub pool: u32,
}

/// The HTTP server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Address the server listens on.
    pub listen: SocketAddr,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// The URL clients reach Herald at; an `https://` URL turns on HSTS.
    pub public_url: Option<String>,
    /// Whether one reverse proxy's `X-Forwarded-*` headers are trusted.
    pub trust_proxy: bool,
    /// Origins allowed to call the API from a browser.
    pub cors_origins: Vec<String>,
    /// Seconds a client has to send a request's head (request line and
    /// headers), from its first byte, or from accepting a new connection.
    pub header_read_timeout_seconds: u64,
    /// Seconds a kept-alive connection may wait for its next request.
    pub idle_timeout_seconds: u64,
    /// Open connections allowed per client (TCP peer) address.
    pub max_connections_per_ip: usize,
}

/// Sign-in and the keys that seal personal data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentitySettings {
    /// How long an access token lives, in seconds.
    pub access_ttl_seconds: i64,
    /// Master key (base64 of 32 bytes); `<data_dir>/master.key` without it.
    #[serde(with = "secret::option")]
    pub master_key: Option<SecretString>,
    /// The previous master key, accepted while a rotation rolls out.
    #[serde(with = "secret::option")]
    pub previous_master_key: Option<SecretString>,
    /// Sign-ups (new organisations) allowed per client IP and hour.
    pub sign_ups_per_hour: u32,
}

/// Outgoing mail.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailSettings {
    /// SMTP server; the file outbox under the data directory without it.
    #[serde(with = "secret::option")]
    pub smtp_url: Option<SecretString>,
    /// Sender of outgoing mail.
    pub from: String,
}

/// The publish scheduler.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublishingSettings {
    /// Attempts per occurrence before a post is FAILED.
    pub max_attempts: u32,
    /// Upper bound of the first retry delay, in milliseconds.
    pub retry_base_ms: u64,
    /// How long a worker's claim on a post holds, in seconds.
    pub lease_seconds: u64,
    /// Posts of one connection published at once by one worker process.
    pub per_connection: usize,
}

/// The Bluesky network: handle resolution and engagement reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlueskySettings {
    /// Server asked to resolve handles when a connection names none.
    pub service: String,
    /// PLC directory for `did:plc` documents.
    pub plc_url: String,
    /// An AppView's public API to read engagement from directly.
    pub appview_url: Option<String>,
    /// DID of the AppView a PDS forwards engagement reads to.
    pub appview_did: String,
    /// Seconds between engagement samples of published posts.
    pub engagement_interval_seconds: u64,
}

/// Uploaded media.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaSettings {
    /// Object store: `s3://bucket[/prefix]`; `<data_dir>/media` without it.
    pub url: Option<String>,
}

/// Signage displays.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignageSettings {
    /// Display registrations allowed per client IP and minute.
    pub registrations_per_minute: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            node_id: None,
            database: DatabaseSettings::default(),
            http: HttpSettings::default(),
            identity: IdentitySettings::default(),
            mail: MailSettings::default(),
            publishing: PublishingSettings::default(),
            bluesky: BlueskySettings::default(),
            media: MediaSettings::default(),
            signage: SignageSettings::default(),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("sqlite://herald.db"),
            pool: 16,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1_048_576,
            public_url: None,
            trust_proxy: false,
            cors_origins: Vec::new(),
            header_read_timeout_seconds: 10,
            idle_timeout_seconds: 60,
            max_connections_per_ip: 256,
        }
    }
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            access_ttl_seconds: 900,
            master_key: None,
            previous_master_key: None,
            sign_ups_per_hour: crate::identity::ratelimit::Policy::SIGN_UP_PER_IP.max_hits,
        }
    }
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            smtp_url: None,
            from: "Herald <herald@localhost>".to_string(),
        }
    }
}

impl Default for PublishingSettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            retry_base_ms: 2000,
            lease_seconds: 60,
            per_connection: 8,
        }
    }
}

impl Default for BlueskySettings {
    fn default() -> Self {
        Self {
            service: "https://bsky.social".to_string(),
            plc_url: "https://plc.directory".to_string(),
            appview_url: None,
            appview_did: "did:web:api.bsky.app".to_string(),
            engagement_interval_seconds: 300,
        }
    }
}

impl Default for SignageSettings {
    fn default() -> Self {
        Self {
            registrations_per_minute: 10,
        }
    }
}

impl Settings {
    /// The defaults with an ephemeral port and a data directory of its own
    /// per database, for tests and embedding.
    pub fn for_database(database_url: &str) -> Self {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(database_url.as_bytes());
        let mut settings = Self {
            // Per database, so tests never share or litter a key file.
            data_dir: std::env::temp_dir()
                .join(format!("herald-data-{}", hex::encode(&digest[..8]))),
            ..Self::default()
        };
        settings.database.url = SecretString::from(database_url.to_string());
        settings.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        settings
    }

    /// The effective settings as TOML, secrets redacted (`herald config`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("settings serialize to TOML")
    }

    /// The base URL for links in mails.
    pub fn public_url(&self) -> String {
        self.http
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.http.listen))
    }

    /// Connects to the configured database and applies migrations.
    pub async fn connect(&self) -> anyhow::Result<projections::Database> {
        let db =
            projections::Database::connect(self.database.url.expose_secret(), self.database.pool)
                .await
                .context("cannot connect to the database")?;
        db.migrate().await.context("cannot apply migrations")?;
        Ok(db)
    }

    /// Where Bluesky handles are resolved.
    pub fn directory(&self) -> workers::accounts::Directory {
        workers::accounts::Directory {
            default_service: self.bluesky.service.clone(),
            plc_url: self.bluesky.plc_url.clone(),
        }
    }

    /// The object store of uploaded media.
    pub fn media_store(&self) -> anyhow::Result<workers::media::MediaStore> {
        Ok(workers::media::MediaStore::from_config(
            self.media.url.as_deref(),
            &self.data_dir,
        )?)
    }

    /// How the publish scheduler runs.
    pub fn publisher(&self) -> workers::publisher::PublisherConfig {
        let defaults = workers::publisher::PublisherConfig::default();
        let p = &self.publishing;
        workers::publisher::PublisherConfig {
            per_connection: p.per_connection.max(1),
            lease: std::time::Duration::from_secs(p.lease_seconds.max(1)),
            retry: domain::publish::RetryPolicy {
                max_attempts: p.max_attempts.max(1),
                base: chrono::Duration::milliseconds(p.retry_base_ms as i64),
                ..defaults.retry
            },
            ..defaults
        }
    }

    /// How the engagement collector runs.
    pub fn collector(&self) -> workers::engagement::CollectorConfig {
        let b = &self.bluesky;
        workers::engagement::CollectorConfig {
            interval: std::time::Duration::from_secs(b.engagement_interval_seconds.max(1)),
            appview: match &b.appview_url {
                Some(url) => workers::bluesky::Appview::Direct { url: url.clone() },
                None => workers::bluesky::Appview::Proxy {
                    did: b.appview_did.clone(),
                },
            },
        }
    }
}
