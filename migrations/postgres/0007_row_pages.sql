-- Keep in step with the other dialect's 0007.
-- Every run loads its sync's (key hash, fingerprint) pairs; read from sync_rows that is one
-- row per pair. Here the same pairs are packed: one row per sync and first byte of the key
-- hash (at most 256 per sync), holding that range's pairs as 32-byte records in key order.
-- `fold` keeps them equal to sync_rows in the transaction that changes sync_rows.
CREATE TABLE sync_row_pages (
    sync  TEXT NOT NULL,
    -- The first byte of every key hash in the page, as a one-byte bytea.
    page  BYTEA NOT NULL,
    -- key_hash || fingerprint of each row, 32 bytes per row, ordered by key_hash.
    pairs BYTEA NOT NULL,
    PRIMARY KEY (sync, page)
);
-- Hashes do not compress: store them out of line without trying.
ALTER TABLE sync_row_pages ALTER COLUMN pairs SET STORAGE EXTERNAL;
INSERT INTO sync_row_pages (sync, page, pairs)
    SELECT sync, substr(key_hash, 1, 1), string_agg(key_hash || fingerprint, ''::bytea ORDER BY key_hash)
    FROM sync_rows GROUP BY sync, substr(key_hash, 1, 1);
