-- Keep in step with the other dialect's 0006.
-- Row state committed batch by batch during a run, folded into sync_rows in key order when the
-- run ends (and before any run or plan reads the state): each batch is an append, the fold one
-- sequential pass, instead of one random B-tree page per row per batch.
CREATE TABLE sync_rows_staged (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sync           TEXT NOT NULL,
    key_hash       BYTEA NOT NULL,
    key_json       TEXT NOT NULL,
    -- NULL: the destination deleted the row.
    fingerprint    BYTEA,
    destination_id TEXT,
    updated_at     TEXT NOT NULL
);
-- No index on sync: the table holds only the rows of runs in progress (or killed), and an
-- index would double the cost of each append.
