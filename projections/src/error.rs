//! Infrastructure failures of the store and the read side.

/// A failure of the database or of stored data, never a domain rejection.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored event {position} cannot be decoded")]
    Decode {
        position: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("event store error: {0}")]
    EventStore(String),
    #[error("unknown projection {name:?}; known: {known}")]
    UnknownProjection { name: String, known: String },
    #[error("projection {0} is being run by another process; stop it first")]
    ProjectionBusy(&'static str),
    #[error("unsupported database URL (expected postgres:// or sqlite://)")]
    UnsupportedUrl,
    #[error("encryption error")]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error("the data key was destroyed (erased)")]
    Erased,
    #[error("a push of {bytes} bytes does not fit in one PostgreSQL notification")]
    PushTooLarge { bytes: usize },
}
