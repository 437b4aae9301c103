-- Audit read model: one row per event of a tenant, hash-chained per tenant
-- (see domain/src/audit.rs for the canonical row and the hash). Rebuilt by
-- replay with identical hashes. Times are microseconds since the Unix epoch.
CREATE TABLE rm_audit
(
    tenant_id   text   NOT NULL,
    seq         bigint NOT NULL,
    recorded_at bigint NOT NULL,
    actor       text   NOT NULL,
    action      text   NOT NULL,
    target      text   NOT NULL,
    summary     text   NOT NULL,
    prev_hash   text   NOT NULL,
    hash        text   NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
-- Time windows (auditLog's from/to, filtered exports). Filters on actor or
-- action walk the tenant's chain in seq order through the primary key and
-- stop once a page is full: an index for each would cost every event of a
-- replay two more index writes (measured: replay fell below SPEC §3's
-- 50,000 events/s).
CREATE INDEX rm_audit_by_time ON rm_audit (tenant_id, recorded_at);

-- The last row of each tenant's chain: where the next row continues, and the
-- head a verification compares against.
CREATE TABLE rm_audit_heads
(
    tenant_id text   PRIMARY KEY,
    seq       bigint NOT NULL,
    hash      text   NOT NULL
);
