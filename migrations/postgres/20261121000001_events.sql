-- The event log. Appends hold a transaction-level advisory lock from before they draw positions
-- until after they commit (see docs/adr/0002-gap-free-global-reads.md), so positions become
-- visible in order and a reader that checkpoints a position never skips an event.
CREATE TABLE events (
    position       BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id      TEXT    NOT NULL,
    version        BIGINT  NOT NULL CHECK (version >= 1),
    event_id       UUID    NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    recorded_at    BIGINT  NOT NULL, -- microseconds since the Unix epoch, UTC
    metadata       BYTEA   NOT NULL, -- MessagePack, named fields
    payload        BYTEA   NOT NULL, -- MessagePack, named fields
    append_index   INTEGER NOT NULL, -- place of the event in its append (from 0) ...
    append_size    INTEGER NOT NULL, -- ... and how many events the append carried
    CONSTRAINT events_stream_version UNIQUE (stream_id, version),
    CONSTRAINT events_event_id UNIQUE (event_id)
);
