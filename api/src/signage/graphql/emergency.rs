//! Emergency overrides: the active ones, starting one (pushed to connected
//! displays at once) and clearing one.

use std::collections::BTreeSet;

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::access::Action;
use domain::manifest::ActiveEmergency;
use domain::signage::{EmergencyCommand, Severity as DomainSeverity};

use super::support::{Removed, Target, check_group, check_media, content, execute, id, opt_id};
use crate::error::{ApiError, ApiResult};
use crate::graphql::{parse_id, principal};

/// Severity of an emergency override.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::signage::Severity")]
pub enum Severity {
    Info,
    Warning,
    High,
    Critical,
}

/// An active emergency override.
#[derive(SimpleObject)]
pub struct Emergency {
    pub id: ID,
    pub message: String,
    pub severity: String,
    /// Empty: every display.
    pub group_ids: Vec<ID>,
    pub media_id: Option<ID>,
    pub started_at: DateTime<Utc>,
}

impl From<&ActiveEmergency> for Emergency {
    fn from(e: &ActiveEmergency) -> Self {
        Self {
            id: id(e.id),
            message: e.message.clone(),
            severity: e.severity.clone(),
            group_ids: e.groups.iter().copied().map(id).collect(),
            media_id: e.media_id.map(id),
            started_at: e.started_at,
        }
    }
}

#[derive(InputObject)]
pub struct StartEmergencyInput {
    pub message: String,
    pub severity: Severity,
    /// Groups to override; empty or absent: every display.
    #[graphql(default)]
    pub group_ids: Vec<ID>,
    pub media_id: Option<ID>,
}

/// The emergency override queries.
#[derive(Default)]
pub struct EmergencyQuery;

#[Object]
impl EmergencyQuery {
    /// Active emergency overrides, newest first.
    async fn emergencies(&self, ctx: &Context<'_>) -> ApiResult<Vec<Emergency>> {
        let p = principal(ctx, Action::Read)?;
        let s = content(ctx, p).await?;
        let mut out: Vec<&ActiveEmergency> = s.emergencies.values().collect();
        out.sort_by_key(|a| std::cmp::Reverse(a.started_at));
        Ok(out.into_iter().map(Into::into).collect())
    }
}

/// The emergency override mutations.
#[derive(Default)]
pub struct EmergencyMutation;

#[Object]
impl EmergencyMutation {
    /// Overrides every display (or the displays of some groups) with a
    /// message until cleared; pushed to connected displays at once.
    async fn start_emergency(
        &self,
        ctx: &Context<'_>,
        input: StartEmergencyInput,
    ) -> ApiResult<Emergency> {
        let p = principal(ctx, Action::ManageDisplays)?;
        let s = content(ctx, p).await?;
        let mut groups = BTreeSet::new();
        for (i, g) in input.group_ids.iter().enumerate() {
            let g = parse_id(g, &format!("groupIds.{i}"))?;
            check_group(&s, g)?;
            groups.insert(g);
        }
        let media = opt_id(&input.media_id, "mediaId")?;
        check_media(ctx, p, media).await?;
        let emergency = crate::ids::new_id();
        execute(
            ctx,
            p,
            |st| &st.emergencies,
            Target::New(emergency),
            EmergencyCommand::Start {
                message: input.message,
                severity: DomainSeverity::from(input.severity),
                groups,
                media_id: media,
            },
        )
        .await?;
        let s = content(ctx, p).await?;
        Ok(s.emergencies
            .get(&emergency)
            .ok_or(ApiError::NotFound("emergency"))?
            .into())
    }

    async fn clear_emergency(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Removed> {
        let p = principal(ctx, Action::ManageDisplays)?;
        let emergency = parse_id(&id, "id")?;
        execute(
            ctx,
            p,
            |st| &st.emergencies,
            Target::Existing(emergency),
            EmergencyCommand::Clear,
        )
        .await?;
        Ok(Removed { id })
    }
}
