-- Tables written in SQL that PostgreSQL and SQLite both accept. Times are
-- microseconds since the Unix epoch; ids are UUID text.

-- One row per projection: where it is in the global log (tx, position), and
-- which process holds the lease to advance it.
CREATE TABLE projection_checkpoints
(
    name        text   PRIMARY KEY,
    tx          bigint NOT NULL DEFAULT 0,
    position    bigint NOT NULL DEFAULT 0,
    lease_owner text,
    lease_until bigint NOT NULL DEFAULT 0
);

-- Sign-in sessions. Tokens are stored only as SHA-256 hashes.
CREATE TABLE sessions
(
    id                 text   PRIMARY KEY,
    user_id            text   NOT NULL,
    tenant_id          text   NOT NULL,
    role               text   NOT NULL,
    access_hash        text   NOT NULL UNIQUE,
    access_expires_at  bigint NOT NULL,
    refresh_hash       text   NOT NULL UNIQUE,
    refresh_expires_at bigint NOT NULL,
    created_at         bigint NOT NULL,
    revoked_at         bigint
);

-- Dashboard read model: campaigns with post counts per status.
CREATE TABLE rm_campaigns
(
    id              text   PRIMARY KEY,
    tenant_id       text   NOT NULL,
    name            text   NOT NULL,
    time_zone       text   NOT NULL,
    starts_on       text   NOT NULL,
    ends_on         text   NOT NULL,
    status          text   NOT NULL,
    created_at      bigint NOT NULL,
    updated_at      bigint NOT NULL,
    count_draft     bigint NOT NULL DEFAULT 0,
    count_pending   bigint NOT NULL DEFAULT 0,
    count_running   bigint NOT NULL DEFAULT 0,
    count_done      bigint NOT NULL DEFAULT 0,
    count_failed    bigint NOT NULL DEFAULT 0,
    count_cancelled bigint NOT NULL DEFAULT 0
);
CREATE INDEX rm_campaigns_by_tenant ON rm_campaigns (tenant_id, created_at, id);

-- Dashboard read model: posts in queue order. sort_key is the next run time,
-- or the largest bigint for posts without one, so drafts sort last.
CREATE TABLE rm_posts
(
    id          text   PRIMARY KEY,
    tenant_id   text   NOT NULL,
    campaign_id text   NOT NULL,
    status      text   NOT NULL,
    entries     text   NOT NULL,
    next_run_at bigint,
    recurrence  text,
    time_zone   text,
    sort_key    bigint NOT NULL,
    created_at  bigint NOT NULL,
    updated_at  bigint NOT NULL
);
CREATE INDEX rm_posts_queue ON rm_posts (tenant_id, sort_key, id);
CREATE INDEX rm_posts_campaign_queue ON rm_posts (tenant_id, campaign_id, sort_key, id);
