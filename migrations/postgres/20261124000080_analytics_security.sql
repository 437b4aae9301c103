-- Row-level security for the analytics read model (see 0040).
GRANT SELECT ON rm_engagement TO herald_reader;
ALTER TABLE rm_engagement ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON rm_engagement FOR SELECT TO herald_reader
    USING (tenant_id = current_setting('herald.tenant', true));
GRANT SELECT ON rm_engagement_posts TO herald_reader;
ALTER TABLE rm_engagement_posts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON rm_engagement_posts FOR SELECT TO herald_reader
    USING (tenant_id = current_setting('herald.tenant', true));
