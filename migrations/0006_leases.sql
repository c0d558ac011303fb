-- several replicas: the leases through which processes sharing a store share its work, and the lease of each conversation

-- A process's right to a share of the work until expires_ms, by the store's
-- clock: a shard of the conversations ("shard:N"), the Matrix sync loop
-- ("matrix.sync"), or its own presence ("replica:OWNER", how the processes
-- know how many they are). token is the fencing token, new each time the
-- lease is taken (the highest so far plus one), never reused: a released
-- lease keeps its row, and only rows of processes long gone are deleted,
-- never the one with the highest token.
CREATE TABLE leases (
    name       TEXT    PRIMARY KEY,
    owner      TEXT    NOT NULL,
    token      INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- The lease that owns a conversation's sending and the posting of its
-- replies: computed from its platform and room (bridge.LeaseOf) when it is
-- made, and for the conversations made before this migration when it is
-- applied.
ALTER TABLE conversations ADD COLUMN lease TEXT NOT NULL DEFAULT '';

-- A delivery is posted only when no earlier one of its room waits
-- (ClaimDelivery).
CREATE INDEX deliveries_room_pending ON deliveries (platform, room, seq) WHERE state = 'pending';
