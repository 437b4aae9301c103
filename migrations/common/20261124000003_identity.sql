-- Identity: data keys for envelope encryption, richer sessions with refresh
-- token families, and the identity read models (users, members, invitations,
-- API keys, tenants). Personal data in these tables is sealed ciphertext.

-- One data key per scope (tenant:<id>, user:<id>, system:<purpose>), wrapped
-- by the master key. `wrapped` is NULL once destroyed (crypto-shredding).
CREATE TABLE data_keys
(
    id            text   PRIMARY KEY,
    scope         text   NOT NULL UNIQUE,
    master_key_id text   NOT NULL,
    wrapped       text,
    created_at    bigint NOT NULL,
    destroyed_at  bigint
);

ALTER TABLE sessions ADD COLUMN user_agent text;
ALTER TABLE sessions ADD COLUMN ip text;
ALTER TABLE sessions ADD COLUMN last_used_at bigint;
CREATE INDEX sessions_by_user ON sessions (user_id, created_at);

-- Refresh tokens already exchanged: presenting one again is a reuse, and
-- revokes its whole session (the token family).
CREATE TABLE rotated_refresh_tokens
(
    hash       text   PRIMARY KEY,
    session_id text   NOT NULL,
    rotated_at bigint NOT NULL
);

CREATE TABLE rm_tenants
(
    id          text   PRIMARY KEY,
    name        text   NOT NULL,
    require_2fa bigint NOT NULL DEFAULT 0,
    created_at  bigint NOT NULL
);

CREATE TABLE rm_users
(
    id             text   PRIMARY KEY,
    email          text   NOT NULL,
    email_verified bigint NOT NULL DEFAULT 0,
    totp_enabled   bigint NOT NULL DEFAULT 0,
    erased         bigint NOT NULL DEFAULT 0,
    created_at     bigint NOT NULL
);

CREATE TABLE rm_members
(
    tenant_id text   NOT NULL,
    user_id   text   NOT NULL,
    role      text   NOT NULL,
    joined_at bigint NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX rm_members_by_user ON rm_members (user_id);

CREATE TABLE rm_invitations
(
    id         text   PRIMARY KEY,
    tenant_id  text   NOT NULL,
    email      text   NOT NULL,
    role       text   NOT NULL,
    status     text   NOT NULL,
    expires_at bigint NOT NULL,
    created_at bigint NOT NULL
);
CREATE INDEX rm_invitations_by_tenant ON rm_invitations (tenant_id, created_at);

CREATE TABLE rm_api_keys
(
    id         text   PRIMARY KEY,
    tenant_id  text   NOT NULL,
    name       text   NOT NULL,
    role       text   NOT NULL,
    key_hash   text   NOT NULL UNIQUE,
    expires_at bigint,
    revoked_at bigint,
    created_at bigint NOT NULL
);
CREATE INDEX rm_api_keys_by_tenant ON rm_api_keys (tenant_id, created_at);
