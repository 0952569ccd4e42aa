-- Keep in step with the other dialect's 0012.
-- When the last alert that a sync's run was skipped (a sync in its `after` did not get through)
-- was sent, so they repeat at most once per `alert_interval`. Skipped runs themselves are rows
-- of `runs` with status 'skipped' (a status value, no schema change).
ALTER TABLE sync_alerts ADD COLUMN skipped_alerted_at TEXT;
