-- The fingerprint of the row version a destination rejected: an unchanged rejected row is held
-- back until it changes, `sluice retry`, or `retry_rejected_after`.
ALTER TABLE row_errors ADD COLUMN fingerprint BYTEA;
