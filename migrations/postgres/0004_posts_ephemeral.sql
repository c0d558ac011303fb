-- reactions and private answers: the parts of posted replies by platform id, and replies shown to one person (PostgreSQL's 0004_posts_ephemeral.sql)

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
);
CREATE INDEX posts_message ON posts (message_id);

-- A trigger keeps the table in the transaction that marks a delivery posted
-- (platform_id holds the parts as a JSON array, empty strings for parts not
-- posted, as the store writes it). A part posted again by a later delivery
-- points to the later one, as INSERT OR REPLACE does in SQLite; DISTINCT,
-- because ON CONFLICT cannot change one row twice in a statement.
CREATE FUNCTION deliveries_posts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO posts (platform, room, platform_id, message_id)
    SELECT DISTINCT NEW.platform, NEW.room, p.v #>> '{}', NEW.message_id
    FROM jsonb_array_elements(NEW.platform_id::jsonb) AS p(v)
    WHERE jsonb_typeof(p.v) = 'string' AND p.v #>> '{}' <> ''
    ON CONFLICT (platform, room, platform_id) DO UPDATE SET message_id = excluded.message_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER deliveries_posts AFTER UPDATE OF state ON deliveries FOR EACH ROW
WHEN (NEW.state = 'posted' AND OLD.state = 'pending' AND NEW.platform_id LIKE '[%')
EXECUTE FUNCTION deliveries_posts();

-- Replies posted before this migration are found too, those whose parts are
-- stored as a JSON array (the form since parts were explicit); of a part
-- posted twice, the later delivery's.
INSERT INTO posts (platform, room, platform_id, message_id)
SELECT DISTINCT ON (d.platform, d.room, p.v #>> '{}') d.platform, d.room, p.v #>> '{}', d.message_id
FROM deliveries d,
    jsonb_array_elements(CASE WHEN d.platform_id LIKE '[%' THEN d.platform_id::jsonb ELSE '[]' END) AS p(v)
WHERE d.state = 'posted' AND jsonb_typeof(p.v) = 'string' AND p.v #>> '{}' <> ''
ORDER BY d.platform, d.room, p.v #>> '{}', d.seq DESC;

-- Where a conversation's replies go may be the person alone (the answers to
-- a slash command the route answers privately): kept with the reply target
-- and with each delivery.
ALTER TABLE conversations ADD COLUMN reply_ephemeral BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE deliveries ADD COLUMN ephemeral BOOLEAN NOT NULL DEFAULT false;
