//! The publishing GraphQL object types, campaigns and posts (they refer to
//! each other: a campaign lists its posts, a post names its campaign), and
//! how one or a page of them is read.

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use domain::access::Action;
use domain::campaign::CampaignStatus as CStatus;
use domain::post::{PostEntry, PostStatus as Status};
use domain::schedule::TimeZone;
use domain::text::FacetFeature;
use projections::dashboard::CampaignRow;
use projections::dashboard::{PostFilter as Filter, PostRow, PublishedRow};
use projections::from_micros;
use unicode_segmentation::UnicodeSegmentation;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::graphql::{
    decode_cursor, encode_cursor, page, page_cost, page_size, parse_id, principal, state,
};
use crate::state::AppState;

/// Lifecycle of a campaign.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::campaign::CampaignStatus")]
pub enum CampaignStatus {
    Draft,
    Active,
    Paused,
    Completed,
    Archived,
}

/// Number of a campaign's posts in each status.
#[derive(SimpleObject)]
pub struct PostCounts {
    pub draft: i64,
    pub pending: i64,
    pub running: i64,
    pub done: i64,
    pub failed: i64,
    pub cancelled: i64,
    pub total: i64,
}

/// A campaign date as the read model stores it.
fn parse_date(raw: &str) -> ApiResult<NaiveDate> {
    raw.parse()
        .map_err(|e: chrono::ParseError| ApiError::internal(e))
}

/// A campaign from the dashboard read model.
pub struct Campaign(pub CampaignRow);

#[Object]
impl Campaign {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// IANA time zone that schedules and recurrences use.
    async fn time_zone(&self) -> &str {
        &self.0.time_zone
    }
    async fn starts_on(&self) -> ApiResult<NaiveDate> {
        parse_date(&self.0.starts_on)
    }
    async fn ends_on(&self) -> ApiResult<NaiveDate> {
        parse_date(&self.0.ends_on)
    }
    /// Whether every image of the campaign's posts needs alt text.
    async fn alt_text_required(&self) -> bool {
        self.0.alt_text_required != 0
    }
    /// Current status; an active campaign is COMPLETED once its end date has
    /// passed in its time zone.
    async fn status(&self) -> ApiResult<CampaignStatus> {
        let stored = match self.0.status.as_str() {
            "DRAFT" => CStatus::Draft,
            "ACTIVE" => CStatus::Active,
            "PAUSED" => CStatus::Paused,
            _ => CStatus::Archived,
        };
        let zone = TimeZone::parse(&self.0.time_zone)?;
        Ok(stored
            .effective(parse_date(&self.0.ends_on)?, zone, Utc::now())
            .into())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        from_micros(self.0.created_at)
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        from_micros(self.0.updated_at)
    }
    /// How many of the campaign's posts are in each status.
    async fn post_counts(&self) -> PostCounts {
        let r = &self.0;
        PostCounts {
            draft: r.count_draft,
            pending: r.count_pending,
            running: r.count_running,
            done: r.count_done,
            failed: r.count_failed,
            cancelled: r.count_cancelled,
            total: r.count_draft
                + r.count_pending
                + r.count_running
                + r.count_done
                + r.count_failed
                + r.count_cancelled,
        }
    }
    /// The campaign's posts in queue order.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn posts(
        &self,
        ctx: &Context<'_>,
        status: Option<PostStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<PostConnection> {
        let p = principal(ctx, Action::Read)?;
        let filter = projections::dashboard::PostFilter {
            campaign_id: Some(parse_id(&self.0.id, "id")?),
            status: status.map(Into::into),
            ..Default::default()
        };
        post_page(state(ctx), p.tenant_id, filter, first, after).await
    }
}

pub type CampaignConnection = Connection<String, Campaign>;

/// Reads one campaign of the caller's tenant.
pub async fn campaign_by_id(ctx: &Context<'_>, tenant: Uuid, id: Uuid) -> ApiResult<Campaign> {
    state(ctx)
        .dashboard
        .campaign(tenant, id)
        .await?
        .map(Campaign)
        .ok_or(ApiError::NotFound("campaign"))
}

/// Publishing status of a post.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::post::PostStatus")]
pub enum PostStatus {
    Draft,
    Pending,
    Running,
    Done,
    Failed,
    Cancelled,
}

/// Kind of rich-text facet.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum FacetKind {
    Link,
    Mention,
    Tag,
}

/// A link, mention or hashtag, located by UTF-8 byte offsets.
#[derive(SimpleObject)]
pub struct Facet {
    pub byte_start: i32,
    pub byte_end: i32,
    pub kind: FacetKind,
    /// The URI, the mentioned handle, or the tag without `#`.
    pub value: String,
}

/// One entry of a post or thread.
pub struct Entry(PostEntry);

#[Object]
impl Entry {
    async fn text(&self) -> &str {
        self.0.text.as_str()
    }
    async fn langs(&self) -> &[String] {
        &self.0.langs
    }
    /// Length in grapheme clusters (Bluesky's limit is 300).
    async fn graphemes(&self) -> usize {
        self.0.text.as_str().graphemes(true).count()
    }
    async fn facets(&self) -> Vec<Facet> {
        self.0
            .facets
            .iter()
            .map(|f| {
                let (kind, value) = match &f.feature {
                    FacetFeature::Link { uri } => (FacetKind::Link, uri.clone()),
                    FacetFeature::Mention { handle } => (FacetKind::Mention, handle.clone()),
                    FacetFeature::Tag { tag } => (FacetKind::Tag, tag.clone()),
                };
                Facet {
                    byte_start: f.index.byte_start as i32,
                    byte_end: f.index.byte_end as i32,
                    kind,
                    value,
                }
            })
            .collect()
    }
}

/// A post from the dashboard read model.
pub struct Post(pub PostRow);

#[Object]
impl Post {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn campaign_id(&self) -> ID {
        ID(self.0.campaign_id.clone())
    }
    async fn campaign(&self, ctx: &Context<'_>) -> ApiResult<Campaign> {
        let p = principal(ctx, Action::Read)?;
        campaign_by_id(
            ctx,
            p.tenant_id,
            parse_id(&self.0.campaign_id, "campaignId")?,
        )
        .await
    }
    async fn status(&self) -> PostStatus {
        Status::ALL
            .into_iter()
            .find(|s| s.as_str() == self.0.status)
            .unwrap_or(Status::Draft)
            .into()
    }
    /// The entries; more than one makes a thread.
    async fn entries(&self) -> ApiResult<Vec<Entry>> {
        let entries: Vec<PostEntry> =
            serde_json::from_str(&self.0.entries).map_err(ApiError::internal)?;
        Ok(entries.into_iter().map(Entry).collect())
    }
    /// When the post runs next (UTC); null unless PENDING.
    async fn next_run_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_run_at.map(from_micros)
    }
    /// RFC 5545 RRULE, evaluated in the campaign's time zone.
    async fn recurrence(&self) -> Option<&str> {
        self.0.recurrence.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        from_micros(self.0.created_at)
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        from_micros(self.0.updated_at)
    }
    /// The account the post is published to.
    async fn connection_id(&self) -> Option<ID> {
        self.0.connection_id.clone().map(ID)
    }
    /// Attempts made for the current occurrence.
    async fn attempts(&self) -> i64 {
        self.0.attempts
    }
    /// The last failure, as `KIND: message` (TRANSIENT, RATE_LIMITED, AUTH,
    /// INVALID).
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// When a failed attempt is retried.
    async fn next_retry_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_retry_at.map(from_micros)
    }
    /// Entries as published, in thread order.
    async fn published(&self) -> ApiResult<Vec<PublishedEntry>> {
        let rows: Vec<PublishedRow> =
            serde_json::from_str(&self.0.published).map_err(ApiError::internal)?;
        Ok(rows
            .into_iter()
            .map(|r| PublishedEntry {
                index: r.index as i32,
                uri: r.uri,
                cid: r.cid,
                url: r.url,
                warnings: r.warnings,
            })
            .collect())
    }
}

/// An entry as it exists on Bluesky.
#[derive(SimpleObject)]
pub struct PublishedEntry {
    /// Position in the thread (0-based).
    pub index: i32,
    /// `at://` URI of the record.
    pub uri: String,
    pub cid: String,
    /// The post on bsky.app.
    pub url: Option<String>,
    /// What went out differently from the draft, e.g. a mention whose handle
    /// did not resolve, published as plain text.
    pub warnings: Vec<String>,
}

/// A page of posts.
pub type PostConnection = Connection<String, Post>;

/// Filter of the `posts` query.
#[derive(InputObject, Default)]
pub struct PostFilter {
    pub campaign_id: Option<ID>,
    pub status: Option<PostStatus>,
    /// Next run at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Next run before this instant.
    pub to: Option<DateTime<Utc>>,
}

/// One page of the tenant's queue.
pub async fn post_page(
    state: &AppState,
    tenant: Uuid,
    filter: Filter,
    first: Option<i32>,
    after: Option<String>,
) -> ApiResult<PostConnection> {
    let limit = page_size(first)?;
    let rows = state
        .dashboard
        .posts(tenant, &filter, decode_cursor(after.clone())?, limit + 1)
        .await?;
    Ok(page(rows, limit, after.is_some(), |row| {
        (encode_cursor(row.sort_key, &row.id), Post(row))
    }))
}

/// Reads one post of the caller's tenant.
pub async fn post_by_id(ctx: &Context<'_>, tenant: Uuid, id: Uuid) -> ApiResult<Post> {
    state(ctx)
        .dashboard
        .post(tenant, id)
        .await?
        .map(Post)
        .ok_or(ApiError::NotFound("post"))
}
