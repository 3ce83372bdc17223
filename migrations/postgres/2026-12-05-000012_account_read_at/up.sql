-- When the provider's account read (zone, currency, status) is next due for this connection;
-- NULL: none scheduled. `connection set-token` schedules one at once, each read schedules the
-- next after meta.account_refresh. Connections that already hold a token are due now.
ALTER TABLE ad_connections ADD COLUMN account_read_due_at TIMESTAMPTZ;
UPDATE ad_connections SET account_read_due_at = '1970-01-01 00:00:00+00'
    WHERE provider = 'META' AND access_token_enc IS NOT NULL;
-- The account currency of a sellpage's row: every campaign rolled into it shares it (a date whose
-- campaigns span several currencies gets no row). Existing rows are the seed's dollars.
ALTER TABLE sellpage_stats_daily ADD COLUMN currency TEXT NOT NULL DEFAULT 'USD';
