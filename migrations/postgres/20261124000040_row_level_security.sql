-- Row-level security on the read models: a second line of defence behind the
-- tenant filter every query carries. Reads for a tenant run as the
-- `herald_reader` role with `herald.tenant` set for the transaction
-- (projections::db::scoped); that role sees only the tenant's rows.
-- Roles are per server: several databases (or concurrent migrations) may
-- race to create it.
DO $$
BEGIN
    CREATE ROLE herald_reader NOLOGIN;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

GRANT SELECT ON rm_campaigns, rm_posts, rm_tenants, rm_users, rm_members, rm_invitations, rm_api_keys,
                rm_audit, rm_audit_heads
    TO herald_reader;

ALTER TABLE rm_audit ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON rm_audit FOR SELECT TO herald_reader
    USING (tenant_id = current_setting('herald.tenant', true));

ALTER TABLE rm_audit_heads ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON rm_audit_heads FOR SELECT TO herald_reader
    USING (tenant_id = current_setting('herald.tenant', true));

ALTER TABLE rm_campaigns ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON rm_campaigns FOR SELECT TO herald_reader
    USING (tenant_id = current_setting('herald.tenant', true));

ALTER TABLE rm_posts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON rm_posts FOR SELECT TO herald_reader
    USING (tenant_id = current_setting('herald.tenant', true));

ALTER TABLE rm_tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON rm_tenants FOR SELECT TO herald_reader
    USING (id = current_setting('herald.tenant', true));

ALTER TABLE rm_members ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON rm_members FOR SELECT TO herald_reader
    USING (tenant_id = current_setting('herald.tenant', true));

ALTER TABLE rm_invitations ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON rm_invitations FOR SELECT TO herald_reader
    USING (tenant_id = current_setting('herald.tenant', true));

ALTER TABLE rm_api_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON rm_api_keys FOR SELECT TO herald_reader
    USING (tenant_id = current_setting('herald.tenant', true));

-- Users belong to no single tenant: a tenant sees its members.
ALTER TABLE rm_users ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON rm_users FOR SELECT TO herald_reader
    USING (EXISTS (SELECT 1 FROM rm_members m
                    WHERE m.user_id = rm_users.id
                      AND m.tenant_id = current_setting('herald.tenant', true)));
