-- Row-level security for the signage read model (see 0040).
GRANT SELECT ON rm_signage TO herald_reader;
ALTER TABLE rm_signage ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON rm_signage FOR SELECT TO herald_reader
    USING (tenant_id = current_setting('herald.tenant', true));
GRANT SELECT ON rm_displays TO herald_reader;
ALTER TABLE rm_displays ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON rm_displays FOR SELECT TO herald_reader
    USING (tenant_id = current_setting('herald.tenant', true));
GRANT SELECT ON rm_notice_plays TO herald_reader;
ALTER TABLE rm_notice_plays ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON rm_notice_plays FOR SELECT TO herald_reader
    USING (tenant_id = current_setting('herald.tenant', true));
