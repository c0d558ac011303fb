-- reactions and private answers: the parts of posted replies by platform id, and replies shown to one person

-- The parts of each posted delivery by their platform id (a Slack ts, a
-- Matrix event id) in their room, so that a reaction to a message of the
-- bot finds its delivery, and so its conversation, with one indexed read.
-- The trigger below fills it as deliveries are marked posted; rows go with
-- their delivery when it is pruned.
CREATE TABLE posts (
    platform    TEXT NOT NULL,
    room        TEXT NOT NULL,
    platform_id TEXT NOT NULL,
    message_id  TEXT NOT NULL REFERENCES deliveries (message_id) ON DELETE CASCADE,
    PRIMARY KEY (platform, room, platform_id)
) WITHOUT ROWID;
CREATE INDEX posts_message ON posts (message_id);

-- A trigger keeps the table in the transaction that marks a delivery posted
-- (platform_id holds the parts as a JSON array, empty strings for parts not
-- posted).
CREATE TRIGGER deliveries_posts AFTER UPDATE OF state ON deliveries
WHEN NEW.state = 'posted' AND OLD.state = 'pending' AND json_valid(NEW.platform_id) AND NEW.platform_id LIKE '[%'
BEGIN
    INSERT OR REPLACE INTO posts (platform, room, platform_id, message_id)
    SELECT NEW.platform, NEW.room, value, NEW.message_id FROM json_each(NEW.platform_id)
    WHERE type = 'text' AND value <> '';
END;

-- Replies posted before this migration are found too, those whose parts are
-- stored as a JSON array (the form since parts were explicit; older rows
-- hold bare ids, long past the retention of any running store).
INSERT OR REPLACE INTO posts (platform, room, platform_id, message_id)
SELECT d.platform, d.room, j.value, d.message_id
FROM deliveries d, json_each(d.platform_id) j
WHERE d.state = 'posted' AND json_valid(d.platform_id) AND d.platform_id LIKE '[%' AND j.type = 'text' AND j.value <> '';

-- Where a conversation's replies go may be the person alone (the answers to
-- a slash command the route answers privately): kept with the reply target
-- and with each delivery.
ALTER TABLE conversations ADD COLUMN reply_ephemeral INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN ephemeral INTEGER NOT NULL DEFAULT 0;
