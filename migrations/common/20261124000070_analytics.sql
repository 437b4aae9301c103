-- Engagement analytics (fed by the `analytics` projection from
-- `EngagementSampled`), and the collector's lease.

-- One row per sample of a post: counts summed over its published records.
-- The counts are cumulative totals as the platform reports them.
CREATE TABLE rm_engagement (
    tenant_id   TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    post_id     TEXT NOT NULL,
    sampled_at  BIGINT NOT NULL,
    likes       BIGINT NOT NULL,
    reposts     BIGINT NOT NULL,
    replies     BIGINT NOT NULL,
    quotes      BIGINT NOT NULL,
    PRIMARY KEY (post_id, sampled_at)
);
CREATE INDEX rm_engagement_campaign ON rm_engagement (tenant_id, campaign_id, sampled_at);

-- The tenant and campaign of every post (from `PostCreated`), so a sample
-- can be filed under its campaign without loading the post.
CREATE TABLE rm_engagement_posts (
    post_id     TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    campaign_id TEXT NOT NULL
);

-- Leases of singleton background tasks (the engagement collector): one
-- process at a time holds a name until `lease_until` (micros).
CREATE TABLE collector_leases (
    name        TEXT PRIMARY KEY,
    owner       TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0
);
