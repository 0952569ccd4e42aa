-- Keep in step with the other dialect's 0012.
-- When each kind of alert was last sent for a sync, one row per (sync, event): alerts repeat at
-- most once per `alert_interval` per kind, and kinds grow (skipped, rejected_share, row_counts,
-- slow_run, late) without a column each. The times kept in `sync_alerts`' own columns move here;
-- those columns are no longer read or written (`sync_alerts.failing` still is).
CREATE TABLE alert_times (
    sync       TEXT NOT NULL,
    event      TEXT NOT NULL,
    alerted_at TEXT NOT NULL,
    PRIMARY KEY (sync, event)
);
INSERT INTO alert_times (sync, event, alerted_at)
    SELECT sync, 'failure', failure_alerted_at FROM sync_alerts WHERE failure_alerted_at IS NOT NULL;
INSERT INTO alert_times (sync, event, alerted_at)
    SELECT sync, 'rejected_rows', rejected_alerted_at FROM sync_alerts WHERE rejected_alerted_at IS NOT NULL;
