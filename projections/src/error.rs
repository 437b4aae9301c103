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
    /// The event store (cqrs-es) failed; the source is the database or
    /// decoding error underneath.
    #[error("event store error")]
    Persistence(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A failure described only by text (no error underneath to keep).
    #[error("event store error: {0}")]
    EventStore(String),
    #[error("unknown projection {name:?}; known: {known}")]
    UnknownProjection { name: String, known: String },
    #[error("projection {0} is being run by another process; stop it first")]
    ProjectionBusy(&'static str),
    #[error("unsupported database URL (expected postgres:// or sqlite://)")]
    UnsupportedUrl,
    #[error("encryption error")]
    Crypto(#[from] CryptoError),
    #[error("the data key was destroyed (erased)")]
    Erased,
    #[error("a push of {bytes} bytes does not fit in one PostgreSQL notification")]
    PushTooLarge { bytes: usize },
    #[error("a push message cannot be encoded")]
    PushEncode(#[source] serde_json::Error),
    #[error("a projection defers index {0}, which the schema does not have")]
    UnknownIndex(String),
    #[error("another rebuild of the read models is running")]
    RebuildBusy,
    #[error("projection {0}'s lease moved during the swap; the live read model is unchanged")]
    SwapFenced(&'static str),
    #[error("the rebuild's shadow file")]
    Shadow(#[source] std::io::Error),
    #[error("a replay applier stopped")]
    ReplayApplier(#[source] tokio::task::JoinError),
}

impl StoreError {
    /// Whether the database could not be reached (a dropped connection, a
    /// server shutting down or starting, no connection free in time, a
    /// SQLite file locked past its busy timeout): the caller may retry
    /// later, nothing is wrong with the request.
    pub fn is_unavailable(&self) -> bool {
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(error) = next {
            if let Some(sqlx) = error.downcast_ref::<sqlx::Error>() {
                return unreachable_database(sqlx);
            }
            next = error.source();
        }
        false
    }
}

/// See [`StoreError::is_unavailable`].
pub fn unreachable_database(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => match e.code().as_deref() {
            // PostgreSQL: connection exceptions (class 08), shutting down
            // or starting up (57P01–57P03), out of connections (53300).
            Some(code) if code.starts_with("08") => true,
            Some("57P01" | "57P02" | "57P03" | "53300") => true,
            // SQLite: SQLITE_BUSY and SQLITE_LOCKED (and their extended
            // codes, never five characters long as SQLSTATEs are) once the
            // busy timeout ran out.
            Some(code) if code.len() < 5 => {
                matches!(code.parse::<i32>().map(|c| c & 0xff), Ok(5 | 6))
            }
            Some(_) => false,
            None => false,
        },
        _ => false,
    }
}

/// Errors of the crypto layer (never carrying key material or plaintext).
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("HERALD_MASTER_KEY must be 32 bytes in base64")]
    BadMasterKey,
    #[error("data key {0} is wrapped by an unknown master key {1}")]
    UnknownMaster(String, String),
    #[error("sealed value or wrapped key is corrupt")]
    Corrupt,
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use cqrs_es::AggregateError;

    use super::StoreError;
    use crate::CommandError;

    /// Each error's message, then its sources', as a log line shows them.
    fn chain(error: &dyn Error) -> Vec<String> {
        let mut messages = vec![error.to_string()];
        let mut next = error.source();
        while let Some(e) = next {
            messages.push(e.to_string());
            next = e.source();
        }
        messages
    }

    #[test]
    fn a_store_error_keeps_its_cause_chain() {
        let cause = sqlx::Error::PoolTimedOut.to_string();
        let database = StoreError::from(sqlx::Error::PoolTimedOut);
        assert_eq!(chain(&database), ["database error", cause.as_str()]);

        // What postgres-es and sqlite-es return when the database fails.
        let event_store = crate::infra::store::store_error::<std::io::Error>(
            AggregateError::DatabaseConnectionError(Box::new(sqlx::Error::PoolTimedOut)),
        );
        assert_eq!(chain(&event_store), ["event store error", cause.as_str()]);
        let source = event_store.source().expect("a source");
        assert!(source.downcast_ref::<sqlx::Error>().is_some());

        let bad_json = serde_json::from_str::<i64>("x").unwrap_err();
        let decode = StoreError::Decode {
            position: "0/7".into(),
            source: serde_json::from_str::<i64>("x").unwrap_err(),
        };
        assert_eq!(
            chain(&decode),
            [
                "stored event 0/7 cannot be decoded".to_string(),
                bad_json.to_string()
            ]
        );

        // A command's store failure shows the same chain.
        let command = CommandError::<std::io::Error>::from(event_store);
        assert_eq!(chain(&command)[1..], [cause]);
    }
}
