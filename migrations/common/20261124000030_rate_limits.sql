-- Brute-force guard (api/src/ratelimit.rs): one row per policy and subject.
-- The key is "<policy>:<hex HMAC-SHA256>" of the subject (IP address or
-- account), so no e-mail address or IP is stored in plaintext. Every change is
-- one INSERT … ON CONFLICT (key) DO UPDATE … RETURNING statement, so API
-- processes sharing the database cannot race past a limit. Times are
-- microseconds since the Unix epoch.
CREATE TABLE rate_limits
(
    key          text   PRIMARY KEY,
    -- Fixed window: its start and the attempts counted in it.
    window_start bigint NOT NULL DEFAULT 0,
    hits         bigint NOT NULL DEFAULT 0,
    -- Consecutive failures, when the last one was, and the lock-out they
    -- earned (0 = not locked).
    failures     bigint NOT NULL DEFAULT 0,
    failed_at    bigint NOT NULL DEFAULT 0,
    locked_until bigint NOT NULL DEFAULT 0,
    updated_at   bigint NOT NULL,
    -- After this the row holds nothing worth keeping; cleanup deletes it.
    expires_at   bigint NOT NULL
);

CREATE INDEX rate_limits_expires_at ON rate_limits (expires_at);
