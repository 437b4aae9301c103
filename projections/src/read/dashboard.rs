//! The dashboard read model: campaigns with post counts per status, and posts
//! in queue order. Fed by the `dashboard` projection; queried by the API.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use domain::campaign::{Campaign, CampaignEvent, CampaignSettings, CampaignStatus};
use domain::post::{Post, PostEvent, PostStatus};
use domain::publish::FailureKind;
use sqlx::{AnyConnection, AnyPool, FromRow};
use uuid::Uuid;

use crate::infra::sql::{CHUNK, in_list, placeholders};
use crate::{Projection, StoreError, StoredEvent, micros};

/// `sort_key` of posts without a next run: after every real instant.
pub const UNSCHEDULED: i64 = i64::MAX;

/// The dashboard projection.
pub struct Dashboard;

fn counter(row: &mut CampaignRow, status: PostStatus) -> &mut i64 {
    match status {
        PostStatus::Draft => &mut row.count_draft,
        PostStatus::Pending => &mut row.count_pending,
        PostStatus::Running => &mut row.count_running,
        PostStatus::Done => &mut row.count_done,
        PostStatus::Failed => &mut row.count_failed,
        PostStatus::Cancelled => &mut row.count_cancelled,
    }
}

fn parse_status(s: &str) -> Option<PostStatus> {
    PostStatus::ALL.into_iter().find(|p| p.as_str() == s)
}

/// The rows a batch of events touches, folded in memory and written back with
/// a few multi-row statements. Replaying a million events then costs a few
/// hundred statements instead of several per event.
#[derive(Default)]
struct Batch {
    campaigns: HashMap<String, CampaignRow>,
    posts: HashMap<String, PostRow>,
    dirty_campaigns: HashSet<String>,
    dirty_posts: HashSet<String>,
    deleted_posts: HashSet<String>,
}

/// An event of the batch this read model reads, decoded once (shared with
/// the other projections of a replay, see [`StoredEvent::event_of`]).
enum Decoded<'a> {
    Campaign(&'a CampaignEvent),
    Post(&'a PostEvent),
}

impl Batch {
    async fn load(
        conn: &mut AnyConnection,
        events: &[(&StoredEvent, Decoded<'_>)],
    ) -> Result<Self, StoreError> {
        let mut batch = Batch::default();
        let post_ids: HashSet<&str> = events
            .iter()
            .filter(|(_, d)| matches!(d, Decoded::Post(_)))
            .map(|(e, _)| e.aggregate_id.as_str())
            .collect();
        for chunk in post_ids.into_iter().collect::<Vec<_>>().chunks(CHUNK) {
            let list = in_list(conn, chunk.len());
            let sql = format!("SELECT {POST_COLUMNS} FROM rm_posts WHERE id IN ({list})");
            let mut query = sqlx::query_as::<_, PostRow>(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&mut *conn).await? {
                batch.posts.insert(row.id.clone(), row);
            }
        }
        let mut campaign_ids: HashSet<String> = batch
            .posts
            .values()
            .map(|p| p.campaign_id.clone())
            .collect();
        for (event, decoded) in events {
            match decoded {
                Decoded::Campaign(_) => campaign_ids.insert(event.aggregate_id.clone()),
                Decoded::Post(PostEvent::PostCreated { campaign_id, .. }) => {
                    campaign_ids.insert(campaign_id.to_string())
                }
                Decoded::Post(_) => false,
            };
        }
        for chunk in campaign_ids.into_iter().collect::<Vec<_>>().chunks(CHUNK) {
            let list = in_list(conn, chunk.len());
            let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM rm_campaigns WHERE id IN ({list})");
            let mut query = sqlx::query_as::<_, CampaignRow>(&sql);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for row in query.fetch_all(&mut *conn).await? {
                batch.campaigns.insert(row.id.clone(), row);
            }
        }
        Ok(batch)
    }

    fn campaign(&mut self, id: &str, at: i64, change: impl FnOnce(&mut CampaignRow)) {
        if let Some(row) = self.campaigns.get_mut(id) {
            change(row);
            row.updated_at = at;
            self.dirty_campaigns.insert(id.to_string());
        }
    }

    fn apply_campaign(&mut self, id: &str, at: i64, event: &CampaignEvent) {
        let status =
            |s: CampaignStatus| move |row: &mut CampaignRow| row.status = s.as_str().to_string();
        match event {
            CampaignEvent::CampaignCreated {
                tenant_id,
                settings,
            } => {
                if self.campaigns.contains_key(id) {
                    return;
                }
                self.campaigns.insert(
                    id.to_string(),
                    CampaignRow {
                        id: id.to_string(),
                        tenant_id: tenant_id.to_string(),
                        name: settings.name.clone(),
                        time_zone: settings.time_zone.name().to_string(),
                        starts_on: settings.starts_on.to_string(),
                        ends_on: settings.ends_on.to_string(),
                        alt_text_required: settings.alt_text_required.into(),
                        status: CampaignStatus::Draft.as_str().to_string(),
                        created_at: at,
                        updated_at: at,
                        count_draft: 0,
                        count_pending: 0,
                        count_running: 0,
                        count_done: 0,
                        count_failed: 0,
                        count_cancelled: 0,
                    },
                );
                self.dirty_campaigns.insert(id.to_string());
            }
            CampaignEvent::CampaignUpdated { settings } => self.campaign(id, at, |row| {
                let CampaignSettings {
                    name,
                    time_zone,
                    starts_on,
                    ends_on,
                    alt_text_required,
                } = settings;
                row.name = name.clone();
                row.time_zone = time_zone.name().to_string();
                row.starts_on = starts_on.to_string();
                row.ends_on = ends_on.to_string();
                row.alt_text_required = (*alt_text_required).into();
            }),
            CampaignEvent::CampaignActivated | CampaignEvent::CampaignResumed => {
                self.campaign(id, at, status(CampaignStatus::Active))
            }
            CampaignEvent::CampaignPaused => self.campaign(id, at, status(CampaignStatus::Paused)),
            CampaignEvent::CampaignArchived => {
                self.campaign(id, at, status(CampaignStatus::Archived))
            }
        }
    }

    /// Moves a post to `status` (`None`: removed), keeping its campaign's
    /// counters in step.
    fn move_post(&mut self, id: &str, status: Option<PostStatus>) {
        let Some(row) = self.posts.get(id) else {
            return;
        };
        let old = parse_status(&row.status);
        if old == status {
            return;
        }
        let campaign_id = row.campaign_id.clone();
        if let Some(campaign) = self.campaigns.get_mut(&campaign_id) {
            if let Some(old) = old {
                *counter(campaign, old) -= 1;
            }
            if let Some(new) = status {
                *counter(campaign, new) += 1;
            }
            self.dirty_campaigns.insert(campaign_id);
        }
        match status {
            Some(status) => {
                self.posts.get_mut(id).expect("present").status = status.as_str().to_string()
            }
            None => {
                self.posts.remove(id);
                self.dirty_posts.remove(id);
                self.deleted_posts.insert(id.to_string());
            }
        }
    }

    fn apply_post(&mut self, id: &str, at: i64, event: &PostEvent) {
        if let PostEvent::EngagementSampled { .. } = event {
            return;
        }
        if let PostEvent::PostCreated {
            tenant_id,
            campaign_id,
            connection_id,
            entries,
        } = event
        {
            if self.posts.contains_key(id) || self.deleted_posts.contains(id) {
                return;
            }
            let campaign_id = campaign_id.to_string();
            if let Some(campaign) = self.campaigns.get_mut(&campaign_id) {
                campaign.count_draft += 1;
                self.dirty_campaigns.insert(campaign_id.clone());
            }
            self.posts.insert(
                id.to_string(),
                PostRow {
                    id: id.to_string(),
                    tenant_id: tenant_id.to_string(),
                    campaign_id,
                    status: PostStatus::Draft.as_str().to_string(),
                    entries: serde_json::to_string(entries).expect("entries serialize"),
                    next_run_at: None,
                    recurrence: None,
                    time_zone: None,
                    sort_key: UNSCHEDULED,
                    created_at: at,
                    updated_at: at,
                    connection_id: connection_id.map(|c| c.to_string()),
                    attempts: 0,
                    last_error: None,
                    next_retry_at: None,
                    published: "[]".into(),
                },
            );
            self.dirty_posts.insert(id.to_string());
            return;
        }
        let Some(row) = self.posts.get_mut(id) else {
            return;
        };
        row.updated_at = at;
        self.dirty_posts.insert(id.to_string());
        let next = match event {
            PostEvent::PostCreated { .. } => unreachable!("handled above"),
            PostEvent::PostUpdated { entries } => {
                row.entries = serde_json::to_string(entries).expect("entries serialize");
                return;
            }
            PostEvent::PostScheduled {
                at: run_at,
                recurrence,
                time_zone,
            } => {
                row.next_run_at = Some(micros(*run_at));
                row.sort_key = micros(*run_at);
                row.recurrence = recurrence.as_ref().map(|r| r.as_str().to_string());
                row.time_zone = Some(time_zone.name().to_string());
                Some(PostStatus::Pending)
            }
            PostEvent::PostRescheduled { at: run_at } => {
                row.next_run_at = Some(micros(*run_at));
                row.sort_key = micros(*run_at);
                Some(PostStatus::Pending)
            }
            PostEvent::PostCancelled => {
                row.next_run_at = None;
                row.next_retry_at = None;
                row.sort_key = UNSCHEDULED;
                Some(PostStatus::Cancelled)
            }
            PostEvent::PostDeleted => None,
            PostEvent::PublishStarted { attempt, .. } => {
                row.attempts = i64::from(*attempt);
                row.next_retry_at = None;
                Some(PostStatus::Running)
            }
            PostEvent::EntryPublished { entry, .. } => {
                let mut published: Vec<PublishedRow> =
                    serde_json::from_str(&row.published).unwrap_or_default();
                published.push(PublishedRow {
                    url: entry.web_url(),
                    index: entry.index,
                    uri: entry.uri.clone(),
                    cid: entry.cid.clone(),
                    warnings: entry.warnings.clone(),
                });
                row.published = serde_json::to_string(&published).expect("serializes");
                return;
            }
            PostEvent::PublishSucceeded { next_at, .. } => {
                row.last_error = None;
                row.next_retry_at = None;
                row.next_run_at = next_at.map(micros);
                row.sort_key = next_at.map_or(UNSCHEDULED, micros);
                Some(match next_at {
                    Some(_) => PostStatus::Pending,
                    None => PostStatus::Done,
                })
            }
            PostEvent::PublishFailed {
                kind,
                message,
                retry_at,
                ..
            } => {
                if *kind == FailureKind::Auth {
                    // Waiting for the connection is not an attempt.
                    row.attempts = (row.attempts - 1).max(0);
                }
                row.last_error = Some(format!("{}: {message}", kind.as_str()));
                row.next_retry_at = retry_at.map(micros);
                row.next_run_at = retry_at.map(micros);
                row.sort_key = retry_at.map_or(UNSCHEDULED, micros);
                Some(match retry_at {
                    Some(_) => PostStatus::Pending,
                    None => PostStatus::Failed,
                })
            }
            PostEvent::PublishRetryRequested { at: run_at } => {
                row.attempts = 0;
                row.next_retry_at = None;
                row.next_run_at = Some(micros(*run_at));
                row.sort_key = micros(*run_at);
                Some(PostStatus::Pending)
            }
            PostEvent::PostUnpublished { .. } => {
                row.published = "[]".into();
                return;
            }
            PostEvent::EngagementSampled { .. } => unreachable!("skipped above"),
        };
        self.move_post(id, next);
    }

    async fn write(self, conn: &mut AnyConnection) -> Result<(), StoreError> {
        let mut campaigns: Vec<&CampaignRow> = self
            .dirty_campaigns
            .iter()
            .filter_map(|id| self.campaigns.get(id))
            .collect();
        campaigns.sort_by(|a, b| a.id.cmp(&b.id));
        for chunk in campaigns.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO rm_campaigns ({CAMPAIGN_COLUMNS}) VALUES {} ON CONFLICT (id) DO UPDATE SET
                   name = excluded.name, time_zone = excluded.time_zone, starts_on = excluded.starts_on,
                   ends_on = excluded.ends_on, alt_text_required = excluded.alt_text_required,
                   status = excluded.status, updated_at = excluded.updated_at,
                   count_draft = excluded.count_draft, count_pending = excluded.count_pending,
                   count_running = excluded.count_running, count_done = excluded.count_done,
                   count_failed = excluded.count_failed, count_cancelled = excluded.count_cancelled",
                placeholders(conn, chunk.len(), 16)
            );
            let mut query = sqlx::query(&sql);
            for r in chunk {
                query = query
                    .bind(&r.id)
                    .bind(&r.tenant_id)
                    .bind(&r.name)
                    .bind(&r.time_zone)
                    .bind(&r.starts_on)
                    .bind(&r.ends_on)
                    .bind(r.alt_text_required)
                    .bind(&r.status)
                    .bind(r.created_at)
                    .bind(r.updated_at)
                    .bind(r.count_draft)
                    .bind(r.count_pending)
                    .bind(r.count_running)
                    .bind(r.count_done)
                    .bind(r.count_failed)
                    .bind(r.count_cancelled);
            }
            query.execute(&mut *conn).await?;
        }
        let mut posts: Vec<&PostRow> = self
            .dirty_posts
            .iter()
            .filter_map(|id| self.posts.get(id))
            .collect();
        posts.sort_by(|a, b| a.id.cmp(&b.id));
        for chunk in posts.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO rm_posts ({POST_COLUMNS}) VALUES {} ON CONFLICT (id) DO UPDATE SET
                   status = excluded.status, entries = excluded.entries, next_run_at = excluded.next_run_at,
                   recurrence = excluded.recurrence, time_zone = excluded.time_zone,
                   sort_key = excluded.sort_key, updated_at = excluded.updated_at,
                   connection_id = excluded.connection_id, attempts = excluded.attempts,
                   last_error = excluded.last_error, next_retry_at = excluded.next_retry_at,
                   published = excluded.published",
                placeholders(conn, chunk.len(), 16)
            );
            let mut query = sqlx::query(&sql);
            for r in chunk {
                query = query
                    .bind(&r.id)
                    .bind(&r.tenant_id)
                    .bind(&r.campaign_id)
                    .bind(&r.status)
                    .bind(&r.entries)
                    .bind(r.next_run_at)
                    .bind(&r.recurrence)
                    .bind(&r.time_zone)
                    .bind(r.sort_key)
                    .bind(r.created_at)
                    .bind(r.updated_at)
                    .bind(&r.connection_id)
                    .bind(r.attempts)
                    .bind(&r.last_error)
                    .bind(r.next_retry_at)
                    .bind(&r.published);
            }
            query.execute(&mut *conn).await?;
        }
        let deleted: Vec<&String> = self.deleted_posts.iter().collect();
        for chunk in deleted.chunks(CHUNK) {
            let list = in_list(conn, chunk.len());
            let sql = format!("DELETE FROM rm_posts WHERE id IN ({list})");
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }
}

impl Dashboard {
    /// The projection's name (checkpoint key, `--projection` argument, and
    /// what an operation names when it waits for this read model).
    pub const NAME: &'static str = "dashboard";
}

#[async_trait]
impl Projection for Dashboard {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_posts", "rm_campaigns"]
    }

    fn deferred_indexes(&self) -> &'static [&'static str] {
        &[
            "rm_posts_queue",
            "rm_posts_campaign_queue",
            "rm_campaigns_by_tenant",
        ]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        events: &[StoredEvent],
    ) -> Result<(), StoreError> {
        let mut decoded = Vec::with_capacity(events.len());
        for event in events {
            if let Some(e) = event.event_of::<Campaign>()? {
                decoded.push((event, Decoded::Campaign(e)));
            } else if let Some(e) = event.event_of::<Post>()? {
                // Engagement samples change nothing here: skipped before
                // loading their posts.
                if !matches!(e, PostEvent::EngagementSampled { .. }) {
                    decoded.push((event, Decoded::Post(e)));
                }
            }
        }
        if decoded.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::load(conn, &decoded).await?;
        for (event, payload) in decoded {
            let at = micros(event.metadata.recorded_at);
            match payload {
                Decoded::Campaign(e) => batch.apply_campaign(&event.aggregate_id, at, e),
                Decoded::Post(e) => batch.apply_post(&event.aggregate_id, at, e),
            }
        }
        batch.write(conn).await
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
    /// 1 when every image of the campaign's posts needs alt text, else 0.
    pub alt_text_required: i64,
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
    pub connection_id: Option<String>,
    /// Attempts of the current occurrence.
    pub attempts: i64,
    /// `KIND: message` of the last failure.
    pub last_error: Option<String>,
    pub next_retry_at: Option<i64>,
    /// JSON list of [`PublishedRow`].
    pub published: String,
}

/// One published entry as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PublishedRow {
    pub index: u32,
    pub uri: String,
    pub cid: String,
    /// https://bsky.app/profile/…/post/…
    pub url: Option<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
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

const CAMPAIGN_COLUMNS: &str = "id, tenant_id, name, time_zone, starts_on, ends_on, alt_text_required, status, created_at, updated_at, count_draft, count_pending, count_running, count_done, count_failed, count_cancelled";
const POST_COLUMNS: &str = "id, tenant_id, campaign_id, status, entries, next_run_at, recurrence, time_zone, sort_key, created_at, updated_at, connection_id, attempts, last_error, next_retry_at, published";

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
        let mut conn = crate::db::scoped(&self.pool, tenant).await?;
        Ok(sqlx::query_as(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM rm_campaigns
              WHERE tenant_id = $1 AND (created_at > $2 OR (created_at = $2 AND id > $3))
              ORDER BY created_at, id LIMIT $4"
        ))
        .bind(tenant.to_string())
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?)
    }

    /// One campaign of the tenant.
    pub async fn campaign(
        &self,
        tenant: Uuid,
        id: Uuid,
    ) -> Result<Option<CampaignRow>, StoreError> {
        let mut conn = crate::db::scoped(&self.pool, tenant).await?;
        Ok(sqlx::query_as(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM rm_campaigns WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
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
        let mut conn = crate::db::scoped(&self.pool, tenant).await?;
        Ok(query.bind(limit).fetch_all(&mut *conn).await?)
    }

    /// One post of the tenant.
    pub async fn post(&self, tenant: Uuid, id: Uuid) -> Result<Option<PostRow>, StoreError> {
        let mut conn = crate::db::scoped(&self.pool, tenant).await?;
        Ok(sqlx::query_as(&format!(
            "SELECT {POST_COLUMNS} FROM rm_posts WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
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

/// A post the engagement collector samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPost {
    pub post_id: Uuid,
    pub tenant_id: Uuid,
    pub connection_id: Uuid,
    /// `at://` URIs of its published records.
    pub uris: Vec<String>,
}

/// Published posts with a connection, across tenants (for the engagement
/// collector), in id order after `after`, at most `limit`. It reads
/// `rm_posts`, so it lives with the read model that owns that table.
pub async fn published_posts(
    pool: &AnyPool,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<PublishedPost>, StoreError> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT id, tenant_id, connection_id, published FROM rm_posts
          WHERE connection_id IS NOT NULL AND (status = 'DONE' OR published <> '[]') AND id > $1
          ORDER BY id LIMIT $2",
    )
    .bind(after.map(|a| a.to_string()).unwrap_or_default())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, tenant, connection, published)| {
            let published: Vec<PublishedRow> = serde_json::from_str(&published).unwrap_or_default();
            Some(PublishedPost {
                post_id: id.parse().ok()?,
                tenant_id: tenant.parse().ok()?,
                connection_id: connection.parse().ok()?,
                uris: published.into_iter().map(|p| p.uri).collect(),
            })
        })
        .collect())
}
