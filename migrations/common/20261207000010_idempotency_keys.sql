-- Writes sent with an `Idempotency-Key` header, per tenant and key, kept for
-- 24 hours. `started_at` (micros) is fixed by the first attempt: ids the
-- request creates are derived from it and the key, so a retry makes the
-- same ones. The outcome (`status`, `content_type`, `body`) is filled in
-- once the request finished with an answer worth repeating; a row without
-- one means an earlier attempt failed on the server's side, and a retry
-- runs again (each of its commands at most once, see `http::idempotency`).
CREATE TABLE idempotency_keys
(
    tenant_id    text   NOT NULL,
    key          text   NOT NULL,
    -- The caller (`Actor` display form): another caller's key is refused.
    actor        text   NOT NULL,
    -- SHA-256 of the method, path and body: another body is refused.
    request_hash text   NOT NULL,
    started_at   bigint NOT NULL,
    status       bigint,
    content_type text,
    body         text,
    PRIMARY KEY (tenant_id, key)
);

CREATE INDEX idempotency_keys_started ON idempotency_keys (started_at);
