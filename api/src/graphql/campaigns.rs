//! Campaign queries and mutations.

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use domain::Scoped;
use domain::access::Action;
use domain::campaign::{CampaignCommand, CampaignSettings, CampaignStatus as Status};
use domain::schedule::TimeZone;
use projections::dashboard::CampaignRow;
use projections::from_micros;
use uuid::Uuid;

use super::posts::{PostConnection, PostStatus, post_page};
use super::{
    correlation, decode_cursor, encode_cursor, page, page_cost, page_size, parse_id, principal,
    state,
};
use crate::error::{ApiError, ApiResult};

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
            "DRAFT" => Status::Draft,
            "ACTIVE" => Status::Active,
            "PAUSED" => Status::Paused,
            _ => Status::Archived,
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

fn parse_date(raw: &str) -> ApiResult<NaiveDate> {
    raw.parse()
        .map_err(|e: chrono::ParseError| ApiError::internal(e))
}

/// Campaign settings as submitted.
#[derive(InputObject)]
pub struct CampaignInput {
    pub name: String,
    /// IANA name such as `Europe/Berlin`.
    pub time_zone: String,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    /// Whether every image of the campaign's posts needs alt text. The
    /// settings are replaced as a whole: leaving it out turns it off.
    #[graphql(default)]
    pub alt_text_required: bool,
}

impl CampaignInput {
    fn parse(&self) -> ApiResult<CampaignSettings> {
        let settings =
            CampaignSettings::parse(&self.name, &self.time_zone, self.starts_on, self.ends_on)?;
        Ok(CampaignSettings {
            alt_text_required: self.alt_text_required,
            ..settings
        })
    }
}

/// A page of campaigns.
pub type CampaignConnection = Connection<String, Campaign>;

/// Reads one campaign of the caller's tenant.
pub(crate) async fn campaign_by_id(
    ctx: &Context<'_>,
    tenant: Uuid,
    id: Uuid,
) -> ApiResult<Campaign> {
    state(ctx)
        .dashboard
        .campaign(tenant, id)
        .await?
        .map(Campaign)
        .ok_or(ApiError::NotFound("campaign"))
}

#[derive(Default)]
pub struct CampaignQuery;

#[Object]
impl CampaignQuery {
    /// The organisation's campaigns, oldest first.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn campaigns(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<CampaignConnection> {
        let p = principal(ctx, Action::Read)?;
        let limit = page_size(first)?;
        let rows = state(ctx)
            .dashboard
            .campaigns(p.tenant_id, decode_cursor(after.clone())?, limit + 1)
            .await?;
        Ok(page(rows, limit, after.is_some(), |row| {
            (encode_cursor(row.created_at, &row.id), Campaign(row))
        }))
    }

    /// One campaign.
    async fn campaign(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Campaign> {
        let p = principal(ctx, Action::Read)?;
        campaign_by_id(ctx, p.tenant_id, parse_id(&id, "id")?).await
    }
}

#[derive(Default)]
pub struct CampaignMutation;

impl CampaignMutation {
    async fn change(
        &self,
        ctx: &Context<'_>,
        id: &ID,
        command: CampaignCommand,
    ) -> ApiResult<Campaign> {
        let p = principal(ctx, Action::ManageCampaigns)?;
        let state = state(ctx);
        let id = parse_id(id, "id")?;
        let meta = state.metadata(p, correlation(ctx));
        let fresh = matches!(command, CampaignCommand::Create(_));
        let command = Scoped {
            tenant_id: p.tenant_id,
            command,
        };
        if fresh {
            state.create(&state.campaigns, id, command, &meta).await?;
        } else {
            state.run(&state.campaigns, id, command, &meta).await?;
        }
        campaign_by_id(ctx, p.tenant_id, id).await
    }
}

#[Object]
impl CampaignMutation {
    /// Creates a campaign in DRAFT.
    async fn create_campaign(
        &self,
        ctx: &Context<'_>,
        input: CampaignInput,
    ) -> ApiResult<Campaign> {
        principal(ctx, Action::ManageCampaigns)?;
        let settings = input.parse()?;
        self.change(
            ctx,
            &ID(Uuid::now_v7().to_string()),
            CampaignCommand::Create(settings),
        )
        .await
    }

    /// Changes name, time zone, dates or whether images need alt text.
    async fn update_campaign(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: CampaignInput,
    ) -> ApiResult<Campaign> {
        principal(ctx, Action::ManageCampaigns)?;
        let settings = input.parse()?;
        self.change(ctx, &id, CampaignCommand::Update(settings))
            .await
    }

    /// Moves a DRAFT campaign to ACTIVE.
    async fn activate_campaign(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Campaign> {
        self.change(ctx, &id, CampaignCommand::Activate).await
    }

    /// Pauses an ACTIVE campaign.
    async fn pause_campaign(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Campaign> {
        self.change(ctx, &id, CampaignCommand::Pause).await
    }

    /// Resumes a PAUSED campaign.
    async fn resume_campaign(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Campaign> {
        self.change(ctx, &id, CampaignCommand::Resume).await
    }

    /// Archives a campaign; it can no longer be changed.
    async fn archive_campaign(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Campaign> {
        self.change(ctx, &id, CampaignCommand::Archive).await
    }
}
