-- the bridge's state: conversations, users, the inbound outbox, deliveries and platform cursors

-- One row per generation of a conversation key; a reset adds the next generation.
CREATE TABLE conversations (
    id            INTEGER PRIMARY KEY,
    bot           TEXT    NOT NULL,
    scope         TEXT    NOT NULL CHECK (scope IN ('thread', 'room', 'user')),
    platform      TEXT    NOT NULL,
    room          TEXT    NOT NULL,
    thread        TEXT    NOT NULL DEFAULT '',
    user          TEXT    NOT NULL DEFAULT '',
    generation    INTEGER NOT NULL DEFAULT 0,
    chat_id       TEXT    NOT NULL DEFAULT '',
    reply_room    TEXT    NOT NULL DEFAULT '',
    reply_thread  TEXT    NOT NULL DEFAULT '',
    reply_message TEXT    NOT NULL DEFAULT '',
    reply_user    TEXT    NOT NULL DEFAULT '',
    cursor_ms     INTEGER NOT NULL DEFAULT 0,
    active_ms     INTEGER NOT NULL,
    created_ms    INTEGER NOT NULL,
    UNIQUE (bot, scope, platform, room, thread, user, generation)
);
CREATE INDEX conversations_chat ON conversations (bot, chat_id) WHERE chat_id <> '';
CREATE INDEX conversations_active ON conversations (active_ms) WHERE chat_id <> '';

-- Threads the bot takes part in: messages there are answered without a mention.
CREATE TABLE threads (
    bot        TEXT    NOT NULL,
    platform   TEXT    NOT NULL,
    room       TEXT    NOT NULL,
    thread     TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (bot, platform, room, thread)
) WITHOUT ROWID;

-- Botpress users of platform users, per bot. user_key is kept only for bots
-- without an encryption key (createUser mode).
CREATE TABLE users (
    bot         TEXT    NOT NULL,
    platform    TEXT    NOT NULL,
    platform_id TEXT    NOT NULL,
    chat_id     TEXT    NOT NULL,
    user_key    TEXT    NOT NULL DEFAULT '',
    name        TEXT    NOT NULL DEFAULT '',
    avatar_url  TEXT    NOT NULL DEFAULT '',
    updated_ms  INTEGER NOT NULL,
    PRIMARY KEY (bot, platform, platform_id)
) WITHOUT ROWID;

CREATE TABLE participants (
    conversation INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    chat_user    TEXT    NOT NULL,
    PRIMARY KEY (conversation, chat_user)
) WITHOUT ROWID;

-- The inbound outbox: a platform event is stored here before it is
-- acknowledged, and leaves the 'pending' state once Botpress has it.
CREATE TABLE inbound (
    id           INTEGER PRIMARY KEY,
    platform     TEXT    NOT NULL,
    event_key    TEXT    NOT NULL,
    conversation INTEGER NOT NULL REFERENCES conversations (id),
    body         TEXT    NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    parts_sent   INTEGER NOT NULL DEFAULT 0,
    chat_message TEXT    NOT NULL DEFAULT '',
    error        TEXT    NOT NULL DEFAULT '',
    created_ms   INTEGER NOT NULL,
    done_ms      INTEGER,
    UNIQUE (platform, event_key)
);
CREATE INDEX inbound_pending ON inbound (conversation, id) WHERE state = 'pending';
CREATE INDEX inbound_done ON inbound (done_ms) WHERE state <> 'pending';

-- Bot messages on their way to a platform, keyed by the Chat API message id.
CREATE TABLE deliveries (
    seq           INTEGER PRIMARY KEY,
    message_id    TEXT    NOT NULL UNIQUE,
    conversation  INTEGER NOT NULL REFERENCES conversations (id),
    bot           TEXT    NOT NULL,
    platform      TEXT    NOT NULL,
    room          TEXT    NOT NULL,
    thread        TEXT    NOT NULL DEFAULT '',
    reply_message TEXT    NOT NULL DEFAULT '',
    reply_user    TEXT    NOT NULL DEFAULT '',
    payload       TEXT    NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'posted', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    platform_id   TEXT    NOT NULL DEFAULT '',
    error         TEXT    NOT NULL DEFAULT '',
    created_ms    INTEGER NOT NULL,
    received_ms   INTEGER NOT NULL,
    done_ms       INTEGER
);
CREATE INDEX deliveries_pending ON deliveries (seq) WHERE state = 'pending';
CREATE INDEX deliveries_done ON deliveries (done_ms) WHERE state <> 'pending';

-- Named platform values, such as the Matrix sync token.
CREATE TABLE cursors (
    name       TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_ms INTEGER NOT NULL
) WITHOUT ROWID;
