-- Keep in step with the other dialect's 0004.
-- Cursor-incremental syncs: the high-water mark of the cursor column after the last run that
-- committed every row it read. `basis` fingerprints what the mark is valid for (the sync's
-- definition, its model and cursor column): when it differs, the next run reads the whole model.
CREATE TABLE sync_cursors (
    sync       TEXT PRIMARY KEY,
    basis      TEXT NOT NULL,
    value_json TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Alerts ([alerts] in sluice.toml): whether a sync is failing, and when each kind of alert was
-- last sent, so a sync that keeps failing alerts at most once per alert_interval.
CREATE TABLE sync_alerts (
    sync                TEXT PRIMARY KEY,
    failing             BIGINT NOT NULL DEFAULT 0,
    failure_alerted_at  TEXT,
    rejected_alerted_at TEXT
);
