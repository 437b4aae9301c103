//! Proof of play: how often and how long a notice played, per display and
//! hour (`noticePlays`).

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::access::Action;
use projections::from_micros;

use super::support::content;
use crate::error::{ApiError, ApiResult};
use crate::graphql::{parse_id, principal, state};

/// Plays of a notice on one display in one hour.
#[derive(SimpleObject)]
pub struct NoticePlays {
    pub display_id: ID,
    /// Start of the hour.
    pub hour: DateTime<Utc>,
    pub plays: i64,
    pub seconds: i64,
}

/// The proof-of-play queries.
#[derive(Default)]
pub struct PlayReportQuery;

#[Object]
impl PlayReportQuery {
    /// Plays of a notice per display and hour in `[from, to)` (kept after
    /// the notice is deleted).
    async fn notice_plays(
        &self,
        ctx: &Context<'_>,
        notice_id: ID,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> ApiResult<Vec<NoticePlays>> {
        let p = principal(ctx, Action::Read)?;
        let notice = parse_id(&notice_id, "noticeId")?;
        if !content(ctx, p).await?.notices.contains_key(&notice) {
            return Err(ApiError::NotFound("notice"));
        }
        if to <= from {
            return Err(ApiError::invalid("to", "must be after from"));
        }
        Ok(state(ctx)
            .signage
            .notice_plays(p.tenant_id, notice, from, to)
            .await?
            .into_iter()
            .map(|r| NoticePlays {
                display_id: ID(r.display_id),
                hour: from_micros(r.hour),
                plays: r.plays,
                seconds: r.seconds,
            })
            .collect())
    }
}
