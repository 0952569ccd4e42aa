-- Keep in step with the other dialect's 0008.
-- Where a sync's rows land (a hash of `Destination::identity`: the spreadsheet, the endpoint, the
-- account), as first recorded and as last run. The configuration fingerprint mixes the identity
-- in only once it differs from the first one recorded, so stores written before this migration
-- keep their fingerprints (nothing is re-sent on upgrade), and pointing a sync elsewhere sends
-- every row there once.
ALTER TABLE sync_meta ADD COLUMN first_identity TEXT;
ALTER TABLE sync_meta ADD COLUMN identity TEXT;
