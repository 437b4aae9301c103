//! The dashboard read model: campaigns with post counts per status, and posts
//! in queue order. Fed by the `dashboard` projection; queried by the API.

use async_trait::async_trait;
use domain::campaign::{Campaign, CampaignEvent, CampaignSettings, CampaignStatus};
use domain::post::{Post, PostEvent, PostStatus};
use sqlx::{AnyConnection, AnyPool, FromRow};
use uuid::Uuid;

use crate::{Projection, StoreError, StoredEvent, micros};

/// `sort_key` of posts without a next run: after every real instant.
pub const UNSCHEDULED: i64 = i64::MAX;

/// The dashboard projection.
pub struct Dashboard;

fn count_column(status: PostStatus) -> &'static str {
    match status {
        PostStatus::Draft => "count_draft",
        PostStatus::Pending => "count_pending",
        PostStatus::Running => "count_running",
        PostStatus::Done => "count_done",
        PostStatus::Failed => "count_failed",
        PostStatus::Cancelled => "count_cancelled",
    }
}

fn parse_status(s: &str) -> Option<PostStatus> {
    PostStatus::ALL.into_iter().find(|p| p.as_str() == s)
}

async fn set_campaign_status(
    conn: &mut AnyConnection,
    id: &str,
    status: CampaignStatus,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE rm_campaigns SET status = $1, updated_at = $2 WHERE id = $3")
        .bind(status.as_str())
        .bind(at)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves a post to `status` (or removes it when `None`), keeping its
/// campaign's counters in step.
async fn move_post(
    conn: &mut AnyConnection,
    id: &str,
    status: Option<PostStatus>,
    at: i64,
) -> Result<(), StoreError> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT campaign_id, status FROM rm_posts WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((campaign_id, old)) = row else {
        return Ok(());
    };
    let old = parse_status(&old);
    if old == status {
        return Ok(());
    }
    let mut counters = Vec::new();
    if let Some(old) = old {
        counters.push(format!("{0} = {0} - 1", count_column(old)));
    }
    if let Some(new) = status {
        counters.push(format!("{0} = {0} + 1", count_column(new)));
    }
    sqlx::query(&format!(
        "UPDATE rm_campaigns SET {} WHERE id = $1",
        counters.join(", ")
    ))
    .bind(&campaign_id)
    .execute(&mut *conn)
    .await?;
    match status {
        Some(status) => {
            sqlx::query("UPDATE rm_posts SET status = $1, updated_at = $2 WHERE id = $3")
                .bind(status.as_str())
                .bind(at)
                .bind(id)
                .execute(&mut *conn)
                .await?
        }
        None => {
            sqlx::query("DELETE FROM rm_posts WHERE id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?
        }
    };
    Ok(())
}

impl Dashboard {
    async fn campaign(
        &self,
        conn: &mut AnyConnection,
        event: &StoredEvent,
        payload: CampaignEvent,
    ) -> Result<(), StoreError> {
        let id = event.aggregate_id.as_str();
        let at = micros(event.metadata.recorded_at);
        match payload {
            CampaignEvent::CampaignCreated {
                tenant_id,
                settings,
            } => {
                sqlx::query(
                    "INSERT INTO rm_campaigns (id, tenant_id, name, time_zone, starts_on, ends_on, status, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(tenant_id.to_string())
                .bind(&settings.name)
                .bind(settings.time_zone.name())
                .bind(settings.starts_on.to_string())
                .bind(settings.ends_on.to_string())
                .bind(CampaignStatus::Draft.as_str())
                .bind(at)
                .execute(conn)
                .await?;
            }
            CampaignEvent::CampaignUpdated { settings } => {
                let CampaignSettings {
                    name,
                    time_zone,
                    starts_on,
                    ends_on,
                } = settings;
                sqlx::query(
                    "UPDATE rm_campaigns SET name = $1, time_zone = $2, starts_on = $3, ends_on = $4, updated_at = $5 WHERE id = $6",
                )
                .bind(name)
                .bind(time_zone.name())
                .bind(starts_on.to_string())
                .bind(ends_on.to_string())
                .bind(at)
                .bind(id)
                .execute(conn)
                .await?;
            }
            CampaignEvent::CampaignActivated | CampaignEvent::CampaignResumed => {
                set_campaign_status(conn, id, CampaignStatus::Active, at).await?
            }
            CampaignEvent::CampaignPaused => {
                set_campaign_status(conn, id, CampaignStatus::Paused, at).await?
            }
            CampaignEvent::CampaignArchived => {
                set_campaign_status(conn, id, CampaignStatus::Archived, at).await?
            }
        }
        Ok(())
    }

    async fn post(
        &self,
        conn: &mut AnyConnection,
        event: &StoredEvent,
        payload: PostEvent,
    ) -> Result<(), StoreError> {
        let id = event.aggregate_id.as_str();
        let at = micros(event.metadata.recorded_at);
        match payload {
            PostEvent::PostCreated {
                tenant_id,
                campaign_id,
                entries,
            } => {
                let inserted = sqlx::query(
                    "INSERT INTO rm_posts (id, tenant_id, campaign_id, status, entries, sort_key, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(tenant_id.to_string())
                .bind(campaign_id.to_string())
                .bind(PostStatus::Draft.as_str())
                .bind(serde_json::to_string(&entries).expect("entries serialize"))
                .bind(UNSCHEDULED)
                .bind(at)
                .execute(&mut *conn)
                .await?;
                if inserted.rows_affected() == 1 {
                    sqlx::query(
                        "UPDATE rm_campaigns SET count_draft = count_draft + 1 WHERE id = $1",
                    )
                    .bind(campaign_id.to_string())
                    .execute(conn)
                    .await?;
                }
            }
            PostEvent::PostUpdated { entries } => {
                sqlx::query("UPDATE rm_posts SET entries = $1, updated_at = $2 WHERE id = $3")
                    .bind(serde_json::to_string(&entries).expect("entries serialize"))
                    .bind(at)
                    .bind(id)
                    .execute(conn)
                    .await?;
            }
            PostEvent::PostScheduled {
                at: run_at,
                recurrence,
                time_zone,
            } => {
                sqlx::query(
                    "UPDATE rm_posts SET next_run_at = $1, sort_key = $1, recurrence = $2, time_zone = $3 WHERE id = $4",
                )
                .bind(micros(run_at))
                .bind(recurrence.map(|r| r.as_str().to_string()))
                .bind(time_zone.name())
                .bind(id)
                .execute(&mut *conn)
                .await?;
                move_post(conn, id, Some(PostStatus::Pending), at).await?;
            }
            PostEvent::PostRescheduled { at: run_at } => {
                sqlx::query("UPDATE rm_posts SET next_run_at = $1, sort_key = $1 WHERE id = $2")
                    .bind(micros(run_at))
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                move_post(conn, id, Some(PostStatus::Pending), at).await?;
            }
            PostEvent::PostCancelled => {
                sqlx::query("UPDATE rm_posts SET next_run_at = NULL, sort_key = $1 WHERE id = $2")
                    .bind(UNSCHEDULED)
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                move_post(conn, id, Some(PostStatus::Cancelled), at).await?;
            }
            PostEvent::PostDeleted => move_post(conn, id, None, at).await?,
        }
        Ok(())
    }
}

#[async_trait]
impl Projection for Dashboard {
    fn name(&self) -> &'static str {
        "dashboard"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_posts", "rm_campaigns"]
    }

    async fn apply(&self, conn: &mut AnyConnection, event: &StoredEvent) -> Result<(), StoreError> {
        use cqrs_es::Aggregate;
        match event.aggregate_type.as_str() {
            Campaign::TYPE => self.campaign(conn, event, event.decode()?).await,
            Post::TYPE => self.post(conn, event, event.decode()?).await,
            _ => Ok(()),
        }
    }
}

/// A campaign row of the dashboard.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct CampaignRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub time_zone: String,
    pub starts_on: String,
    pub ends_on: String,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub count_draft: i64,
    pub count_pending: i64,
    pub count_running: i64,
    pub count_done: i64,
    pub count_failed: i64,
    pub count_cancelled: i64,
}

/// A post row of the dashboard.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct PostRow {
    pub id: String,
    pub tenant_id: String,
    pub campaign_id: String,
    pub status: String,
    pub entries: String,
    pub next_run_at: Option<i64>,
    pub recurrence: Option<String>,
    pub time_zone: Option<String>,
    pub sort_key: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Filter of the post queue.
#[derive(Debug, Clone, Default)]
pub struct PostFilter {
    pub campaign_id: Option<Uuid>,
    pub status: Option<PostStatus>,
    /// Inclusive lower bound on the next run, microseconds.
    pub from: Option<i64>,
    /// Exclusive upper bound on the next run, microseconds.
    pub to: Option<i64>,
}

/// Position of a row in the queue: `(sort_key, id)`.
pub type QueueCursor = (i64, String);

/// Reads of the dashboard. Every read takes the caller's tenant.
#[derive(Clone, Debug)]
pub struct DashboardQueries {
    pool: AnyPool,
}

const CAMPAIGN_COLUMNS: &str = "id, tenant_id, name, time_zone, starts_on, ends_on, status, created_at, updated_at, count_draft, count_pending, count_running, count_done, count_failed, count_cancelled";
const POST_COLUMNS: &str = "id, tenant_id, campaign_id, status, entries, next_run_at, recurrence, time_zone, sort_key, created_at, updated_at";

impl DashboardQueries {
    /// Queries over the `Any` pool.
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// The tenant's campaigns, oldest first, after `after` (created_at, id).
    pub async fn campaigns(
        &self,
        tenant: Uuid,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<CampaignRow>, StoreError> {
        let (at, id) = after.unwrap_or((i64::MIN, String::new()));
        Ok(sqlx::query_as(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM rm_campaigns
              WHERE tenant_id = $1 AND (created_at > $2 OR (created_at = $2 AND id > $3))
              ORDER BY created_at, id LIMIT $4"
        ))
        .bind(tenant.to_string())
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// One campaign of the tenant.
    pub async fn campaign(
        &self,
        tenant: Uuid,
        id: Uuid,
    ) -> Result<Option<CampaignRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM rm_campaigns WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The tenant's posts in queue order (next run first, unscheduled last).
    pub async fn posts(
        &self,
        tenant: Uuid,
        filter: &PostFilter,
        after: Option<QueueCursor>,
        limit: i64,
    ) -> Result<Vec<PostRow>, StoreError> {
        let (key, id) = after.unwrap_or((i64::MIN, String::new()));
        let mut sql = format!(
            "SELECT {POST_COLUMNS} FROM rm_posts
              WHERE tenant_id = $1 AND (sort_key > $2 OR (sort_key = $2 AND id > $3))"
        );
        let mut n = 3;
        let mut next = |clause: &str| {
            n += 1;
            sql.push_str(&clause.replace('?', &format!("${n}")));
        };
        if filter.campaign_id.is_some() {
            next(" AND campaign_id = ?");
        }
        if filter.status.is_some() {
            next(" AND status = ?");
        }
        if filter.from.is_some() {
            next(" AND next_run_at >= ?");
        }
        if filter.to.is_some() {
            next(" AND next_run_at < ?");
        }
        next(" ORDER BY sort_key, id LIMIT ?");
        let mut query = sqlx::query_as(&sql)
            .bind(tenant.to_string())
            .bind(key)
            .bind(id);
        if let Some(c) = filter.campaign_id {
            query = query.bind(c.to_string());
        }
        if let Some(s) = filter.status {
            query = query.bind(s.as_str());
        }
        if let Some(f) = filter.from {
            query = query.bind(f);
        }
        if let Some(t) = filter.to {
            query = query.bind(t);
        }
        Ok(query.bind(limit).fetch_all(&self.pool).await?)
    }

    /// One post of the tenant.
    pub async fn post(&self, tenant: Uuid, id: Uuid) -> Result<Option<PostRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {POST_COLUMNS} FROM rm_posts WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every row of both tables in a stable order, for comparing a replayed
    /// read model with the live one.
    pub async fn snapshot(&self) -> Result<(Vec<CampaignRow>, Vec<PostRow>), StoreError> {
        let campaigns = sqlx::query_as(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM rm_campaigns ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        let posts = sqlx::query_as(&format!("SELECT {POST_COLUMNS} FROM rm_posts ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        Ok((campaigns, posts))
    }
}
