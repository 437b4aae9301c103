//! The analytics read model: engagement samples per post (`rm_engagement`),
//! filed under the post's campaign, and time series over them.
//!
//! Samples are events (`EngagementSampled`), so a metric defined later is
//! backfilled with `herald replay --projection analytics`. Only two post
//! events matter here; each is decoded once per batch, and a replay shares
//! that decoding with the other projections (see `StoredEvent::event_of`).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use domain::post::{EngagementTotals, Post, PostEvent};
use sqlx::{AnyConnection, AnyPool, FromRow};
use uuid::Uuid;

/// The collector's view of `rm_posts`, kept at this path for its callers.
pub use super::dashboard::{PublishedPost, published_posts};
use crate::infra::sql::{CHUNK, in_list, placeholders};
use crate::{Projection, StoreError, StoredEvent, micros};

/// The `analytics` projection.
pub struct Analytics;

/// One stored sample.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct SampleRow {
    pub tenant_id: String,
    pub campaign_id: String,
    pub post_id: String,
    pub sampled_at: i64,
    pub likes: i64,
    pub reposts: i64,
    pub replies: i64,
    pub quotes: i64,
}

const SAMPLE_COLUMNS: &str =
    "tenant_id, campaign_id, post_id, sampled_at, likes, reposts, replies, quotes";

impl Analytics {
    /// The projection's name (checkpoint key, `--projection` argument, and
    /// what an operation names when it waits for this read model).
    pub const NAME: &'static str = "analytics";
}

#[async_trait]
impl Projection for Analytics {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_engagement", "rm_engagement_posts"]
    }

    fn deferred_indexes(&self) -> &'static [&'static str] {
        &["rm_engagement_campaign"]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        events: &[StoredEvent],
    ) -> Result<(), StoreError> {
        // post id → (tenant, campaign), from this batch or the table.
        let mut owners: HashMap<String, (String, String)> = HashMap::new();
        let mut new_posts: Vec<String> = Vec::new();
        // (post, sampled_at) → totals; a later duplicate wins.
        let mut samples: Vec<(String, i64, EngagementTotals)> = Vec::new();
        for event in events {
            let Some(e) = event.event_of::<Post>()? else {
                continue;
            };
            match e {
                PostEvent::PostCreated {
                    tenant_id,
                    campaign_id,
                    ..
                } => {
                    let id = event.aggregate_id.clone();
                    if !owners.contains_key(&id) {
                        owners.insert(id.clone(), (tenant_id.to_string(), campaign_id.to_string()));
                        new_posts.push(id);
                    }
                }
                PostEvent::EngagementSampled {
                    sampled_at,
                    entries,
                } => samples.push((
                    event.aggregate_id.clone(),
                    micros(*sampled_at),
                    EngagementTotals::of(entries),
                )),
                _ => {}
            }
        }
        for chunk in new_posts.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO rm_engagement_posts (post_id, tenant_id, campaign_id) VALUES {}
                 ON CONFLICT (post_id) DO NOTHING",
                placeholders(conn, chunk.len(), 3)
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                let (tenant, campaign) = &owners[id];
                query = query
                    .bind(id.as_str())
                    .bind(tenant.as_str())
                    .bind(campaign.as_str());
            }
            query.execute(&mut *conn).await?;
        }
        if samples.is_empty() {
            return Ok(());
        }
        let unknown: Vec<&str> = samples
            .iter()
            .map(|(id, _, _)| id.as_str())
            .filter(|id| !owners.contains_key(*id))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        for chunk in unknown.chunks(CHUNK) {
            let sql = format!(
                "SELECT post_id, tenant_id, campaign_id FROM rm_engagement_posts WHERE post_id IN ({})",
                in_list(conn, chunk.len())
            );
            let mut query = sqlx::query_as::<_, (String, String, String)>(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for (id, tenant, campaign) in query.fetch_all(&mut *conn).await? {
                owners.insert(id, (tenant, campaign));
            }
        }
        // One row per (post, instant): a multi-row upsert must not name a
        // key twice.
        let mut rows: HashMap<(String, i64), EngagementTotals> = HashMap::new();
        for (id, at, totals) in samples {
            rows.insert((id, at), totals);
        }
        let mut rows: Vec<((String, i64), EngagementTotals)> = rows
            .into_iter()
            .filter(|((id, _), _)| owners.contains_key(id))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO rm_engagement ({SAMPLE_COLUMNS}) VALUES {}
                 ON CONFLICT (post_id, sampled_at) DO UPDATE SET likes = excluded.likes,
                   reposts = excluded.reposts, replies = excluded.replies, quotes = excluded.quotes",
                placeholders(conn, chunk.len(), 8)
            );
            let mut query = sqlx::query(&sql);
            for ((id, at), t) in chunk {
                let (tenant, campaign) = &owners[id];
                query = query
                    .bind(tenant.as_str())
                    .bind(campaign.as_str())
                    .bind(id.as_str())
                    .bind(*at)
                    .bind(t.likes)
                    .bind(t.reposts)
                    .bind(t.replies)
                    .bind(t.quotes);
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// Engagement at one point of a series: cumulative totals as of the end of
/// the bucket that starts at `at` (micros).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngagementPoint {
    pub at: i64,
    pub likes: i64,
    pub reposts: i64,
    pub replies: i64,
    pub quotes: i64,
}

/// The buckets of a series: `[from + i·interval, from + (i+1)·interval)`
/// up to `to` (the last one may be shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets {
    /// Micros, inclusive.
    pub from: i64,
    /// Micros, exclusive.
    pub to: i64,
    /// Micros, > 0.
    pub interval: i64,
}

impl Buckets {
    /// How many buckets cover `[from, to)`.
    pub fn count(&self) -> i64 {
        if self.to <= self.from || self.interval <= 0 {
            return 0;
        }
        (self.to - self.from + self.interval - 1) / self.interval
    }

    /// The index of the bucket holding `at` (which must be in range).
    fn index(&self, at: i64) -> usize {
        ((at - self.from) / self.interval) as usize
    }
}

/// Folds samples into a dense series. `baseline` holds each post's latest
/// sample before `from`; `samples` the samples within `[from, to)`, in any
/// order (the latest per post and bucket is enough). Each bucket's value is
/// the sum over posts of each post's latest sample before the bucket's end
/// (counts are cumulative, so a post without a sample in a bucket keeps its
/// earlier value, and is zero before its first sample).
pub fn series(
    buckets: Buckets,
    baseline: &[SampleRow],
    samples: &[SampleRow],
) -> Vec<EngagementPoint> {
    let n = buckets.count().max(0) as usize;
    let mut current: HashMap<&str, [i64; 4]> = HashMap::new();
    let mut total = [0i64; 4];
    fn set<'a>(current: &mut HashMap<&'a str, [i64; 4]>, total: &mut [i64; 4], r: &'a SampleRow) {
        let new = [r.likes, r.reposts, r.replies, r.quotes];
        let old = current.insert(r.post_id.as_str(), new).unwrap_or_default();
        for (t, (n, o)) in total.iter_mut().zip(new.iter().zip(old.iter())) {
            *t += n - o;
        }
    }
    let mut base: Vec<&SampleRow> = baseline.iter().collect();
    base.sort_by_key(|r| r.sampled_at);
    for r in base {
        set(&mut current, &mut total, r);
    }
    let mut inside: Vec<&SampleRow> = samples
        .iter()
        .filter(|r| r.sampled_at >= buckets.from && r.sampled_at < buckets.to)
        .collect();
    inside.sort_by_key(|r| r.sampled_at);
    let mut next = inside.into_iter().peekable();
    let mut points = Vec::with_capacity(n);
    for i in 0..n {
        while let Some(r) = next.next_if(|r| buckets.index(r.sampled_at) <= i) {
            set(&mut current, &mut total, r);
        }
        points.push(EngagementPoint {
            at: buckets.from + i as i64 * buckets.interval,
            likes: total[0],
            reposts: total[1],
            replies: total[2],
            quotes: total[3],
        });
    }
    points
}

/// Reads of the analytics read model; every read takes the tenant.
#[derive(Clone, Debug)]
pub struct AnalyticsQueries {
    pool: AnyPool,
}

/// Whose samples a series sums.
#[derive(Debug, Clone, Copy)]
pub enum Subject {
    Post(Uuid),
    Campaign(Uuid),
}

impl AnalyticsQueries {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// The series of a post or a campaign of `tenant` over `buckets`.
    pub async fn series(
        &self,
        tenant: Uuid,
        subject: Subject,
        buckets: Buckets,
    ) -> Result<Vec<EngagementPoint>, StoreError> {
        let (column, id) = match subject {
            Subject::Post(id) => ("post_id", id),
            Subject::Campaign(id) => ("campaign_id", id),
        };
        let mut conn = crate::db::scoped(&self.pool, tenant).await?;
        // Each post's latest sample before `from`: where its line starts.
        let baseline: Vec<SampleRow> = sqlx::query_as(&format!(
            "SELECT e.tenant_id, e.campaign_id, e.post_id, e.sampled_at, e.likes, e.reposts, e.replies, e.quotes
               FROM rm_engagement e
               JOIN (SELECT post_id, MAX(sampled_at) AS last FROM rm_engagement
                      WHERE tenant_id = $1 AND {column} = $2 AND sampled_at < $3
                      GROUP BY post_id) l
                 ON e.post_id = l.post_id AND e.sampled_at = l.last"
        ))
        .bind(tenant.to_string())
        .bind(id.to_string())
        .bind(buckets.from)
        .fetch_all(&mut *conn)
        .await?;
        // Within the range only the latest sample per post and bucket counts.
        let samples: Vec<SampleRow> = sqlx::query_as(&format!(
            "SELECT e.tenant_id, e.campaign_id, e.post_id, e.sampled_at, e.likes, e.reposts, e.replies, e.quotes
               FROM rm_engagement e
               JOIN (SELECT post_id, MAX(sampled_at) AS last FROM rm_engagement
                      WHERE tenant_id = $1 AND {column} = $2 AND sampled_at >= $3 AND sampled_at < $4
                      GROUP BY post_id, (sampled_at - $3) / $5) l
                 ON e.post_id = l.post_id AND e.sampled_at = l.last"
        ))
        .bind(tenant.to_string())
        .bind(id.to_string())
        .bind(buckets.from)
        .bind(buckets.to)
        .bind(buckets.interval)
        .fetch_all(&mut *conn)
        .await?;
        Ok(series(buckets, &baseline, &samples))
    }

    /// Every sample in a stable order, for comparing a replayed read model
    /// with the live one.
    pub async fn snapshot(&self) -> Result<Vec<SampleRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {SAMPLE_COLUMNS} FROM rm_engagement ORDER BY post_id, sampled_at"
        ))
        .fetch_all(&self.pool)
        .await?)
    }
}

/// A lease on a singleton task (table `collector_leases`): `true` if `owner`
/// holds `name` until `until` now. Taken when free or expired, renewed by its
/// holder; a plain conditional `UPDATE`, so it works on both backends.
pub async fn claim_lease(
    pool: &AnyPool,
    name: &str,
    owner: &str,
    now: i64,
    until: i64,
) -> Result<bool, StoreError> {
    sqlx::query("INSERT INTO collector_leases (name, owner, lease_until) VALUES ($1, NULL, 0) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .execute(pool)
        .await?;
    let done = sqlx::query(
        "UPDATE collector_leases SET owner = $2, lease_until = $3
          WHERE name = $1 AND (owner = $2 OR owner IS NULL OR lease_until < $4)",
    )
    .bind(name)
    .bind(owner)
    .bind(until)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives a lease up (on shutdown), so another process takes over at once.
pub async fn release_lease(pool: &AnyPool, name: &str, owner: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE collector_leases SET owner = NULL, lease_until = 0 WHERE name = $1 AND owner = $2",
    )
    .bind(name)
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(post: &str, at: i64, likes: i64, replies: i64) -> SampleRow {
        SampleRow {
            tenant_id: "t".into(),
            campaign_id: "c".into(),
            post_id: post.into(),
            sampled_at: at,
            likes,
            reposts: 0,
            replies,
            quotes: 0,
        }
    }

    fn likes(points: &[EngagementPoint]) -> Vec<i64> {
        points.iter().map(|p| p.likes).collect()
    }

    #[test]
    fn buckets_cover_the_range_and_the_last_may_be_short() {
        let b = |from, to, interval| Buckets { from, to, interval }.count();
        assert_eq!(b(0, 100, 10), 10);
        assert_eq!(b(0, 101, 10), 11);
        assert_eq!(b(0, 5, 10), 1);
        assert_eq!(b(10, 10, 10), 0);
        assert_eq!(b(10, 0, 10), 0);
    }

    #[test]
    fn a_bucket_holds_the_latest_sample_and_carries_it_forward() {
        let buckets = Buckets {
            from: 100,
            to: 150,
            interval: 10,
        };
        let points = series(
            buckets,
            &[row("a", 50, 2, 0)],
            &[
                row("a", 112, 3, 1),
                row("a", 118, 5, 1),
                row("a", 135, 6, 2),
            ],
        );
        assert_eq!(
            points.iter().map(|p| p.at).collect::<Vec<_>>(),
            [100, 110, 120, 130, 140]
        );
        assert_eq!(likes(&points), [2, 5, 5, 6, 6]);
        assert_eq!(points[4].replies, 2);
    }

    #[test]
    fn a_campaign_sums_each_posts_latest_value() {
        let buckets = Buckets {
            from: 0,
            to: 30,
            interval: 10,
        };
        let points = series(
            buckets,
            &[],
            &[
                row("a", 1, 1, 0),
                row("b", 15, 4, 0),
                row("a", 25, 2, 0),
                // Outside the range: ignored.
                row("b", 30, 100, 0),
            ],
        );
        // b is zero before its first sample; a keeps 1 until it reports 2.
        assert_eq!(likes(&points), [1, 5, 6]);
    }
}
