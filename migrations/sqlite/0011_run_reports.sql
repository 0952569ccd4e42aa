-- Keep in step with the other dialect's 0011.
-- A finished run's report as `sluice run --json` prints it (with the alerts the run sent), for
-- the console's run page. NULL for runs recorded before this migration and for runs cut off
-- before they could record one (the row's own columns still say what is known).
ALTER TABLE runs ADD COLUMN report_json TEXT;
