-- Keep in step with the other dialect's 0006.
-- Row state committed batch by batch during a run, folded into sync_rows in key order when the
-- run ends (and before any run or plan reads the state). sync_rows is clustered by key hash, so
-- writing each batch there directly touched one B-tree page per row: a million-row first sync
-- wrote about 4 GB to the WAL. Here each batch is an append; the fold is one sequential pass.
CREATE TABLE sync_rows_staged (
    id             INTEGER PRIMARY KEY,
    sync           TEXT NOT NULL,
    key_hash       BLOB NOT NULL,
    key_json       TEXT NOT NULL,
    -- NULL: the destination deleted the row.
    fingerprint    BLOB,
    destination_id TEXT,
    updated_at     TEXT NOT NULL
);
-- No index on sync: the table holds only the rows of runs in progress (or killed), and an
-- index would double the cost of each append.
