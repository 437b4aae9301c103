//! Settings: one typed, nested struct, each default written once (the
//! `Default` impls below), layered from the lowest to the highest:
//!
//! 1. the defaults, which need no setup (SQLite in the working directory);
//! 2. `herald.toml` in the working directory, or the file `--config` (or
//!    `HERALD_CONFIG`) names, in the shape `herald config` prints;
//! 3. a `.env` file in the working directory (`NAME=value` lines);
//! 4. environment variables;
//! 5. command-line flags.
//!
//! Every setting has one row in [`SETTINGS`]: its key in the file, its
//! environment variable and its flag. Secrets (the database URL, master
//! keys, the SMTP URL) are [`SecretString`]s: `Debug` and `herald config`
//! show them as `[redacted]`, and no error names their value. Figment does
//! the layering; values from `.env`, the environment and flags are strings,
//! read leniently (`yes`/`no`, `1`/`0` for switches; comma-separated
//! lists).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::Value;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The file read when neither `--config` nor `HERALD_CONFIG` names one.
pub const DEFAULT_FILE: &str = "herald.toml";
/// What a secret shows instead of its value.
pub const REDACTED: &str = "[redacted]";

/// Every setting of a Herald process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Directory for files Herald keeps besides the database.
    pub data_dir: PathBuf,
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
        }
    }
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            access_ttl_seconds: 900,
            master_key: None,
            previous_master_key: None,
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

/// How a setting's text from `.env`, the environment or a flag is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One value.
    Value,
    /// A comma-separated list.
    List,
    /// One value that is never shown.
    Secret,
}

/// One setting's names outside the file.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Its dotted key in [`Settings`] (and in `herald.toml`).
    pub key: &'static str,
    /// Its environment variable.
    pub env: &'static str,
    /// Its command-line flag, without the dashes.
    pub flag: &'static str,
    /// How its text is read.
    pub kind: Kind,
    /// One line for `--help`.
    pub help: &'static str,
}

const fn setting(
    key: &'static str,
    env: &'static str,
    flag: &'static str,
    kind: Kind,
    help: &'static str,
) -> Setting {
    Setting {
        key,
        env,
        flag,
        kind,
        help,
    }
}

use Kind::{List, Secret, Value as One};

/// Every setting, with its environment variable and flag.
pub const SETTINGS: &[Setting] = &[
    setting(
        "data_dir",
        "HERALD_DATA_DIR",
        "data-dir",
        One,
        "Directory for files Herald keeps besides the database",
    ),
    setting(
        "database.url",
        "DATABASE_URL",
        "database-url",
        Secret,
        "`sqlite://FILE` (embedded, the default) or `postgres://…`",
    ),
    setting(
        "database.pool",
        "HERALD_DB_POOL",
        "db-pool",
        One,
        "Connections per database pool",
    ),
    setting(
        "http.listen",
        "HERALD_LISTEN",
        "listen",
        One,
        "Address the HTTP server listens on",
    ),
    setting(
        "http.max_body_bytes",
        "HERALD_MAX_BODY_BYTES",
        "max-body-bytes",
        One,
        "Largest accepted request body, in bytes",
    ),
    setting(
        "http.public_url",
        "HERALD_PUBLIC_URL",
        "public-url",
        One,
        "The URL clients reach Herald at; an https:// URL turns on HSTS",
    ),
    setting(
        "http.trust_proxy",
        "HERALD_TRUST_PROXY",
        "trust-proxy",
        One,
        "Trust one reverse proxy's X-Forwarded-Proto and X-Forwarded-For (true/false, yes/no, 1/0)",
    ),
    setting(
        "http.cors_origins",
        "HERALD_CORS_ORIGINS",
        "cors-origins",
        List,
        "Origins allowed to call the API from a browser (comma-separated)",
    ),
    setting(
        "identity.access_ttl_seconds",
        "HERALD_ACCESS_TTL_SECONDS",
        "access-ttl-seconds",
        One,
        "How long an access token lives, in seconds",
    ),
    setting(
        "identity.master_key",
        "HERALD_MASTER_KEY",
        "master-key",
        Secret,
        "Master key (base64 of 32 bytes); <data-dir>/master.key without it",
    ),
    setting(
        "identity.previous_master_key",
        "HERALD_PREVIOUS_MASTER_KEY",
        "previous-master-key",
        Secret,
        "The previous master key, accepted while a rotation rolls out",
    ),
    setting(
        "mail.smtp_url",
        "HERALD_SMTP_URL",
        "smtp-url",
        Secret,
        "SMTP server (smtp://host:port[?tls=required] or smtps://…); the file outbox without it",
    ),
    setting(
        "mail.from",
        "HERALD_MAIL_FROM",
        "mail-from",
        One,
        "Sender of outgoing mail",
    ),
    setting(
        "publishing.max_attempts",
        "HERALD_PUBLISH_MAX_ATTEMPTS",
        "publish-max-attempts",
        One,
        "Attempts per occurrence before a post is FAILED",
    ),
    setting(
        "publishing.retry_base_ms",
        "HERALD_PUBLISH_RETRY_BASE_MS",
        "publish-retry-base-ms",
        One,
        "Upper bound of the first retry delay in milliseconds (doubles per attempt)",
    ),
    setting(
        "publishing.lease_seconds",
        "HERALD_PUBLISH_LEASE_SECONDS",
        "publish-lease-seconds",
        One,
        "How long a worker's claim on a post holds, in seconds",
    ),
    setting(
        "publishing.per_connection",
        "HERALD_PUBLISH_PER_CONNECTION",
        "publish-per-connection",
        One,
        "Posts of one connection published at once by one worker process",
    ),
    setting(
        "bluesky.service",
        "HERALD_BLUESKY_SERVICE",
        "bluesky-service",
        One,
        "Server that resolves Bluesky handles when a connection names none",
    ),
    setting(
        "bluesky.plc_url",
        "HERALD_PLC_URL",
        "plc-url",
        One,
        "PLC directory for did:plc documents",
    ),
    setting(
        "bluesky.appview_url",
        "HERALD_APPVIEW_URL",
        "appview-url",
        One,
        "An AppView's public API to read engagement from directly",
    ),
    setting(
        "bluesky.appview_did",
        "HERALD_APPVIEW_DID",
        "appview-did",
        One,
        "DID of the AppView a PDS forwards engagement reads to",
    ),
    setting(
        "bluesky.engagement_interval_seconds",
        "HERALD_ENGAGEMENT_INTERVAL_SECONDS",
        "engagement-interval-seconds",
        One,
        "Seconds between engagement samples of published posts",
    ),
    setting(
        "media.url",
        "HERALD_MEDIA_URL",
        "media-url",
        One,
        "Object store for uploads: s3://bucket[/prefix]; <data-dir>/media without it",
    ),
    setting(
        "signage.registrations_per_minute",
        "HERALD_DISPLAY_REGISTRATIONS_PER_MINUTE",
        "display-registrations-per-minute",
        One,
        "Display registrations allowed per client IP and minute",
    ),
];

/// The sources of a process's settings, before they are merged.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The settings file, and whether it must exist (it was named).
    pub file: Option<(PathBuf, bool)>,
    /// Variables from the `.env` file.
    pub dotenv: HashMap<String, String>,
    /// The process's environment.
    pub env: HashMap<String, String>,
    /// Flags given, by flag name.
    pub flags: HashMap<String, String>,
}

impl Sources {
    /// The settings file, `.env` and environment of this process, with
    /// `flags`; `file` names a settings file that must exist.
    pub fn of_process(
        file: Option<PathBuf>,
        flags: HashMap<String, String>,
    ) -> anyhow::Result<Self> {
        let named = file.or_else(|| std::env::var_os("HERALD_CONFIG").map(PathBuf::from));
        let file = match named {
            Some(path) => (path, true),
            None => (PathBuf::from(DEFAULT_FILE), false),
        };
        let dotenv = match dotenvy::from_path_iter(".env") {
            Ok(lines) => lines
                .collect::<Result<HashMap<_, _>, _>>()
                .context("cannot read .env")?,
            Err(e) if e.not_found() => HashMap::new(),
            Err(e) => return Err(e).context("cannot read .env"),
        };
        Ok(Self {
            file: Some(file),
            dotenv,
            env: std::env::vars().collect(),
            flags,
        })
    }

    /// The merged settings.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let mut figment = Figment::new();
        if let Some((path, required)) = &self.file {
            if path.exists() {
                figment = figment.merge(Toml::file_exact(path));
            } else if *required {
                anyhow::bail!("settings file {} not found", path.display());
            }
        }
        let layers = [
            (&self.dotenv, Source::Env),
            (&self.env, Source::Env),
            (&self.flags, Source::Flag),
        ];
        for (values, source) in layers {
            for setting in SETTINGS {
                let name = match source {
                    Source::Env => setting.env,
                    Source::Flag => setting.flag,
                };
                if let Some(raw) = values.get(name) {
                    figment = figment.merge(Serialized::default(setting.key, setting.read(raw)));
                }
            }
        }
        // Figment's errors name the key and the source, never the value.
        figment
            .extract_lossy()
            .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))
    }
}

#[derive(Clone, Copy)]
enum Source {
    Env,
    Flag,
}

impl Setting {
    fn read(&self, raw: &str) -> Value {
        match self.kind {
            Kind::List => Value::from(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect::<Vec<_>>(),
            ),
            Kind::Value | Kind::Secret => Value::from(raw.to_string()),
        }
    }
}

/// The settings flags of a subcommand: `--config FILE` and one flag per
/// row of [`SETTINGS`].
#[derive(Debug, Clone, Default)]
pub struct SettingsArgs {
    /// A settings file that must exist (instead of `herald.toml`).
    pub config: Option<PathBuf>,
    /// Flags given, by flag name.
    pub flags: HashMap<String, String>,
}

impl SettingsArgs {
    /// The merged settings of this process.
    pub fn load(&self) -> anyhow::Result<Settings> {
        Sources::of_process(self.config.clone(), self.flags.clone())?.settings()
    }
}

impl clap::FromArgMatches for SettingsArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut args = Self {
            config: matches.get_one::<PathBuf>("config").cloned(),
            flags: HashMap::new(),
        };
        for setting in SETTINGS {
            if let Some(value) = matches.get_one::<String>(setting.flag) {
                args.flags.insert(setting.flag.to_string(), value.clone());
            }
        }
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for SettingsArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let cmd = cmd.arg(
            clap::Arg::new("config")
                .long("config")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help(format!(
                    "Settings file (TOML, as `herald config` prints) [default: {DEFAULT_FILE} if present] [env: HERALD_CONFIG]"
                )),
        );
        SETTINGS.iter().fold(cmd, |cmd, setting| {
            cmd.arg(
                clap::Arg::new(setting.flag)
                    .long(setting.flag)
                    .value_name("VALUE")
                    .help(format!("{} [env: {}]", setting.help, setting.env)),
            )
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
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

/// Serde of secrets: read as text, written as [`REDACTED`].
mod secret {
    use secrecy::SecretString;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(crate::settings::REDACTED)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
        String::deserialize(d).map(SecretString::from)
    }

    pub mod option {
        use secrecy::SecretString;
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(_) => s.serialize_some(crate::settings::REDACTED),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<SecretString>, D::Error> {
            Ok(Option::<String>::deserialize(d)?
                .filter(|s| !s.is_empty())
                .map(SecretString::from))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> Sources {
        Sources::default()
    }

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn without_any_source_the_defaults_need_no_setup() {
        let s = sources().settings().unwrap();
        assert_eq!(s.database.url.expose_secret(), "sqlite://herald.db");
        assert_eq!(s.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.publishing.max_attempts, 5);
        assert!(!s.http.trust_proxy);
    }

    #[test]
    fn each_layer_overrides_the_one_below() {
        let dir = tempdir();
        let file = dir.join("herald.toml");
        std::fs::write(
            &file,
            "[publishing]\nmax_attempts = 2\nlease_seconds = 7\nper_connection = 3\n[mail]\nfrom = \"file <f@x>\"\n",
        )
        .unwrap();
        let s = Sources {
            file: Some((file, true)),
            dotenv: map(&[
                ("HERALD_PUBLISH_LEASE_SECONDS", "8"),
                ("HERALD_PUBLISH_PER_CONNECTION", "4"),
            ]),
            env: map(&[
                ("HERALD_PUBLISH_PER_CONNECTION", "5"),
                ("HERALD_LISTEN", "0.0.0.0:9"),
            ]),
            flags: map(&[("listen", "127.0.0.1:7")]),
        }
        .settings()
        .unwrap();
        assert_eq!(s.publishing.max_attempts, 2, "file over default");
        assert_eq!(s.publishing.lease_seconds, 8, ".env over file");
        assert_eq!(s.publishing.per_connection, 5, "environment over .env");
        assert_eq!(
            s.http.listen.to_string(),
            "127.0.0.1:7",
            "flag over environment"
        );
        assert_eq!(s.mail.from, "file <f@x>");
        assert_eq!(
            s.publishing.retry_base_ms, 2000,
            "untouched keys keep their default"
        );
    }

    #[test]
    fn switches_and_lists_read_the_way_people_write_them() {
        for (raw, expected) in [
            ("true", true),
            ("yes", true),
            ("1", true),
            ("no", false),
            ("0", false),
            ("false", false),
        ] {
            let s = Sources {
                env: map(&[("HERALD_TRUST_PROXY", raw)]),
                ..sources()
            };
            assert_eq!(s.settings().unwrap().http.trust_proxy, expected, "{raw}");
        }
        let s = Sources {
            env: map(&[(
                "HERALD_CORS_ORIGINS",
                "https://a.example, https://b.example",
            )]),
            ..sources()
        };
        assert_eq!(
            s.settings().unwrap().http.cors_origins,
            ["https://a.example", "https://b.example"]
        );
    }

    #[test]
    fn a_bad_value_names_the_setting_but_not_a_secret() {
        let err = Sources {
            env: map(&[
                ("HERALD_DB_POOL", "many"),
                ("DATABASE_URL", "postgres://u:hunter2@h/db"),
            ]),
            ..sources()
        }
        .settings()
        .unwrap_err()
        .to_string();
        assert!(err.contains("pool"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused() {
        let dir = tempdir();
        let file = dir.join("herald.toml");
        std::fs::write(&file, "[publishing]\nmax_atempts = 2\n").unwrap();
        let err = Sources {
            file: Some((file, true)),
            ..sources()
        }
        .settings()
        .unwrap_err()
        .to_string();
        assert!(err.contains("max_atempts"), "{err}");
    }

    #[test]
    fn a_named_file_must_exist_the_default_one_may_not() {
        let missing = tempdir().join("nope.toml");
        let named = Sources {
            file: Some((missing.clone(), true)),
            ..sources()
        };
        assert!(named.settings().is_err());
        let default = Sources {
            file: Some((missing, false)),
            ..sources()
        };
        assert!(default.settings().is_ok());
    }

    #[test]
    fn printed_settings_hide_secrets_and_read_back() {
        let s = Sources {
            env: map(&[
                ("DATABASE_URL", "postgres://u:hunter2@h/db"),
                ("HERALD_MASTER_KEY", "c2VjcmV0"),
                ("HERALD_SMTP_URL", "smtp://u:pw@mail:25"),
            ]),
            ..sources()
        }
        .settings()
        .unwrap();
        let shown = s.to_toml();
        for secret in ["hunter2", "c2VjcmV0", "pw@mail"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains(REDACTED));
        assert!(!format!("{s:?}").contains("hunter2"));
        // The printed form is a valid settings file.
        let dir = tempdir();
        let file = dir.join("herald.toml");
        std::fs::write(&file, &shown).unwrap();
        let again = Sources {
            file: Some((file, true)),
            ..sources()
        }
        .settings()
        .unwrap();
        assert_eq!(again.publishing.max_attempts, s.publishing.max_attempts);
    }

    #[test]
    fn every_flag_and_variable_is_unique_and_every_key_exists() {
        let mut flags = std::collections::HashSet::new();
        let mut envs = std::collections::HashSet::new();
        for setting in SETTINGS {
            assert!(flags.insert(setting.flag), "{}", setting.flag);
            assert!(envs.insert(setting.env), "{}", setting.env);
            // A value for the key must land in the struct: an unknown key
            // would be refused by `deny_unknown_fields`.
            let raw = match setting.key {
                "http.listen" => "127.0.0.1:1",
                "http.trust_proxy" => "true",
                k if k.ends_with("pool")
                    || k.ends_with("seconds")
                    || k.ends_with("bytes")
                    || k.ends_with("attempts")
                    || k.ends_with("_ms")
                    || k.ends_with("per_connection")
                    || k.ends_with("per_minute") =>
                {
                    "3"
                }
                _ => "x",
            };
            let s = Sources {
                flags: map(&[(setting.flag, raw)]),
                ..sources()
            };
            assert!(
                s.settings().is_ok(),
                "{}: {:?}",
                setting.key,
                s.settings().err()
            );
        }
    }

    #[test]
    fn flags_parse_from_the_command_line() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            settings: SettingsArgs,
        }
        let cli =
            Cli::try_parse_from(["herald", "--listen", "127.0.0.1:9", "--trust-proxy", "true"])
                .unwrap();
        let s = Sources {
            flags: cli.settings.flags,
            ..sources()
        }
        .settings()
        .unwrap();
        assert_eq!(s.http.listen.to_string(), "127.0.0.1:9");
        assert!(s.http.trust_proxy);
        assert!(!Settings::for_database("sqlite://x.db").http.trust_proxy);
    }

    fn tempdir() -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("herald-settings-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
