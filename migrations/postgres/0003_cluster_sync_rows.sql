-- In step with migrations/sqlite/0003 (which clusters sync_rows by key). Postgres reads a
-- sync's rows through the primary key index already; nothing to change.
SELECT 1;
