-- Campaigns that require alt text on every image of their posts
-- (`CampaignSettings::alt_text_required`). 1 or 0, as a bigint because the
-- SQLite side of the `Any` driver has no boolean; campaigns recorded before
-- the setting existed do not require it, so the default needs no replay.
ALTER TABLE rm_campaigns ADD COLUMN alt_text_required bigint NOT NULL DEFAULT 0;
