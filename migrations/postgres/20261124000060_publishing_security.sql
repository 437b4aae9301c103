-- Row-level security for the publishing read models (see 0040).
GRANT SELECT ON rm_connections TO herald_reader;
ALTER TABLE rm_connections ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON rm_connections FOR SELECT TO herald_reader
    USING (tenant_id = current_setting('herald.tenant', true));

GRANT SELECT ON rm_media TO herald_reader;
ALTER TABLE rm_media ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON rm_media FOR SELECT TO herald_reader
    USING (tenant_id = current_setting('herald.tenant', true));
