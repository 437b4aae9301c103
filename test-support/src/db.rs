//! A database of its own for every test: a new PostgreSQL database on the
//! test server (`HERALD_TEST_DATABASE_URL`, by default the local one) or a
//! new SQLite file in the temp directory. Nothing is dropped afterwards: CI
//! removes the `herald_test_*` databases, and the names never repeat.

use sqlx::Connection;
use uuid::Uuid;

/// Server for tests that need PostgreSQL (`HERALD_TEST_DATABASE_URL`).
pub fn postgres_server() -> String {
    std::env::var("HERALD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A PostgreSQL database made for one test.
#[derive(Debug, Clone)]
pub struct PostgresDatabase {
    /// The URL of the server it was made on (its maintenance database).
    pub server: String,
    /// Its name, `herald_test_…`.
    pub name: String,
    /// Its own URL.
    pub url: String,
}

/// A new, empty database on the PostgreSQL server at `server` (any database
/// URL of it).
pub async fn create_postgres(server: &str) -> PostgresDatabase {
    let name = format!("herald_test_{}", Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .expect("PostgreSQL is reachable (see README: tests need the local server)");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = server.rsplit_once('/').map_or(server, |(b, _)| b);
    PostgresDatabase {
        server: server.to_string(),
        url: format!("{base}/{name}"),
        name,
    }
}

/// A new, empty PostgreSQL database on the test server; returns its URL.
pub async fn fresh_postgres() -> String {
    create_postgres(&postgres_server()).await.url
}

/// A new SQLite file in the temp directory; returns its URL.
pub fn fresh_sqlite() -> String {
    let path = std::env::temp_dir().join(format!("herald-test-{}.db", Uuid::new_v4().simple()));
    format!("sqlite://{}", path.display())
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A fresh database URL of this kind.
    pub async fn fresh(self) -> String {
        match self {
            Backend::Sqlite => fresh_sqlite(),
            Backend::Postgres => fresh_postgres().await,
        }
    }
}

/// Runs each named async test body (`async fn name(backend: Backend)`) once
/// on SQLite and once on PostgreSQL, as `sqlite::name` and `postgres::name`.
/// The calling crate needs `tokio` (for `#[tokio::test]`).
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Postgres).await
                }
            )*
        }
    };
}
