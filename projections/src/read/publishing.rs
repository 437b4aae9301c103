//! Read models of publishing: the tenant's `connections`, and the scheduler's
//! index (`schedule`), from which any number of worker processes claim due
//! posts. The index only says *when to look*: the decision to publish is
//! taken from the post's current state when it fires.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use domain::connection::{Connection, ConnectionEvent, ConnectionStatus};
use domain::post::{Post, PostEvent};
use sqlx::{AnyConnection, AnyPool, FromRow};
use uuid::Uuid;

use crate::infra::sql::{CHUNK, in_list, placeholders};
use crate::{Projection, StoreError, StoredEvent, micros};

/// The `connections` projection: one row per connection.
pub struct Connections;

impl Connections {
    /// The projection's name (checkpoint key, `--projection` argument, and
    /// what an operation names when it waits for this read model).
    pub const NAME: &'static str = "connections";
}

#[async_trait]
impl Projection for Connections {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_connections"]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        events: &[StoredEvent],
    ) -> Result<(), StoreError> {
        // Connection events are rare: one statement each is plenty.
        for event in events {
            let Some(e) = event.event_of::<Connection>()? else {
                continue;
            };
            let at = micros(event.metadata.recorded_at);
            let id = event.aggregate_id.as_str();
            match e {
                ConnectionEvent::BlueskyConnected {
                    tenant_id,
                    handle,
                    did,
                    service_url,
                    ..
                } => {
                    sqlx::query(
                        "INSERT INTO rm_connections (id, tenant_id, platform, handle, did, service_url, status, reason, created_at, updated_at)
                         VALUES ($1, $2, 'BLUESKY', $3, $4, $5, $6, NULL, $7, $7)
                         ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(id)
                    .bind(tenant_id.to_string())
                    .bind(handle.as_str())
                    .bind(did.as_str())
                    .bind(service_url.as_str())
                    .bind(ConnectionStatus::Active.as_str())
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                }
                ConnectionEvent::ConnectionCredentialsReplaced {
                    handle,
                    service_url,
                    ..
                } => {
                    sqlx::query(
                        "UPDATE rm_connections SET handle = $2, service_url = $3, status = $4, reason = NULL, updated_at = $5 WHERE id = $1",
                    )
                    .bind(id)
                    .bind(handle.as_str())
                    .bind(service_url.as_str())
                    .bind(ConnectionStatus::Active.as_str())
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                }
                ConnectionEvent::ConnectionDegraded { reason } => {
                    set_status(conn, id, ConnectionStatus::Degraded, Some(reason), at).await?;
                }
                ConnectionEvent::ConnectionRevoked => {
                    set_status(conn, id, ConnectionStatus::Revoked, None, at).await?;
                }
            }
        }
        Ok(())
    }
}

async fn set_status(
    conn: &mut AnyConnection,
    id: &str,
    status: ConnectionStatus,
    reason: Option<&str>,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE rm_connections SET status = $2, reason = $3, updated_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(reason)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A connection as the API lists it.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct ConnectionRow {
    pub id: String,
    pub tenant_id: String,
    pub platform: String,
    pub handle: String,
    pub did: String,
    pub service_url: String,
    pub status: String,
    pub reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const CONNECTION_COLUMNS: &str =
    "id, tenant_id, platform, handle, did, service_url, status, reason, created_at, updated_at";

/// Reads of the connections read model; every read takes the tenant.
#[derive(Clone, Debug)]
pub struct ConnectionQueries {
    pool: AnyPool,
}

impl ConnectionQueries {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// The tenant's connections, oldest first.
    pub async fn list(&self, tenant: Uuid) -> Result<Vec<ConnectionRow>, StoreError> {
        let mut conn = crate::db::scoped(&self.pool, tenant).await?;
        Ok(sqlx::query_as(&format!(
            "SELECT {CONNECTION_COLUMNS} FROM rm_connections WHERE tenant_id = $1 ORDER BY created_at, id"
        ))
        .bind(tenant.to_string())
        .fetch_all(&mut *conn)
        .await?)
    }

    /// One connection of the tenant.
    pub async fn get(&self, tenant: Uuid, id: Uuid) -> Result<Option<ConnectionRow>, StoreError> {
        let mut conn = crate::db::scoped(&self.pool, tenant).await?;
        Ok(sqlx::query_as(&format!(
            "SELECT {CONNECTION_COLUMNS} FROM rm_connections WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?)
    }
}

/// The `schedule` projection: when each post should next be looked at.
pub struct Schedule;

/// A row of the index as the projection folds it.
#[derive(Debug, Clone)]
struct IndexRow {
    tenant_id: String,
    connection_id: Option<String>,
    due_at: Option<i64>,
}

impl Schedule {
    /// The projection's name (checkpoint key, `--projection` argument, and
    /// what an operation names when it waits for this read model).
    pub const NAME: &'static str = "schedule";
}

#[async_trait]
impl Projection for Schedule {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_schedule", "rm_schedule_connections"]
    }

    fn deferred_indexes(&self) -> &'static [&'static str] {
        &["rm_schedule_due", "rm_schedule_connection"]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        events: &[StoredEvent],
    ) -> Result<(), StoreError> {
        // Fold the batch in memory, then write each touched row once: replay
        // runs through here for every post event ever stored.
        let mut rows: HashMap<String, Option<IndexRow>> = HashMap::new();
        let mut blocked: HashMap<String, bool> = HashMap::new();
        let mut touched_connections: Vec<String> = Vec::new();
        let mut post_ids: HashSet<&str> = HashSet::new();
        for event in events {
            if let Some(e) = event.event_of::<Post>()?
                && !matches!(e, PostEvent::EngagementSampled { .. })
            {
                post_ids.insert(event.aggregate_id.as_str());
            }
        }
        for chunk in post_ids.into_iter().collect::<Vec<_>>().chunks(CHUNK) {
            let sql = format!(
                "SELECT post_id, tenant_id, connection_id, due_at FROM rm_schedule WHERE post_id IN ({})",
                in_list(conn, chunk.len())
            );
            let mut query =
                sqlx::query_as::<_, (String, String, Option<String>, Option<i64>)>(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for (id, tenant_id, connection_id, due_at) in query.fetch_all(&mut *conn).await? {
                rows.insert(
                    id,
                    Some(IndexRow {
                        tenant_id,
                        connection_id,
                        due_at,
                    }),
                );
            }
        }
        for event in events {
            let id = event.aggregate_id.as_str();
            if let Some(e) = event.event_of::<Connection>()? {
                let now_blocked = match e {
                    ConnectionEvent::ConnectionDegraded { .. } => true,
                    // Revoked posts are not held back: they fail at fire time.
                    _ => false,
                };
                blocked.insert(id.to_string(), now_blocked);
                touched_connections.push(id.to_string());
                continue;
            }
            let Some(e) = event.event_of::<Post>()? else {
                continue;
            };
            if let PostEvent::PostCreated {
                tenant_id,
                connection_id,
                ..
            } = e
            {
                rows.entry(id.to_string()).or_insert(Some(IndexRow {
                    tenant_id: tenant_id.to_string(),
                    connection_id: connection_id.map(|c| c.to_string()),
                    due_at: None,
                }));
                continue;
            }
            let Some(Some(row)) = rows.get_mut(id) else {
                continue;
            };
            match e {
                PostEvent::PostScheduled { at, .. }
                | PostEvent::PostRescheduled { at }
                | PostEvent::PublishRetryRequested { at } => row.due_at = Some(micros(*at)),
                PostEvent::PublishSucceeded { next_at, .. } => row.due_at = next_at.map(micros),
                PostEvent::PublishFailed { retry_at, .. } => row.due_at = retry_at.map(micros),
                PostEvent::PostCancelled => row.due_at = None,
                PostEvent::PostDeleted => {
                    rows.insert(id.to_string(), None);
                }
                // Nothing the index keeps (creation is handled above).
                PostEvent::PostCreated { .. }
                | PostEvent::PostUpdated { .. }
                | PostEvent::PublishStarted { .. }
                | PostEvent::EntryPublished { .. }
                | PostEvent::PostUnpublished { .. }
                | PostEvent::EngagementSampled { .. } => {}
            }
        }
        // Connection states the new rows need that the batch did not set.
        let unknown: Vec<String> = rows
            .values()
            .flatten()
            .filter_map(|r| r.connection_id.clone())
            .filter(|c| !blocked.contains_key(c))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        for chunk in unknown.chunks(CHUNK) {
            let sql = format!(
                "SELECT connection_id, blocked FROM rm_schedule_connections WHERE connection_id IN ({})",
                in_list(conn, chunk.len())
            );
            let mut query = sqlx::query_as::<_, (String, i64)>(&sql);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for (id, b) in query.fetch_all(&mut *conn).await? {
                blocked.insert(id, b != 0);
            }
        }
        let (live, gone): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(_, r)| r.is_some());
        let mut live: Vec<(String, IndexRow)> = live
            .into_iter()
            .map(|(id, r)| (id, r.expect("live")))
            .collect();
        live.sort_by(|a, b| a.0.cmp(&b.0));
        for chunk in live.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO rm_schedule (post_id, tenant_id, connection_id, due_at, blocked) VALUES {}
                 ON CONFLICT (post_id) DO UPDATE SET connection_id = excluded.connection_id,
                   due_at = excluded.due_at, blocked = excluded.blocked",
                placeholders(conn, chunk.len(), 5)
            );
            let mut query = sqlx::query(&sql);
            for (id, row) in chunk {
                let is_blocked = row
                    .connection_id
                    .as_ref()
                    .and_then(|c| blocked.get(c))
                    .copied()
                    .unwrap_or(false);
                query = query
                    .bind(id.as_str())
                    .bind(row.tenant_id.as_str())
                    .bind(row.connection_id.clone())
                    .bind(row.due_at)
                    .bind(i64::from(is_blocked));
            }
            query.execute(&mut *conn).await?;
        }
        let gone: Vec<String> = gone.into_iter().map(|(id, _)| id).collect();
        for chunk in gone.chunks(CHUNK) {
            let sql = format!(
                "DELETE FROM rm_schedule WHERE post_id IN ({})",
                in_list(conn, chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            query.execute(&mut *conn).await?;
        }
        touched_connections.sort();
        touched_connections.dedup();
        for id in touched_connections {
            let b = i64::from(blocked[&id]);
            sqlx::query(
                "INSERT INTO rm_schedule_connections (connection_id, blocked) VALUES ($1, $2)
                 ON CONFLICT (connection_id) DO UPDATE SET blocked = excluded.blocked",
            )
            .bind(&id)
            .bind(b)
            .execute(&mut *conn)
            .await?;
            sqlx::query("UPDATE rm_schedule SET blocked = $2 WHERE connection_id = $1")
                .bind(&id)
                .bind(b)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}

/// A post a worker claimed: it holds the lease until `release`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub post_id: Uuid,
    pub tenant_id: Uuid,
    pub connection_id: Option<Uuid>,
}

/// The workers' side of the index: claim due posts under a lease.
#[derive(Clone, Debug)]
pub struct ScheduleIndex {
    pool: AnyPool,
    postgres: bool,
}

impl ScheduleIndex {
    pub fn new(db: &crate::Database) -> Self {
        Self {
            pool: db.any.clone(),
            postgres: matches!(db.backend, crate::db::Backend::Postgres(_)),
        }
    }

    /// Claims up to `limit` posts due at `now` for `owner` until `lease_until`,
    /// earliest first. On PostgreSQL rows locked by another worker's claim are
    /// skipped (`FOR UPDATE SKIP LOCKED`), so any number of workers share the
    /// queue; SQLite has a single writer, and one worker.
    pub async fn claim(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<Claim>, StoreError> {
        let lock = if self.postgres {
            "FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE rm_schedule SET lease_owner = $1, lease_until = $2
              WHERE post_id IN (SELECT post_id FROM rm_schedule
                                 WHERE due_at IS NOT NULL AND due_at <= $3 AND blocked = 0
                                   AND lease_until < $3
                                 ORDER BY due_at LIMIT $4 {lock})
              RETURNING post_id, tenant_id, connection_id"
        );
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(&sql)
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(post, tenant, connection)| {
                Some(Claim {
                    post_id: post.parse().ok()?,
                    tenant_id: tenant.parse().ok()?,
                    connection_id: connection.and_then(|c| c.parse().ok()),
                })
            })
            .collect())
    }

    /// Gives claimed posts back, many per statement: each `(post,
    /// not_before)` may be claimed again from `not_before` (when the index has
    /// caught up with what this worker did).
    pub async fn release(&self, owner: &str, releases: &[(Uuid, i64)]) -> Result<(), StoreError> {
        let param = |n: usize| {
            if self.postgres {
                format!("${n}")
            } else {
                "?".to_string()
            }
        };
        for chunk in releases.chunks(CHUNK) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("({}, {})", param(2 * i + 1), param(2 * i + 2)))
                .collect();
            // Parameters appear in the text in the order they are bound. On
            // PostgreSQL the rows are locked in key order first, the order
            // the schedule projection writes them in: no deadlock with it.
            let owner_param = param(2 * chunk.len() + 1);
            let mine = if self.postgres {
                format!(
                    "SELECT post_id FROM rm_schedule WHERE post_id IN (SELECT post_id FROM v)
                        AND lease_owner = {owner_param} ORDER BY post_id FOR UPDATE"
                )
            } else {
                format!(
                    "SELECT post_id FROM rm_schedule WHERE post_id IN (SELECT post_id FROM v)
                        AND lease_owner = {owner_param}"
                )
            };
            let sql = format!(
                "WITH v (post_id, not_before) AS (VALUES {}), mine AS ({mine})
                 UPDATE rm_schedule SET lease_owner = NULL, lease_until = v.not_before
                   FROM v WHERE rm_schedule.post_id = v.post_id
                    AND rm_schedule.post_id IN (SELECT post_id FROM mine)",
                values.join(", "),
            );
            let mut query = sqlx::query(&sql);
            for (post, not_before) in chunk {
                query = query.bind(post.to_string()).bind(*not_before);
            }
            query.bind(owner).execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Extends the lease of a post still being published.
    pub async fn extend(
        &self,
        owner: &str,
        post: Uuid,
        lease_until: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE rm_schedule SET lease_until = $3 WHERE post_id = $1 AND lease_owner = $2",
        )
        .bind(post.to_string())
        .bind(owner)
        .bind(lease_until)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The earliest time anything unleased becomes due (for sleeping).
    pub async fn next_due(&self) -> Result<Option<i64>, StoreError> {
        let (next,): (Option<i64>,) = sqlx::query_as(
            "SELECT MIN(CASE WHEN lease_until > due_at THEN lease_until ELSE due_at END)
               FROM rm_schedule WHERE due_at IS NOT NULL AND blocked = 0",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(next)
    }
}
