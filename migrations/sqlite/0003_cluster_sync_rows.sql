-- sync_rows becomes a WITHOUT ROWID table, stored in (sync, key_hash) order. Every run loads
-- its sync's key hashes and fingerprints; clustered, that is one range scan (a million rows in
-- about 0.4 s) instead of an index scan plus a table lookup per row (1.2 to 1.7 s).
CREATE TABLE sync_rows_clustered (
    sync           TEXT   NOT NULL,
    key_hash       BLOB   NOT NULL,
    key_json       TEXT   NOT NULL,
    fingerprint    BLOB   NOT NULL,
    destination_id TEXT,
    updated_at     TEXT   NOT NULL,
    PRIMARY KEY (sync, key_hash)
) WITHOUT ROWID;
INSERT INTO sync_rows_clustered (sync, key_hash, key_json, fingerprint, destination_id, updated_at)
    SELECT sync, key_hash, key_json, fingerprint, destination_id, updated_at FROM sync_rows;
DROP TABLE sync_rows;
ALTER TABLE sync_rows_clustered RENAME TO sync_rows;
