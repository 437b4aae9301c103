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
}

impl Config {
    /// Defaults with an ephemeral port, for tests and embedding.
    pub fn new(database_url: &str) -> Self {
        Self {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            database_url: database_url.to_string().into(),
            data_dir: PathBuf::from("data"),
            max_body_bytes: 1_048_576,
            db_pool: 16,
            access_ttl_seconds: 900,
        }
    }
}
