-- Publishing: the connections read model, the scheduler's index, cached
-- platform sessions, and the publishing columns of the post queue.

-- Social accounts of a tenant (fed by the `connections` projection).
CREATE TABLE rm_connections (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    platform    TEXT NOT NULL,
    handle      TEXT NOT NULL,
    did         TEXT NOT NULL,
    service_url TEXT NOT NULL,
    status      TEXT NOT NULL,
    reason      TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX rm_connections_tenant ON rm_connections (tenant_id, created_at);

-- The scheduler's index (fed by the `schedule` projection): one row per post
-- that may fire. `due_at` is the next attempt time (NULL: not scheduled);
-- `blocked` is 1 while the post's connection is not ACTIVE. The lease columns
-- belong to the workers that claim rows; the projection never touches them.
CREATE TABLE rm_schedule (
    post_id       TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    connection_id TEXT,
    due_at        BIGINT,
    blocked       BIGINT NOT NULL DEFAULT 0,
    lease_until   BIGINT NOT NULL DEFAULT 0,
    lease_owner   TEXT
);
CREATE INDEX rm_schedule_due ON rm_schedule (due_at) WHERE due_at IS NOT NULL AND blocked = 0;
CREATE INDEX rm_schedule_connection ON rm_schedule (connection_id);

-- Connection status as the schedule projection knows it (to block posts
-- created for a connection that is already degraded).
CREATE TABLE rm_schedule_connections (
    connection_id TEXT PRIMARY KEY,
    blocked       BIGINT NOT NULL
);

-- Platform sessions (access and refresh tokens), sealed with the tenant's
-- data key. A cache, not a read model: rebuilt by logging in again.
CREATE TABLE connection_sessions (
    connection_id TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    session       TEXT NOT NULL,
    updated_at    BIGINT NOT NULL
);

ALTER TABLE rm_posts ADD COLUMN connection_id TEXT;
ALTER TABLE rm_posts ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rm_posts ADD COLUMN last_error TEXT;
ALTER TABLE rm_posts ADD COLUMN next_retry_at BIGINT;
ALTER TABLE rm_posts ADD COLUMN published TEXT NOT NULL DEFAULT '[]';

-- Uploaded images (fed by the `media` projection) and which posts use them.
CREATE TABLE rm_media (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    mime       TEXT NOT NULL,
    size       BIGINT NOT NULL,
    width      BIGINT NOT NULL,
    height     BIGINT NOT NULL,
    filename   TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX rm_media_tenant ON rm_media (tenant_id, created_at);
CREATE TABLE rm_media_uses (
    post_id  TEXT NOT NULL,
    asset_id TEXT NOT NULL,
    PRIMARY KEY (post_id, asset_id)
);
CREATE INDEX rm_media_uses_asset ON rm_media_uses (asset_id);
