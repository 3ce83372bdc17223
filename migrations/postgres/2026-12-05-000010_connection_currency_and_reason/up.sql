-- What Meta tells us about an ad account: its currency (ISO 4217; amounts stay integers in
-- hundredths of that currency's unit, whatever its minor unit), and why a connection left ACTIVE
-- (a revoked permission, a disabled account), shown to operators. Existing rows and the mock
-- provider keep the seed's dollars.
ALTER TABLE ad_connections ADD COLUMN currency TEXT NOT NULL DEFAULT 'USD';
ALTER TABLE ad_connections ADD COLUMN status_reason TEXT;
