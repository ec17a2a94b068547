-- Streams get a compact integer key: the per-stream index of `events` is keyed by it, which
-- keeps that index small and the pages an append dirties (and writes to the WAL) few.
CREATE TABLE streams (
    stream_key INTEGER PRIMARY KEY,
    stream_id  TEXT    NOT NULL UNIQUE
);

-- The event log. Positions come from AUTOINCREMENT, so a position is never reused, even after
-- the last event is deleted by hand: a checkpointed reader can never skip an event.
CREATE TABLE events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_key     INTEGER NOT NULL REFERENCES streams (stream_key),
    stream_id      TEXT    NOT NULL, -- repeated here so reads need no join
    version        INTEGER NOT NULL CHECK (version >= 1),
    event_id       BLOB    NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    recorded_at    INTEGER NOT NULL, -- microseconds since the Unix epoch, UTC
    metadata       BLOB    NOT NULL, -- MessagePack, named fields
    payload        BLOB    NOT NULL, -- MessagePack, named fields
    append_index   INTEGER NOT NULL, -- place of the event in its append (from 0) ...
    append_size    INTEGER NOT NULL  -- ... and how many events the append carried
);

-- Optimistic concurrency and stream reads.
CREATE UNIQUE INDEX events_stream_version ON events (stream_key, version);
-- Idempotent appends: an event id is stored once.
CREATE UNIQUE INDEX events_event_id ON events (event_id);
