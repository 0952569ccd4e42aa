-- Keep in step with the other dialect's 0009.
-- Nothing here: a SQLite store serves one process, which shares rate-limit windows in memory
-- (`destinations::flow`). Postgres stores share them between processes in `rate_grants`.
SELECT 1;
