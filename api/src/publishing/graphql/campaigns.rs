//! Campaign queries and mutations.

use async_graphql::{Context, ID, InputObject, Object};
use chrono::NaiveDate;
use domain::access::Action;
use domain::campaign::{CampaignCommand, CampaignSettings};

use super::objects::{Campaign, CampaignConnection, campaign_by_id};
use crate::error::ApiResult;
use crate::graphql::{
    decode_cursor, encode_cursor, execute, page, page_cost, page_size, parse_id, principal, state,
};
use crate::state::Target;

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
        let id = parse_id(id, "id")?;
        let target = match command {
            CampaignCommand::Create(_) => Target::New(id),
            _ => Target::Existing(id),
        };
        execute(ctx, p, |st| &st.campaigns, target, command).await?;
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
            &ID(crate::ids::new_id().to_string()),
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
