-- Keep in step with the other dialect's 0010.
-- Events posted to `POST /hooks/{stream}` ([streams.NAME] in sluice.toml), stored before the
-- daemon answers 2xx. `seq` orders a stream's events as they were stored: a sync over the stream
-- keeps the last `seq` it read as its cursor (`sync_cursors`), and an event is pruned only past
-- the stream's `retain` and the lowest cursor of the syncs reading it. `id` is the sender's
-- delivery id (a retry of one delivery is stored once) or one sluice made up.
CREATE TABLE stream_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    stream      TEXT NOT NULL,
    id          TEXT NOT NULL,
    received_at TEXT NOT NULL,
    payload     TEXT NOT NULL
);
CREATE UNIQUE INDEX stream_events_id ON stream_events (stream, id);
CREATE INDEX stream_events_seq ON stream_events (stream, seq);
