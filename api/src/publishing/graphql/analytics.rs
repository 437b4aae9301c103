//! Engagement analytics: time series of likes, reposts, replies and quotes
//! per post and per campaign, from the `analytics` read model.

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::access::Action;
use projections::analytics::{Analytics, Buckets, Subject};
use projections::{from_micros, micros};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::graphql::{parse_id, principal, state};

/// Shortest bucket, in seconds.
pub const MIN_INTERVAL: i32 = 60;
/// Longest bucket: 31 days, in seconds.
pub const MAX_INTERVAL: i32 = 31 * 24 * 3600;
/// Most buckets one series may have.
pub const MAX_BUCKETS: i64 = 1000;

/// Engagement at the end of a bucket: cumulative totals as the platform
/// reported them last before the bucket ended (summed over the posts of a
/// campaign).
#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct EngagementPoint {
    /// Start of the bucket.
    pub at: DateTime<Utc>,
    pub likes: i64,
    pub reposts: i64,
    pub replies: i64,
    pub quotes: i64,
}

/// Checks the range and the bucket size.
fn buckets(from: DateTime<Utc>, to: DateTime<Utc>, interval: i32) -> ApiResult<Buckets> {
    if from >= to {
        return Err(ApiError::invalid("to", "must be after from"));
    }
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
        return Err(ApiError::invalid(
            "interval",
            format!("seconds between {MIN_INTERVAL} and {MAX_INTERVAL} (31 days)"),
        ));
    }
    let buckets = Buckets {
        from: micros(from),
        to: micros(to),
        interval: i64::from(interval) * 1_000_000,
    };
    if buckets.count() > MAX_BUCKETS {
        return Err(ApiError::invalid(
            "interval",
            format!(
                "the range holds {} buckets of this size; at most {MAX_BUCKETS}",
                buckets.count()
            ),
        ));
    }
    Ok(buckets)
}

async fn series(
    ctx: &Context<'_>,
    tenant: Uuid,
    subject: Subject,
    buckets: Buckets,
) -> ApiResult<Vec<EngagementPoint>> {
    // Analytics follow at their own pace: show the caller's writes.
    state(ctx).fresh(&[Analytics::NAME]).await?;
    Ok(state(ctx)
        .analytics
        .series(tenant, subject, buckets)
        .await?
        .into_iter()
        .map(|p| EngagementPoint {
            at: from_micros(p.at),
            likes: p.likes,
            reposts: p.reposts,
            replies: p.replies,
            quotes: p.quotes,
        })
        .collect())
}

#[derive(Default)]
pub struct AnalyticsQuery;

#[Object]
impl AnalyticsQuery {
    /// A post's engagement from `from` to `to` (exclusive) in buckets of
    /// `interval` seconds (60 to 31 days, at most 1,000 buckets). Each
    /// point holds the latest counts sampled before its bucket ended.
    async fn post_engagement(
        &self,
        ctx: &Context<'_>,
        post_id: ID,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        interval: i32,
    ) -> ApiResult<Vec<EngagementPoint>> {
        let p = principal(ctx, Action::Read)?;
        let id = parse_id(&post_id, "postId")?;
        state(ctx)
            .dashboard
            .post(p.tenant_id, id)
            .await?
            .ok_or(ApiError::NotFound("post"))?;
        let buckets = buckets(from, to, interval)?;
        series(ctx, p.tenant_id, Subject::Post(id), buckets).await
    }

    /// A campaign's engagement: per bucket, the sum over its posts of each
    /// post's latest counts before the bucket ended.
    async fn campaign_engagement(
        &self,
        ctx: &Context<'_>,
        campaign_id: ID,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        interval: i32,
    ) -> ApiResult<Vec<EngagementPoint>> {
        let p = principal(ctx, Action::Read)?;
        let id = parse_id(&campaign_id, "campaignId")?;
        super::objects::campaign_by_id(ctx, p.tenant_id, id).await?;
        let buckets = buckets(from, to, interval)?;
        series(ctx, p.tenant_id, Subject::Campaign(id), buckets).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn field(result: ApiResult<Buckets>) -> Option<String> {
        match result {
            Err(ApiError::Validation { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn ranges_and_bucket_sizes_are_checked() {
        let from = at("2030-01-01T00:00:00Z");
        let day = at("2030-01-02T00:00:00Z");
        assert_eq!(buckets(from, day, 3600).unwrap().count(), 24);
        assert_eq!(field(buckets(day, from, 3600)).as_deref(), Some("to"));
        assert_eq!(field(buckets(from, from, 3600)).as_deref(), Some("to"));
        assert_eq!(field(buckets(from, day, 59)).as_deref(), Some("interval"));
        assert_eq!(
            field(buckets(from, day, MAX_INTERVAL + 1)).as_deref(),
            Some("interval")
        );
        // A day of minutes is 1,440 buckets: too many.
        assert_eq!(field(buckets(from, day, 60)).as_deref(), Some("interval"));
        assert!(buckets(from, day, 120).is_ok());
    }
}
