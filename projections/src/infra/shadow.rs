//! Shadow tables for a rebuild beside the live read models: the tables of
//! the projections being rebuilt, created empty with the live ones'
//! structure somewhere the live queries never look, and a [`Database`]
//! whose unqualified table names reach them first. Projections write
//! through it unchanged; once caught up, [`Shadow::swap`] puts the rebuilt
//! tables in place of the live ones in one transaction.
//!
//! - PostgreSQL: the schema [`SCHEMA`], first on the shadow pool's
//!   `search_path`. The swap moves each table into the live schema (its
//!   indexes move with it) after dropping the live one: no row is copied.
//!   Row-level security, its policies and the grants are copied to the
//!   shadow tables when they are created, so the swapped-in tables are
//!   guarded exactly as the ones they replace.
//! - SQLite: a second file beside the database (`<file>.rebuild`), the
//!   shadow pool's main database, with the live file attached behind it.
//!   SQLite cannot move a table between
//!   files: the swap copies the rebuilt rows into the live tables, in one
//!   write transaction (readers keep their snapshot meanwhile; writers wait).
//!
//! Each shadow also has its own `projection_checkpoints` and
//! `deferred_indexes`, so the rebuild's positions, leases and deferred
//! indexes never touch the live ones. Whatever a failed rebuild leaves
//! behind is dropped by the next one.

use std::path::PathBuf;
use std::str::FromStr;

use sqlx::Connection;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};

use crate::db::Backend;
use crate::{Database, Position, StoreError};

/// The PostgreSQL schema of the shadow tables.
pub(crate) const SCHEMA: &str = "herald_rebuild";

/// Bookkeeping tables every shadow has of its own.
const OWN: [&str; 2] = ["projection_checkpoints", "deferred_indexes"];

/// Where the shadow tables are.
enum Place {
    /// PostgreSQL: the live tables' schema (the shadow's is [`SCHEMA`]).
    Schema { live: String },
    /// SQLite: the shadow database file.
    File { path: PathBuf },
}

/// Shadow tables for `tables`, and the database handle that writes them.
pub(crate) struct Shadow {
    /// Reads the log from the live database; its `any` pool reaches the
    /// shadow tables first.
    pub(crate) db: Database,
    place: Place,
    tables: Vec<&'static str>,
}

impl Shadow {
    /// Creates empty shadow copies of `tables`, dropping any left by an
    /// earlier rebuild. The caller holds the rebuild lease.
    pub(crate) async fn create(
        live: &Database,
        tables: Vec<&'static str>,
        connections: u32,
    ) -> Result<Self, StoreError> {
        match &live.backend {
            Backend::Postgres(_) => Self::create_schema(live, tables, connections).await,
            Backend::Sqlite(pool) => {
                let path = shadow_path(pool.connect_options().get_filename());
                Self::create_file(live, tables, path).await
            }
        }
    }

    async fn create_schema(
        live: &Database,
        tables: Vec<&'static str>,
        connections: u32,
    ) -> Result<Self, StoreError> {
        let (schema, search_path): (String, String) =
            sqlx::query_as("SELECT current_schema()::text, current_setting('search_path')")
                .fetch_one(&live.any)
                .await?;
        let mut tx = live.any.begin().await?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("CREATE SCHEMA {SCHEMA}"))
            .execute(&mut *tx)
            .await?;
        // Definitions read from the catalogue name every table with its
        // schema only when no schema is on the search path.
        sqlx::query("SET LOCAL search_path = pg_catalog")
            .execute(&mut *tx)
            .await?;
        let live_schema = quoted(&schema);
        for table in tables.iter().chain(OWN.iter()) {
            // `LIKE … INCLUDING INDEXES` would name the copies anew: the
            // constraints and indexes are made under their live names.
            sqlx::query(&format!(
                "CREATE TABLE {SCHEMA}.{table}
                   (LIKE {live_schema}.{table} INCLUDING ALL EXCLUDING INDEXES)"
            ))
            .execute(&mut *tx)
            .await?;
            for ddl in indexes(&mut tx, &schema, table).await? {
                sqlx::query(&ddl).execute(&mut *tx).await?;
            }
        }
        for table in &tables {
            for ddl in guards(&mut tx, &schema, table).await? {
                // A policy reading another rebuilt table (`rm_users`' reads
                // `rm_members`) reads its shadow, which the swap puts in
                // place too; one reading a table left alone keeps it.
                let ddl = tables.iter().fold(ddl, |ddl, other| {
                    requalify(&ddl, &qualified(&schema, other), &qualified(SCHEMA, other))
                });
                sqlx::query(&ddl).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        let path = format!("SET search_path = {SCHEMA}, {search_path}");
        let any = AnyPoolOptions::new()
            .max_connections(connections)
            .after_connect(move |conn, _| {
                let path = path.clone();
                Box::pin(async move {
                    sqlx::query(&path).execute(&mut *conn).await?;
                    Ok(())
                })
            })
            .connect_with((*live.any.connect_options()).clone())
            .await?;
        Ok(Self {
            db: live.beside(any),
            place: Place::Schema { live: schema },
            tables,
        })
    }

    async fn create_file(
        live: &Database,
        tables: Vec<&'static str>,
        path: PathBuf,
    ) -> Result<Self, StoreError> {
        remove_file(&path)?;
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let options = AnyConnectOptions::from_str(&url)?;
        let live_file = match &live.backend {
            Backend::Sqlite(pool) => pool.connect_options().get_filename().display().to_string(),
            Backend::Postgres(_) => unreachable!("a shadow file is for SQLite"),
        };
        // A throwaway file: a crash mid-rebuild discards it anyway, so it
        // needs no durability, only rollback. The live file is attached:
        // a table the shadow has not (a projection's shared table, such
        // as the mail outbox) is found there, as on PostgreSQL's path.
        // One connection: SQLite drops a connection's page cache whenever
        // another one wrote the file, so two taking turns would reread it
        // at every batch.
        let any = AnyPoolOptions::new()
            .max_connections(1)
            .after_connect(move |conn, _| {
                let live_file = live_file.clone();
                Box::pin(async move {
                    for pragma in [
                        "PRAGMA busy_timeout = 30000",
                        "PRAGMA main.journal_mode = WAL",
                        "PRAGMA main.synchronous = OFF",
                        "PRAGMA main.wal_autocheckpoint = 16384",
                        "PRAGMA main.cache_size = -131072",
                    ] {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    sqlx::query("ATTACH DATABASE $1 AS live")
                        .bind(live_file)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        for table in tables.iter().chain(OWN.iter()) {
            // The table first, then its indexes, as the live file has them.
            let ddl: Vec<(String,)> = sqlx::query_as(
                "SELECT sql FROM sqlite_master WHERE tbl_name = $1 AND sql IS NOT NULL
                  ORDER BY type <> 'table', name",
            )
            .bind(*table)
            .fetch_all(&live.any)
            .await?;
            for (ddl,) in ddl {
                sqlx::query(&ddl).execute(&any).await?;
            }
        }
        Ok(Self {
            db: live.beside(any),
            place: Place::File { path },
            tables,
        })
    }

    /// Puts the shadow tables in place of the live ones and moves each
    /// live checkpoint of `names` to the shadow's, in one transaction
    /// fenced on `owner` holding every one of those live leases (the
    /// caller took them, so no live runner writes these tables meanwhile).
    /// On any error the live tables and checkpoints are untouched.
    pub(crate) async fn swap(
        &self,
        live: &Database,
        names: &[&'static str],
        owner: &str,
    ) -> Result<(), StoreError> {
        let mut positions = Vec::with_capacity(names.len());
        for name in names {
            let at: (i64, i64) =
                sqlx::query_as("SELECT tx, position FROM projection_checkpoints WHERE name = $1")
                    .bind(*name)
                    .fetch_one(&self.db.any)
                    .await?;
            positions.push(Position {
                tx: at.0,
                seq: at.1,
            });
        }
        // The shadow's connections end here: on SQLite the live connection
        // below reads its file.
        self.db.any.close().await;
        match &self.place {
            Place::Schema { live: schema } => {
                let mut tx = live.any.begin().await?;
                // Moving a table waits for the queries reading it; a long
                // one makes the swap fail (and the rebuild with it) rather
                // than hold every new query up behind it.
                sqlx::query("SET LOCAL lock_timeout = '5s'")
                    .execute(&mut *tx)
                    .await?;
                fence(&mut tx, names, &positions, owner).await?;
                let schema = quoted(schema);
                for table in &self.tables {
                    sqlx::query(&format!("DROP TABLE {schema}.{table}"))
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(&format!("ALTER TABLE {SCHEMA}.{table} SET SCHEMA {schema}"))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
            Place::File { path } => {
                // A connection of its own: the attached file must not follow
                // it back into the pool.
                let mut conn =
                    sqlx::AnyConnection::connect_with(&live.any.connect_options()).await?;
                // As the pool's connections, with room for the index
                // builds; the copy's WAL is checkpointed after the swap,
                // by the live connections, not while the models pause.
                for pragma in [
                    "PRAGMA busy_timeout = 30000",
                    "PRAGMA synchronous = NORMAL",
                    "PRAGMA cache_size = -262144",
                    "PRAGMA wal_autocheckpoint = 0",
                ] {
                    sqlx::query(pragma).execute(&mut conn).await?;
                }
                sqlx::query("ATTACH DATABASE $1 AS rebuild")
                    .bind(path.display().to_string())
                    .execute(&mut conn)
                    .await?;
                let _turn = live.write_turn().await;
                let copied =
                    copy_into_live(&mut conn, &self.tables, names, &positions, owner).await;
                drop(_turn);
                conn.close().await?;
                copied?;
            }
        }
        Ok(())
    }

    /// Drops the shadow tables (after a swap, what is left of them).
    pub(crate) async fn discard(self, live: &Database) -> Result<(), StoreError> {
        self.db.any.close().await;
        match &self.place {
            Place::Schema { .. } => {
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
                    .execute(&live.any)
                    .await?;
            }
            Place::File { path } => remove_file(path)?,
        }
        Ok(())
    }
}

/// SQLite: the live tables take the shadow's rows, in one transaction.
/// The live indexes are dropped for the copy and built again after it,
/// which is cheaper than keeping them up to date row by row.
async fn copy_into_live(
    conn: &mut sqlx::AnyConnection,
    tables: &[&'static str],
    names: &[&'static str],
    positions: &[Position],
    owner: &str,
) -> Result<(), StoreError> {
    let mut tx = conn.begin().await?;
    fence(&mut tx, names, positions, owner).await?;
    for table in tables {
        let indexes: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, sql FROM main.sqlite_master
              WHERE type = 'index' AND tbl_name = $1 AND sql IS NOT NULL",
        )
        .bind(*table)
        .fetch_all(&mut *tx)
        .await?;
        for (index, _) in &indexes {
            sqlx::query(&format!("DROP INDEX main.{index}"))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(&format!("DELETE FROM main.{table}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "INSERT INTO main.{table} SELECT * FROM rebuild.{table}"
        ))
        .execute(&mut *tx)
        .await?;
        for (_, ddl) in &indexes {
            sqlx::query(ddl).execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Moves each live checkpoint of `names` to its rebuilt position, only
/// while `owner` holds its lease: otherwise [`StoreError::SwapFenced`]
/// (and the caller's transaction writes nothing).
async fn fence(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    names: &[&'static str],
    positions: &[Position],
    owner: &str,
) -> Result<(), StoreError> {
    for (name, at) in names.iter().zip(positions) {
        let moved = sqlx::query(
            "UPDATE projection_checkpoints SET tx = $1, position = $2
              WHERE name = $3 AND lease_owner = $4",
        )
        .bind(at.tx)
        .bind(at.seq)
        .bind(*name)
        .bind(owner)
        .execute(&mut **tx)
        .await?;
        if moved.rows_affected() != 1 {
            return Err(StoreError::SwapFenced(name));
        }
    }
    Ok(())
}

/// PostgreSQL: the statements that guard a shadow copy of `schema.table`
/// as the live table is guarded: row-level security (enabled, forced), its
/// policies and the grants of other roles.
async fn guards(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    schema: &str,
    table: &str,
) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY', $3::text, c.relname)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relname = $2 AND c.relrowsecurity
         UNION ALL
         SELECT format('ALTER TABLE %I.%I FORCE ROW LEVEL SECURITY', $3::text, c.relname)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relname = $2 AND c.relforcerowsecurity
         UNION ALL
         SELECT format('CREATE POLICY %I ON %I.%I AS %s FOR %s TO %s%s%s',
                       policyname, $3::text, tablename, permissive, cmd,
                       (SELECT string_agg(CASE WHEN r = 'public' THEN 'PUBLIC' ELSE quote_ident(r) END, ', ')
                          FROM unnest(roles) AS r),
                       coalesce(' USING (' || qual || ')', ''),
                       coalesce(' WITH CHECK (' || with_check || ')', ''))
           FROM pg_policies WHERE schemaname = $1 AND tablename = $2
         UNION ALL
         SELECT format('GRANT %s ON %I.%I TO %s', g.privilege_type, $3::text, g.table_name,
                       CASE WHEN g.grantee = 'PUBLIC' THEN 'PUBLIC' ELSE quote_ident(g.grantee) END)
           FROM information_schema.role_table_grants g
           JOIN pg_tables t ON t.schemaname = g.table_schema AND t.tablename = g.table_name
          WHERE g.table_schema = $1 AND g.table_name = $2 AND g.grantee <> t.tableowner",
    )
    .bind(schema)
    .bind(table)
    .bind(SCHEMA)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|(ddl,)| ddl).collect())
}

/// PostgreSQL: the statements that give a shadow copy of `schema.table`
/// the live table's unique constraints and indexes, under the same names.
/// Runs with only `pg_catalog` on the search path, so every definition
/// names its table with the schema.
async fn indexes(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    schema: &str,
    table: &str,
) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "WITH live AS (SELECT format('%I.%I', $1::text, $2::text)::regclass AS oid)
         SELECT format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s', $3::text, $2::text,
                       c.conname, pg_get_constraintdef(c.oid))
           FROM pg_constraint c, live
          WHERE c.conrelid = live.oid AND c.contype IN ('p', 'u', 'x')
         UNION ALL
         SELECT replace(pg_get_indexdef(i.indexrelid),
                        format(' ON %I.%I ', $1::text, $2::text),
                        format(' ON %I.%I ', $3::text, $2::text))
           FROM pg_index i, live
          WHERE i.indrelid = live.oid
            AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                             WHERE c.conrelid = i.indrelid AND c.conindid = i.indexrelid
                               AND c.contype IN ('p', 'u', 'x'))",
    )
    .bind(schema)
    .bind(table)
    .bind(SCHEMA)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|(ddl,)| ddl).collect())
}

/// `schema.table` as PostgreSQL prints it in a definition: each name as
/// is when it needs no quotes, else quoted.
fn qualified(schema: &str, table: &str) -> String {
    let ident = |name: &str| {
        let plain = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
        if plain {
            name.to_string()
        } else {
            quoted(name)
        }
    };
    format!("{}.{}", ident(schema), ident(table))
}

/// `sql` with every whole occurrence of the qualified name `from` (not a
/// prefix of a longer name) replaced by `to`.
fn requalify(sql: &str, from: &str, to: &str) -> String {
    let continues = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(from) {
        let after = &rest[at + from.len()..];
        out.push_str(&rest[..at]);
        if after.chars().next().is_some_and(continues) {
            out.push_str(from);
        } else {
            out.push_str(to);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// A PostgreSQL identifier, quoted.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The shadow file beside the SQLite database `live`.
fn shadow_path(live: &std::path::Path) -> PathBuf {
    let mut name = live.as_os_str().to_owned();
    name.push(".rebuild");
    PathBuf::from(name)
}

/// Removes a SQLite file and its journals, if there.
fn remove_file(path: &std::path::Path) -> Result<(), StoreError> {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::remove_file(&name) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(StoreError::Shadow(error)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shadow_file_sits_beside_the_database() {
        assert_eq!(
            shadow_path(std::path::Path::new("/var/lib/herald/herald.db")),
            PathBuf::from("/var/lib/herald/herald.db.rebuild")
        );
    }

    #[test]
    fn policies_are_pointed_at_whole_names_only() {
        let qual = "EXISTS (SELECT 1 FROM public.rm_media_uses u, public.rm_media m)";
        assert_eq!(
            requalify(qual, "public.rm_media", "herald_rebuild.rm_media"),
            "EXISTS (SELECT 1 FROM public.rm_media_uses u, herald_rebuild.rm_media m)"
        );
        assert_eq!(qualified("public", "rm_users"), "public.rm_users");
        assert_eq!(qualified("My Schema", "rm_users"), "\"My Schema\".rm_users");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quoted("public"), "\"public\"");
        assert_eq!(quoted("we\"ird"), "\"we\"\"ird\"");
    }
}
