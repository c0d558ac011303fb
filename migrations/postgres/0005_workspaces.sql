-- several Slack workspaces: each installation of the app through OAuth, with its bot token sealed by the adapter (PostgreSQL's 0005_workspaces.sql)

-- One row per workspace (team, or whole Enterprise Grid org) that installed
-- the app; id prefixes the ids of its rooms. token is the bot token
-- encrypted with the key of slack.token_key: the store never holds it in
-- clear.
CREATE TABLE workspaces (
    platform      TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    team_id       TEXT    NOT NULL DEFAULT '',
    enterprise_id TEXT    NOT NULL DEFAULT '',
    org_wide      BOOLEAN NOT NULL DEFAULT false,
    name          TEXT    NOT NULL DEFAULT '',
    bot_user_id   TEXT    NOT NULL,
    bot_id        TEXT    NOT NULL DEFAULT '',
    scopes        TEXT    NOT NULL DEFAULT '',
    token         BYTEA   NOT NULL,
    installed_ms  BIGINT  NOT NULL,
    PRIMARY KEY (platform, id)
);
