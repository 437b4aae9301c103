//! The database handle: one pool for the event store of the configured backend,
//! and one `Any` pool for read models, checkpoints and sessions, whose SQL is
//! written once for both PostgreSQL and SQLite.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::StoreError;

/// The event-store pool of the configured backend.
#[derive(Clone, Debug)]
pub enum Backend {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Connections to Herald's database.
#[derive(Clone, Debug)]
pub struct Database {
    pub backend: Backend,
    /// Pool for the SQL shared by both backends.
    pub any: AnyPool,
    /// SQLite only: whose turn it is to write (see [`Database::write_turn`]).
    writer: Option<Arc<tokio::sync::Mutex<()>>>,
}

static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");
static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static COMMON: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/common");

impl Database {
    /// Connects to `url` (`postgres://…` or `sqlite://…`) with up to
    /// `max_connections` per pool. A SQLite file is created if missing.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(
                PgPoolOptions::new()
                    .max_connections(max_connections)
                    // A ping per checkout doubles a command's round trips;
                    // broken connections surface as errors and are retired
                    // by the lifetime limits instead.
                    .test_before_acquire(false)
                    .idle_timeout(Duration::from_secs(300))
                    .max_lifetime(Duration::from_secs(1800))
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await?,
            )
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30));
            Backend::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(max_connections.min(8))
                    .connect_with(options)
                    .await?,
            )
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let any = AnyPoolOptions::new()
            .max_connections(max_connections)
            .test_before_acquire(false)
            .idle_timeout(Duration::from_secs(300))
            .max_lifetime(Duration::from_secs(1800))
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    if conn.backend_name() == "SQLite" {
                        sqlx::query("PRAGMA busy_timeout = 30000")
                            .execute(&mut *conn)
                            .await?;
                        // As on the event-store pool: in WAL mode a commit
                        // is not fsynced (FULL, SQLite's default, fsyncs the
                        // WAL at every commit). A power cut may lose the last
                        // commits, never consistency: read models and their
                        // checkpoints move together and follow the log again.
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                        // Checkpoint the WAL every 64 MiB instead of 4 MiB:
                        // hot pages (indexes, chain heads) are copied back
                        // to the database file less often during a replay.
                        sqlx::query("PRAGMA wal_autocheckpoint = 16384")
                            .execute(&mut *conn)
                            .await?;
                        // Read models outgrow SQLite's default 2 MiB page cache.
                        sqlx::query("PRAGMA cache_size = -65536")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        // For SQLite the file exists by now, and WAL mode is a property of the
        // file, so the Any pool's plain URL opens it the same way.
        let writer = matches!(backend, Backend::Sqlite(_)).then(Arc::default);
        Ok(Self {
            backend,
            any,
            writer,
        })
    }

    /// On SQLite, this process's turn to write: hold it across a write
    /// transaction on the hot paths (appends, projector batches). SQLite
    /// has one writer at a time, and a writer that finds the database busy
    /// is put to sleep by SQLite's busy handler for 1, 2, 5, 10, … ms
    /// between tries: with a dozen writers (clients' commands, one runner
    /// per projection) those sleeps were most of a mutation's latency.
    /// Queued here, writers take turns in order instead. `None` on
    /// PostgreSQL, which has no such limit.
    pub async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.writer {
            Some(writer) => Some(writer.clone().lock_owned().await),
            None => None,
        }
    }

    /// A handle on the same event store whose shared SQL runs on `any`
    /// (a rebuild's shadow tables), with its own writer turn on SQLite:
    /// `any` is another file there.
    pub(crate) fn beside(&self, any: AnyPool) -> Self {
        Self {
            backend: self.backend.clone(),
            any,
            writer: self.writer.as_ref().map(|_| Arc::default()),
        }
    }

    /// Whether the backend is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Applies every pending migration: the backend's own and the tables
    /// shared by both backends, as one list in version order (so a
    /// backend-specific migration may build on a shared table).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let own = match self.backend {
            Backend::Postgres(_) => &POSTGRES,
            Backend::Sqlite(_) => &SQLITE,
        };
        let mut migrations: Vec<_> = own
            .migrations
            .iter()
            .chain(COMMON.migrations.iter())
            .cloned()
            .collect();
        migrations.sort_by_key(|m| m.version);
        let migrator = sqlx::migrate::Migrator {
            migrations: migrations.into(),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        match &self.backend {
            Backend::Postgres(pool) => migrator.run(pool).await?,
            Backend::Sqlite(pool) => migrator.run(pool).await?,
        }
        // A replay that stopped before it built its deferred indexes again.
        self.build_deferred_indexes().await
    }

    /// Drops the indexes `names` (a replay's deferred ones), recording
    /// first how to build each again, in one transaction: should the replay
    /// stop before [`Database::build_deferred_indexes`], the next start of
    /// any Herald process builds them. An index already dropped (and
    /// recorded) by an earlier replay is skipped; one that is neither in the
    /// schema nor recorded is an error (a misspelt name).
    pub async fn defer_indexes(&self, names: &[&str]) -> Result<(), StoreError> {
        if names.is_empty() {
            return Ok(());
        }
        let definition = match self.backend {
            Backend::Postgres(_) => {
                "SELECT indexdef FROM pg_indexes
                  WHERE schemaname = current_schema() AND indexname = $1"
            }
            Backend::Sqlite(_) => {
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = $1"
            }
        };
        let _turn = self.write_turn().await;
        let mut tx = self.any.begin().await?;
        for name in names {
            let ddl: Option<(String,)> = sqlx::query_as(definition)
                .bind(*name)
                .fetch_optional(&mut *tx)
                .await?;
            let Some((ddl,)) = ddl else {
                let (recorded,): (i64,) =
                    sqlx::query_as("SELECT COUNT(*) FROM deferred_indexes WHERE name = $1")
                        .bind(*name)
                        .fetch_one(&mut *tx)
                        .await?;
                if recorded == 0 {
                    return Err(StoreError::UnknownIndex(name.to_string()));
                }
                continue;
            };
            sqlx::query(
                "INSERT INTO deferred_indexes (name, ddl) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET ddl = excluded.ddl",
            )
            .bind(*name)
            .bind(&ddl)
            .execute(&mut *tx)
            .await?;
            sqlx::query(&format!("DROP INDEX {name}"))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Builds every index a replay deferred, each in a transaction with
    /// the removal of its record (two processes never build one twice).
    pub async fn build_deferred_indexes(&self) -> Result<(), StoreError> {
        let pending: Vec<(String, String)> =
            sqlx::query_as("SELECT name, ddl FROM deferred_indexes ORDER BY name")
                .fetch_all(&self.any)
                .await?;
        for (name, ddl) in pending {
            let _turn = self.write_turn().await;
            let mut tx = self.any.begin().await?;
            let claimed = sqlx::query("DELETE FROM deferred_indexes WHERE name = $1")
                .bind(&name)
                .execute(&mut *tx)
                .await?;
            if claimed.rows_affected() == 1 {
                sqlx::query(&ddl).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.any).await?;
        Ok(())
    }
}

/// A read-only transaction confined to `tenant`. On PostgreSQL it runs as the
/// `herald_reader` role with `herald.tenant` set, so row-level security hides
/// every other tenant's rows even from a query that forgot its tenant filter.
/// Dropping it rolls back (it never writes).
pub async fn scoped(
    pool: &AnyPool,
    tenant: uuid::Uuid,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
    if !pool
        .connect_options()
        .database_url
        .scheme()
        .starts_with("postgres")
    {
        return Ok(pool.begin().await?);
    }
    // The transaction and its confinement in one round trip: a simple query
    // may hold several statements, but takes no parameters. The tenant is
    // a `Uuid`, whose text is hex digits and dashes only.
    Ok(pool
        .begin_with(format!(
            "BEGIN; SELECT set_config('herald.tenant', '{tenant}', true), set_config('role', 'herald_reader', true)"
        ))
        .await?)
}
