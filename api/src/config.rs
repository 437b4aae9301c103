//! Configuration: one typed struct, from command-line flags or `HERALD_…`
//! environment variables (flags win), with defaults that need no setup.

use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::SecretString;

/// Settings shared by every subcommand that touches the database or serves.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[arg(long, env = "HERALD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// `sqlite://FILE` (embedded, the default) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://herald.db",
        hide_env_values = true
    )]
    pub database_url: SecretString,
    /// Directory for files Herald keeps besides the database.
    #[arg(long, env = "HERALD_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "HERALD_MAX_BODY_BYTES", default_value_t = 1_048_576)]
    pub max_body_bytes: usize,
    /// Connections per database pool.
    #[arg(long, env = "HERALD_DB_POOL", default_value_t = 16)]
    pub db_pool: u32,
    /// How long an access token lives, in seconds.
    #[arg(long, env = "HERALD_ACCESS_TTL_SECONDS", default_value_t = 900)]
    pub access_ttl_seconds: i64,
    /// Master key (base64 of 32 bytes) wrapping the data keys. Without it,
    /// `<data-dir>/master.key` is used, and created on the embedded database.
    #[arg(long, env = "HERALD_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<SecretString>,
    /// The previous master key, still accepted while a rotation rolls out.
    #[arg(long, env = "HERALD_PREVIOUS_MASTER_KEY", hide_env_values = true)]
    pub previous_master_key: Option<SecretString>,
    /// SMTP server for outgoing mail: `smtp://host:port`, with `?tls=required`
    /// for STARTTLS, or `smtps://host:port`; `user:password@` to log in.
    /// Without it, mails are written to `<data dir>/outbox/`.
    #[arg(long, env = "HERALD_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<SecretString>,
    /// Sender of outgoing mail.
    #[arg(
        long,
        env = "HERALD_MAIL_FROM",
        default_value = "Herald <herald@localhost>"
    )]
    pub mail_from: String,
    /// The URL clients reach Herald at; an `https://` URL turns on HSTS.
    #[arg(long, env = "HERALD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Herald runs behind one reverse proxy: trust its `X-Forwarded-Proto`
    /// (HSTS) and take the client's IP from the last `X-Forwarded-For` entry
    /// (rate limits). Leave off when clients connect directly, or they could
    /// choose their own address (`true`/`false`, `yes`/`no`, `1`/`0`).
    #[arg(
        long,
        env = "HERALD_TRUST_PROXY",
        default_value_t = false,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub trust_proxy: bool,
    /// Display registrations (`POST /display/v1/register`) allowed per
    /// client IP and minute.
    #[arg(
        long,
        env = "HERALD_DISPLAY_REGISTRATIONS_PER_MINUTE",
        default_value_t = 10
    )]
    pub display_registrations_per_minute: u32,
    /// Origins allowed to call the API from a browser (comma-separated,
    /// e.g. `https://app.example.org`); none when empty.
    #[arg(long, env = "HERALD_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Server asked to resolve Bluesky handles when `connectBluesky` names
    /// none.
    #[arg(
        long,
        env = "HERALD_BLUESKY_SERVICE",
        default_value = "https://bsky.social"
    )]
    pub bluesky_service: String,
    /// PLC directory for `did:plc` documents.
    #[arg(long, env = "HERALD_PLC_URL", default_value = "https://plc.directory")]
    pub plc_url: String,
    /// Attempts per occurrence before a post is FAILED (dead letter).
    #[arg(long, env = "HERALD_PUBLISH_MAX_ATTEMPTS", default_value_t = 5)]
    pub publish_max_attempts: u32,
    /// Upper bound of the first retry delay in milliseconds; doubles per
    /// attempt (full jitter), capped at ten minutes.
    #[arg(long, env = "HERALD_PUBLISH_RETRY_BASE_MS", default_value_t = 2000)]
    pub publish_retry_base_ms: u64,
    /// How long a worker's claim on a post holds before another worker may
    /// take over (a crashed worker's posts resume after this).
    #[arg(long, env = "HERALD_PUBLISH_LEASE_SECONDS", default_value_t = 60)]
    pub publish_lease_seconds: u64,
    /// Posts of one connection published at once by one worker process.
    #[arg(long, env = "HERALD_PUBLISH_PER_CONNECTION", default_value_t = 8)]
    pub publish_per_connection: usize,
    /// Object store for uploaded media: `s3://bucket[/prefix]` (credentials
    /// and, for S3-compatible servers, `AWS_ENDPOINT` from `AWS_*`
    /// variables); `<data-dir>/media` when unset.
    #[arg(long, env = "HERALD_MEDIA_URL")]
    pub media_url: Option<String>,
    /// Seconds between engagement samples of published posts.
    #[arg(
        long,
        env = "HERALD_ENGAGEMENT_INTERVAL_SECONDS",
        default_value_t = 300
    )]
    pub engagement_interval_seconds: u64,
    /// An AppView's public API to read engagement from directly (e.g. a
    /// local one). Without it, counts are read through each account's PDS,
    /// proxied to `HERALD_APPVIEW_DID`.
    #[arg(long, env = "HERALD_APPVIEW_URL")]
    pub appview_url: Option<String>,
    /// DID of the AppView a PDS forwards engagement reads to.
    #[arg(
        long,
        env = "HERALD_APPVIEW_DID",
        default_value = "did:web:api.bsky.app"
    )]
    pub appview_did: String,
}

impl Config {
    /// Where Bluesky handles are resolved.
    pub fn directory(&self) -> workers::accounts::Directory {
        workers::accounts::Directory {
            default_service: self.bluesky_service.clone(),
            plc_url: self.plc_url.clone(),
        }
    }

    /// The object store of uploaded media.
    pub fn media_store(&self) -> anyhow::Result<workers::media::MediaStore> {
        Ok(workers::media::MediaStore::from_config(
            self.media_url.as_deref(),
            &self.data_dir,
        )?)
    }

    /// How the publish scheduler runs.
    pub fn publisher(&self) -> workers::publisher::PublisherConfig {
        let defaults = workers::publisher::PublisherConfig::default();
        workers::publisher::PublisherConfig {
            per_connection: self.publish_per_connection.max(1),
            lease: std::time::Duration::from_secs(self.publish_lease_seconds.max(1)),
            retry: domain::publish::RetryPolicy {
                max_attempts: self.publish_max_attempts.max(1),
                base: chrono::Duration::milliseconds(self.publish_retry_base_ms as i64),
                ..defaults.retry
            },
            ..defaults
        }
    }

    /// How the engagement collector runs.
    pub fn collector(&self) -> workers::engagement::CollectorConfig {
        workers::engagement::CollectorConfig {
            interval: std::time::Duration::from_secs(self.engagement_interval_seconds.max(1)),
            appview: match &self.appview_url {
                Some(url) => workers::bluesky::Appview::Direct { url: url.clone() },
                None => workers::bluesky::Appview::Proxy {
                    did: self.appview_did.clone(),
                },
            },
        }
    }
}

impl Config {
    /// Defaults with an ephemeral port, for tests and embedding.
    pub fn new(database_url: &str) -> Self {
        Self {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            database_url: database_url.to_string().into(),
            // Per database, so tests never share or litter a key file.
            data_dir: std::env::temp_dir().join(format!(
                "herald-data-{}",
                hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(database_url.as_bytes())[..8])
            )),
            max_body_bytes: 1_048_576,
            db_pool: 16,
            access_ttl_seconds: 900,
            master_key: None,
            previous_master_key: None,
            smtp_url: None,
            mail_from: "Herald <herald@localhost>".to_string(),
            public_url: None,
            trust_proxy: false,
            display_registrations_per_minute: 10,
            cors_origins: Vec::new(),
            bluesky_service: "https://bsky.social".to_string(),
            plc_url: "https://plc.directory".to_string(),
            publish_max_attempts: 5,
            publish_retry_base_ms: 2000,
            publish_lease_seconds: 60,
            publish_per_connection: 8,
            media_url: None,
            engagement_interval_seconds: 300,
            appview_url: None,
            appview_did: "did:web:api.bsky.app".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Config;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    #[test]
    fn proxy_trust_is_off_unless_asked_for() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).unwrap().config.trust_proxy;
        assert!(!parse(&["herald"]));
        assert!(parse(&["herald", "--trust-proxy", "true"]));
        assert!(!parse(&["herald", "--trust-proxy", "no"]));
        assert!(!Config::new("sqlite://x.db").trust_proxy);
    }
}
