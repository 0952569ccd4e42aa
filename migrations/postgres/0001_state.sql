-- sluice state store (Postgres). Keep in step with migrations/sqlite.
-- Times are RFC 3339 UTC text; hashes are 16-byte big-endian blobs.

-- One row per sync: the fingerprint of the settings that shape what is sent.
CREATE TABLE sync_meta (
    sync               TEXT PRIMARY KEY,
    config_fingerprint TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);

-- Every row the destination holds, as of the last batch it accepted.
CREATE TABLE sync_rows (
    sync           TEXT   NOT NULL,
    key_hash       BYTEA  NOT NULL,
    key_json       TEXT   NOT NULL,
    fingerprint    BYTEA  NOT NULL,
    destination_id TEXT,
    updated_at     TEXT   NOT NULL,
    PRIMARY KEY (sync, key_hash)
);

-- Run history.
CREATE TABLE runs (
    id          TEXT PRIMARY KEY,
    sync        TEXT   NOT NULL,
    started_at  TEXT   NOT NULL,
    finished_at TEXT,
    status      TEXT   NOT NULL,
    full_resync BIGINT NOT NULL DEFAULT 0,
    rows_read   BIGINT NOT NULL DEFAULT 0,
    added       BIGINT NOT NULL DEFAULT 0,
    changed     BIGINT NOT NULL DEFAULT 0,
    unchanged   BIGINT NOT NULL DEFAULT 0,
    removed     BIGINT NOT NULL DEFAULT 0,
    written     BIGINT NOT NULL DEFAULT 0,
    rejected    BIGINT NOT NULL DEFAULT 0,
    retryable   BIGINT NOT NULL DEFAULT 0,
    batches     BIGINT NOT NULL DEFAULT 0,
    error       TEXT
);
CREATE INDEX runs_by_sync ON runs (sync, started_at);

-- Rows the destination did not accept, until they are written.
CREATE TABLE row_errors (
    sync       TEXT   NOT NULL,
    key_hash   BYTEA  NOT NULL,
    key_json   TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    message    TEXT   NOT NULL,
    attempts   BIGINT NOT NULL,
    first_seen TEXT   NOT NULL,
    last_seen  TEXT   NOT NULL,
    last_run   TEXT,
    PRIMARY KEY (sync, key_hash)
);
