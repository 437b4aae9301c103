//! Post queries and mutations: drafting, scheduling and the dashboard queue.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::access::Action;
use domain::campaign::Campaign as DomainCampaign;
use domain::post::{
    CampaignFacts, ConnectionFacts, EntryInput as DomainEntry, MediaUse, PostCommand, PostEntry,
    PostStatus as Status, ScheduleWindow, parse_entries,
};
use projections::dashboard::PostFilter as Filter;
use projections::micros;
use uuid::Uuid;

use super::objects::{Post, PostConnection, PostFilter, post_by_id, post_page};
use crate::error::{ApiError, ApiResult};
use crate::graphql::{execute, page_cost, parse_id, principal, state};
use crate::state::AppState;
use crate::state::Target;

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
            super::objects::campaign_by_id(ctx, p.tenant_id, campaign).await?;
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
        let target = match command {
            PostCommand::Create { .. } => Target::New(id),
            _ => Target::Existing(id),
        };
        execute(ctx, p, |st| &st.posts, target, command).await?;
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
        // The post decides whether the campaign and connection take it.
        let connection = match &input.connection_id {
            Some(id) => {
                let id = parse_id(id, "connectionId")?;
                let connection = state.load(&state.connections, id).await?;
                match connection.status {
                    Some(status) if connection.tenant_id == Some(p.tenant_id) => {
                        Some(ConnectionFacts { id, status })
                    }
                    _ => return Err(ApiError::NotFound("connection")),
                }
            }
            None => None,
        };
        let entries = entries(state, p.tenant_id, &campaign, &input.entries).await?;
        let id = crate::ids::new_id();
        self.change_and_read(
            ctx,
            &ID(id.to_string()),
            PostCommand::Create {
                campaign: CampaignFacts::of(campaign_id, &campaign),
                connection,
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
