-- Keep in step with the other dialect's 0013.
-- `[writeback]`: how far each sync's run history and change log were written to the writeback
-- database. The tables there are keyed, so writing past a mark again is harmless; a mark only
-- moves forward.
CREATE TABLE writeback_marks (
    sync            TEXT NOT NULL PRIMARY KEY,
    -- The last `sync_changes.id` written.
    changes_through BIGINT NOT NULL,
    -- The `finished_at` of the last run written (RFC 3339 UTC; '' for none).
    runs_through    TEXT NOT NULL
);
