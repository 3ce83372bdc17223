-- What a real provider (Meta's Insights API) needs: the provider's own ids for our entities, the
-- ad account's access token sealed with AES-256-GCM, its time zone, a pause announced by the
-- provider's usage headers (shared by every instance), and the last local day a lookback re-sync
-- was queued. The mock provider keeps using our ids and needs none of these.
ALTER TABLE campaigns ADD COLUMN external_id TEXT;
ALTER TABLE adsets ADD COLUMN external_id TEXT;
ALTER TABLE ads ADD COLUMN external_id TEXT;

-- base64(nonce || ciphertext || tag); never the plain token.
ALTER TABLE ad_connections ADD COLUMN access_token_enc TEXT;
-- IANA zone name; decides "today" for this account's syncs.
ALTER TABLE ad_connections ADD COLUMN timezone TEXT NOT NULL DEFAULT 'UTC';
-- No job of this connection's seller asks the provider before this time.
ALTER TABLE ad_connections ADD COLUMN paused_until TEXT;
-- The account-local date for which the daily lookback re-sync was last queued.
ALTER TABLE ad_connections ADD COLUMN lookback_queued_on TEXT;
