-- Matrix events waiting for their keys, one row each: they were one JSON list in a cursor, rewritten whole at every change
CREATE TABLE matrix_pending (
    id       INTEGER PRIMARY KEY,
    account  TEXT    NOT NULL, -- the bot's Matrix user id
    event_id TEXT    NOT NULL,
    room     TEXT    NOT NULL,
    sender   TEXT    NOT NULL,
    event    TEXT    NOT NULL, -- the encrypted event as JSON
    since_ms INTEGER NOT NULL, -- when it first failed to decrypt
    UNIQUE (account, event_id)
);
CREATE INDEX matrix_pending_since ON matrix_pending (account, since_ms);
CREATE INDEX matrix_pending_room ON matrix_pending (account, room);
CREATE INDEX matrix_pending_sender ON matrix_pending (account, sender);
