-- several Slack workspaces: each installation of the app through OAuth, with its bot token sealed by the adapter

-- One row per workspace (team, or whole Enterprise Grid org) that installed
-- the app; id prefixes the ids of its rooms. token is the bot token
-- encrypted with the key of slack.token_key: the store never holds it in
-- clear.
CREATE TABLE workspaces (
    platform      TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    team_id       TEXT    NOT NULL DEFAULT '',
    enterprise_id TEXT    NOT NULL DEFAULT '',
    org_wide      INTEGER NOT NULL DEFAULT 0,
    name          TEXT    NOT NULL DEFAULT '',
    bot_user_id   TEXT    NOT NULL,
    bot_id        TEXT    NOT NULL DEFAULT '',
    scopes        TEXT    NOT NULL DEFAULT '',
    token         BLOB    NOT NULL,
    installed_ms  INTEGER NOT NULL,
    PRIMARY KEY (platform, id)
) WITHOUT ROWID;
