//! Where settings come from: the defaults, the settings file, `.env`, the
//! environment and the command line, merged by figment; one row of
//! [`SETTINGS`] per setting names its variable and its flag.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context as _;
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::Value;

use super::model::Settings;

/// The file read when neither `--config` nor `HERALD_CONFIG` names one.
pub const DEFAULT_FILE: &str = "herald.toml";

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
        "node_id",
        "HERALD_NODE_ID",
        "node-id",
        One,
        "This process's node id, unique per process and kept across restarts",
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
        "http.header_read_timeout_seconds",
        "HERALD_HEADER_READ_TIMEOUT_SECONDS",
        "header-read-timeout-seconds",
        One,
        "Seconds a client has to send a request's headers before its connection is closed",
    ),
    setting(
        "http.idle_timeout_seconds",
        "HERALD_IDLE_TIMEOUT_SECONDS",
        "idle-timeout-seconds",
        One,
        "Seconds a kept-alive connection may wait for its next request",
    ),
    setting(
        "http.max_connections_per_ip",
        "HERALD_MAX_CONNECTIONS_PER_IP",
        "max-connections-per-ip",
        One,
        "Open connections allowed per client (TCP peer) address",
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
        "identity.sign_ups_per_hour",
        "HERALD_SIGN_UPS_PER_HOUR",
        "sign-ups-per-hour",
        One,
        "Sign-ups (new organisations) allowed per client IP and hour",
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
