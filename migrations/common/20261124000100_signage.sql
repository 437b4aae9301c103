-- Digital signage.

-- Registered devices. Operational, not a read model: an unpaired device is
-- no fact of any tenant. The secret is stored as its SHA-256 hash; the
-- short-lived pairing code as is (the device shows it again after a
-- restart) until pairing clears it. `tenant_id` is set when paired.
CREATE TABLE display_devices (
    device_id       TEXT PRIMARY KEY,
    secret_hash     TEXT NOT NULL UNIQUE,
    pairing_code    TEXT UNIQUE,
    code_expires_at BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    tenant_id       TEXT,
    paired_at       BIGINT
);
CREATE INDEX display_devices_expiry ON display_devices (code_expires_at);

-- Heartbeats of connected displays (not events): `last_seen` in micros.
CREATE TABLE display_presence (
    display_id TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    last_seen  BIGINT NOT NULL
);

-- Read model `signage`: each tenant's content as one folded state (JSON of
-- domain::signage::SignageState), its paired displays, and plays per
-- notice, display and hour.
CREATE TABLE rm_signage (
    tenant_id  TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE rm_displays (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    profile    TEXT NOT NULL,
    online     INTEGER NOT NULL DEFAULT 0,
    status_at  BIGINT NOT NULL,
    paired_at  BIGINT NOT NULL
);
CREATE INDEX rm_displays_tenant ON rm_displays (tenant_id);

CREATE TABLE rm_notice_plays (
    tenant_id  TEXT NOT NULL,
    notice_id  TEXT NOT NULL,
    display_id TEXT NOT NULL,
    hour       BIGINT NOT NULL,
    plays      BIGINT NOT NULL,
    seconds    BIGINT NOT NULL,
    PRIMARY KEY (notice_id, display_id, hour)
);
CREATE INDEX rm_notice_plays_tenant ON rm_notice_plays (tenant_id, notice_id, hour);
