-- Keep in step with the other dialect's 0007.
-- Every run loads its sync's (key hash, fingerprint) pairs; read from sync_rows that is one
-- step of the database per row, most of the time a run with no change takes beside the model
-- read. Here the same pairs are packed: one row per sync and first byte of the key hash (at
-- most 256 per sync), holding that range's pairs as 32-byte records in key order. `fold`
-- keeps them equal to sync_rows in the transaction that changes sync_rows.
CREATE TABLE sync_row_pages (
    sync  TEXT NOT NULL,
    -- The first byte of every key hash in the page, as a one-byte blob.
    page  BLOB NOT NULL,
    -- key_hash || fingerprint of each row, 32 bytes per row, ordered by key_hash.
    pairs BLOB NOT NULL,
    PRIMARY KEY (sync, page)
) WITHOUT ROWID;
-- `||` and group_concat treat blobs as text without converting a byte (the database is
-- UTF-8); the cast hands the result back as a blob.
INSERT INTO sync_row_pages (sync, page, pairs)
    SELECT sync, substr(key_hash, 1, 1), CAST(group_concat(key_hash || fingerprint, '' ORDER BY key_hash) AS BLOB)
    FROM sync_rows GROUP BY sync, substr(key_hash, 1, 1);
