//! Post queries and mutations: drafting, scheduling and the dashboard queue.

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::Scoped;
use domain::access::Action;
use domain::campaign::{Campaign as DomainCampaign, CampaignStatus as CStatus};
use domain::connection::ConnectionStatus;
use domain::post::{
    EntryInput as DomainEntry, MediaUse, PostCommand, PostEntry, PostStatus as Status,
    ScheduleWindow, parse_entries,
};
use domain::text::FacetFeature;
use projections::dashboard::{PostFilter as Filter, PostRow, PublishedRow};
use projections::{from_micros, micros};
use unicode_segmentation::UnicodeSegmentation;
use uuid::Uuid;

use super::campaigns::{Campaign, campaign_by_id};
use super::{
    correlation, decode_cursor, encode_cursor, page, page_cost, page_size, parse_id, principal,
    state,
};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

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
pub(crate) async fn post_page(
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

async fn post_by_id(ctx: &Context<'_>, tenant: Uuid, id: Uuid) -> ApiResult<Post> {
    state(ctx)
        .dashboard
        .post(tenant, id)
        .await?
        .map(Post)
        .ok_or(ApiError::NotFound("post"))
}

#[derive(Default)]
pub struct PostQuery;

#[Object]
impl PostQuery {
    /// The organisation's posts in queue order: next run first, unscheduled last.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn posts(
        &self,
        ctx: &Context<'_>,
        filter: Option<PostFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<PostConnection> {
        let p = principal(ctx, Action::Read)?;
        let filter = filter.unwrap_or_default();
        let filter = Filter {
            campaign_id: filter
                .campaign_id
                .map(|id| parse_id(&id, "filter.campaignId"))
                .transpose()?,
            status: filter.status.map(Into::into),
            from: filter.from.map(micros),
            to: filter.to.map(micros),
        };
        // Filtering by a campaign the tenant does not have is like naming
        // any other missing id.
        if let Some(campaign) = filter.campaign_id {
            crate::graphql::campaigns::campaign_by_id(ctx, p.tenant_id, campaign).await?;
        }
        post_page(state(ctx), p.tenant_id, filter, first, after).await
    }

    /// Posts that ran out of attempts (dead letters), with their last error;
    /// `retryPost` tries one again.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn failed_posts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<PostConnection> {
        let p = principal(ctx, Action::Read)?;
        let filter = Filter {
            status: Some(Status::Failed),
            ..Default::default()
        };
        post_page(state(ctx), p.tenant_id, filter, first, after).await
    }

    /// One post.
    async fn post(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Post> {
        let p = principal(ctx, Action::Read)?;
        post_by_id(ctx, p.tenant_id, parse_id(&id, "id")?).await
    }
}

/// An image of an entry.
#[derive(InputObject)]
pub struct MediaInput {
    pub asset_id: ID,
    /// Alt text for this use of the image.
    #[graphql(default)]
    pub alt: String,
}

/// One entry as submitted.
#[derive(InputObject)]
pub struct EntryInput {
    pub text: String,
    #[graphql(default)]
    pub langs: Vec<String>,
    /// Up to four images.
    #[graphql(default)]
    pub media: Vec<MediaInput>,
}

/// Validates the entries for a post of `campaign`: every image must be one of
/// the tenant's uploads, with alt text if the campaign requires it.
async fn entries(
    state: &AppState,
    tenant: Uuid,
    campaign: &DomainCampaign,
    input: &[EntryInput],
) -> ApiResult<Vec<PostEntry>> {
    let mut raw = Vec::with_capacity(input.len());
    for (i, e) in input.iter().enumerate() {
        let mut media = Vec::with_capacity(e.media.len());
        for (j, m) in e.media.iter().enumerate() {
            media.push(MediaUse {
                asset_id: parse_id(&m.asset_id, &format!("entries.{i}.media.{j}.assetId"))?,
                alt: m.alt.clone(),
            });
        }
        raw.push(DomainEntry {
            text: e.text.clone(),
            langs: e.langs.clone(),
            media,
        });
    }
    let alt_required = campaign
        .settings
        .as_ref()
        .is_some_and(|s| s.alt_text_required);
    let entries = parse_entries(&raw, alt_required)?;
    for media in entries.iter().flat_map(|e| &e.media) {
        if state
            .media_reads
            .get(tenant, media.asset_id)
            .await?
            .is_none()
        {
            return Err(ApiError::NotFound("media asset"));
        }
    }
    Ok(entries)
}

/// Input of `createPost`.
#[derive(InputObject)]
pub struct CreatePostInput {
    pub campaign_id: ID,
    /// The Bluesky connection it is published to.
    pub connection_id: Option<ID>,
    pub entries: Vec<EntryInput>,
}

/// Input of `updatePost`.
#[derive(InputObject)]
pub struct UpdatePostInput {
    pub post_id: ID,
    pub entries: Vec<EntryInput>,
}

/// Input of `schedulePost`.
#[derive(InputObject)]
pub struct SchedulePostInput {
    pub post_id: ID,
    /// First run, in the future.
    pub at: DateTime<Utc>,
    /// Optional RFC 5545 RRULE such as `FREQ=WEEKLY;BYDAY=MO`.
    pub recurrence: Option<String>,
}

/// Input of `reschedulePost`.
#[derive(InputObject)]
pub struct ReschedulePostInput {
    pub post_id: ID,
    pub at: DateTime<Utc>,
}

/// Result of `deletePost`.
#[derive(SimpleObject)]
pub struct DeletedPost {
    pub id: ID,
}

/// The campaign of one of the tenant's posts (`NOT_FOUND` for a post the
/// tenant does not have, or no longer has).
async fn campaign_of_post(state: &AppState, tenant: Uuid, post: Uuid) -> ApiResult<DomainCampaign> {
    let post = state.load(&state.posts, post).await?;
    match post.campaign_id {
        Some(campaign) if post.tenant_id == Some(tenant) && !post.deleted => {
            state.load(&state.campaigns, campaign).await
        }
        _ => Err(ApiError::NotFound("post")),
    }
}

#[derive(Default)]
pub struct PostMutation;

impl PostMutation {
    async fn change(&self, ctx: &Context<'_>, id: Uuid, command: PostCommand) -> ApiResult<Uuid> {
        let p = principal(ctx, Action::ManagePosts)?;
        let state = state(ctx);
        let meta = state.metadata(p, correlation(ctx));
        let fresh = matches!(command, PostCommand::Create { .. });
        let command = Scoped {
            tenant_id: p.tenant_id,
            command,
        };
        if fresh {
            state.create(&state.posts, id, command, &meta).await?;
        } else {
            state.run(&state.posts, id, command, &meta).await?;
        }
        Ok(id)
    }

    async fn change_and_read(
        &self,
        ctx: &Context<'_>,
        id: &ID,
        command: PostCommand,
    ) -> ApiResult<Post> {
        let tenant = principal(ctx, Action::ManagePosts)?.tenant_id;
        let id = self.change(ctx, parse_id(id, "postId")?, command).await?;
        post_by_id(ctx, tenant, id).await
    }
}

#[Object]
impl PostMutation {
    /// Drafts a post (one entry) or a thread (up to 25 entries).
    async fn create_post(&self, ctx: &Context<'_>, input: CreatePostInput) -> ApiResult<Post> {
        let p = principal(ctx, Action::ManagePosts)?;
        let state = state(ctx);
        let campaign_id = parse_id(&input.campaign_id, "campaignId")?;
        let campaign = state.load(&state.campaigns, campaign_id).await?;
        if !campaign.visible_to(p.tenant_id) {
            return Err(ApiError::NotFound("campaign"));
        }
        if campaign.status == Some(CStatus::Archived) {
            return Err(ApiError::Conflict("the campaign is archived".into()));
        }
        let connection_id = match &input.connection_id {
            Some(id) => {
                let id = parse_id(id, "connectionId")?;
                let connection = state.load(&state.connections, id).await?;
                if connection.tenant_id != Some(p.tenant_id) {
                    return Err(ApiError::NotFound("connection"));
                }
                if connection.status == Some(ConnectionStatus::Revoked) {
                    return Err(ApiError::Conflict("the connection was disconnected".into()));
                }
                Some(id)
            }
            None => None,
        };
        let entries = entries(state, p.tenant_id, &campaign, &input.entries).await?;
        let id = Uuid::now_v7();
        self.change_and_read(
            ctx,
            &ID(id.to_string()),
            PostCommand::Create {
                campaign_id,
                connection_id,
                entries,
            },
        )
        .await
    }

    /// Replaces a post's entries.
    async fn update_post(&self, ctx: &Context<'_>, input: UpdatePostInput) -> ApiResult<Post> {
        let p = principal(ctx, Action::ManagePosts)?;
        let state = state(ctx);
        let post_id = parse_id(&input.post_id, "postId")?;
        let campaign = campaign_of_post(state, p.tenant_id, post_id).await?;
        let entries = entries(state, p.tenant_id, &campaign, &input.entries).await?;
        self.change_and_read(ctx, &input.post_id, PostCommand::Update { entries })
            .await
    }

    /// Deletes a post; it will never be published.
    async fn delete_post(&self, ctx: &Context<'_>, id: ID) -> ApiResult<DeletedPost> {
        principal(ctx, Action::ManagePosts)?;
        self.change(ctx, parse_id(&id, "id")?, PostCommand::Delete)
            .await?;
        Ok(DeletedPost { id })
    }

    /// Schedules a draft for `at` (UTC, in the future), optionally recurring
    /// by an RRULE evaluated in the campaign's time zone.
    async fn schedule_post(&self, ctx: &Context<'_>, input: SchedulePostInput) -> ApiResult<Post> {
        let p = principal(ctx, Action::ManagePosts)?;
        let state = state(ctx);
        let post_id = parse_id(&input.post_id, "postId")?;
        let campaign = campaign_of_post(state, p.tenant_id, post_id).await?;
        let window = campaign
            .settings
            .map(|s| ScheduleWindow {
                time_zone: s.time_zone,
                starts_on: s.starts_on,
                ends_on: s.ends_on,
            })
            .ok_or(ApiError::NotFound("campaign"))?;
        let command = PostCommand::Schedule {
            at: input.at,
            recurrence: input.recurrence,
            window,
            now: Utc::now(),
        };
        self.change_and_read(ctx, &input.post_id, command).await
    }

    /// Moves a scheduled, cancelled or failed post to a new time.
    async fn reschedule_post(
        &self,
        ctx: &Context<'_>,
        input: ReschedulePostInput,
    ) -> ApiResult<Post> {
        let command = PostCommand::Reschedule {
            at: input.at,
            now: Utc::now(),
        };
        self.change_and_read(ctx, &input.post_id, command).await
    }

    /// Cancels a PENDING post; it will not be published at its time.
    async fn cancel_post(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Post> {
        self.change_and_read(ctx, &id, PostCommand::Cancel).await
    }

    /// Tries a FAILED post (a dead letter) again now, with fresh attempts;
    /// a thread resumes after its last published entry.
    async fn retry_post(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Post> {
        let command = PostCommand::Retry { now: Utc::now() };
        self.change_and_read(ctx, &id, command).await
    }

    /// Removes every published entry of a post from Bluesky, then records it.
    async fn delete_published_post(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Post> {
        let p = principal(ctx, Action::ManagePosts)?;
        let state = state(ctx);
        let post_id = parse_id(&id, "id")?;
        let post = state.load(&state.posts, post_id).await?;
        if post.tenant_id != Some(p.tenant_id) || post.deleted {
            return Err(ApiError::NotFound("post"));
        }
        if post.records.is_empty() {
            return Err(ApiError::Conflict(
                "nothing of this post is published".into(),
            ));
        }
        let connection_id = post.connection_id.ok_or(ApiError::NotFound("connection"))?;
        let connection = state.load(&state.connections, connection_id).await?;
        let client = state
            .accounts
            .client(connection_id, &connection)
            .await
            .map_err(super::connections::account_error)?;
        // Replies first, so no moment shows a reply without its parent.
        for record in post.records.iter().rev() {
            client
                .delete_post(&record.rkey)
                .await
                .map_err(|e| super::connections::account_error(e.into()))?;
        }
        self.change_and_read(ctx, &id, PostCommand::RecordUnpublished)
            .await
    }
}
