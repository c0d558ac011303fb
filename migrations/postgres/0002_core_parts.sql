-- the core in parts: choices people answer by text, thinking indicators shown, and indexes to forget idle conversations (PostgreSQL's 0002_core_parts.sql)

-- The choice standing in a room (thread included) of a platform without
-- buttons; an answer by number or label becomes the option's value.
CREATE TABLE offers (
    platform     TEXT   NOT NULL,
    room         TEXT   NOT NULL,
    thread       TEXT   NOT NULL DEFAULT '',
    bot          TEXT   NOT NULL,
    conversation BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    message_id   TEXT   NOT NULL,
    options      TEXT   NOT NULL,
    expires_ms   BIGINT NOT NULL,
    PRIMARY KEY (platform, room, thread)
);
CREATE INDEX offers_expiry ON offers (expires_ms);

-- Thinking indicators shown on a platform, so that those a stopped process
-- left shown are taken down at the next start.
CREATE TABLE indicators (
    platform   TEXT   NOT NULL,
    room       TEXT   NOT NULL,
    thread     TEXT   NOT NULL DEFAULT '',
    message_id TEXT   NOT NULL DEFAULT '',
    user_id    TEXT   NOT NULL DEFAULT '',
    since_ms   BIGINT NOT NULL,
    PRIMARY KEY (platform, room, thread, message_id, user_id)
);

-- Forgetting idle conversations, their threads and users looks them up by age
-- and checks that no message refers to them any more.
CREATE INDEX conversations_idle ON conversations (active_ms);
CREATE INDEX threads_age ON threads (created_ms);
CREATE INDEX users_age ON users (updated_ms);
CREATE INDEX inbound_conversation ON inbound (conversation);
CREATE INDEX deliveries_conversation ON deliveries (conversation);
CREATE INDEX participants_user ON participants (chat_user);
