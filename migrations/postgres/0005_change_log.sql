-- Keep in step with the other dialect's 0005.
-- The change log: every row operation a run sent and what came of it, written in the same
-- transaction as the state it produced. A stable interface: users query it (docs/change-log.md).
CREATE TABLE sync_changes (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id         TEXT NOT NULL,
    sync           TEXT NOT NULL,
    -- The row's primary key as a JSON object of plain values: {"id": 42}.
    row_key        TEXT NOT NULL,
    -- upsert, update, insert or delete
    op             TEXT NOT NULL,
    -- written, rejected or retryable
    outcome        TEXT NOT NULL,
    destination_id TEXT,
    error          TEXT,
    -- The mapped fields sent, as a JSON object, for syncs with log_values = true.
    fields_json    TEXT,
    -- RFC 3339 UTC, when the outcome was committed.
    changed_at     TEXT NOT NULL
);
CREATE INDEX sync_changes_by_sync ON sync_changes (sync, changed_at);
