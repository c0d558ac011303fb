package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/botbridge/botbridge/bridge"
)

// PutWorkspace stores a workspace that installed the app, replacing an
// earlier install of it. Its token must be sealed already.
func (db *DB) PutWorkspace(ctx context.Context, w bridge.Workspace) error {
	if w.ID == "" || len(w.SealedToken) == 0 {
		return fmt.Errorf("put workspace: id and sealed token are required")
	}
	_, err := db.exec(ctx, "put workspace", `INSERT INTO workspaces (platform, id, team_id, enterprise_id, org_wide, name,
		bot_user_id, bot_id, scopes, token, installed_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (platform, id) DO UPDATE SET team_id = excluded.team_id, enterprise_id = excluded.enterprise_id,
		org_wide = excluded.org_wide, name = excluded.name, bot_user_id = excluded.bot_user_id, bot_id = excluded.bot_id,
		scopes = excluded.scopes, token = excluded.token, installed_ms = excluded.installed_ms`,
		string(w.Platform), w.ID, w.TeamID, w.EnterpriseID, w.OrgWide, Storable(w.Name), w.BotUserID, w.BotID,
		strings.Join(w.Scopes, ","), w.SealedToken, ms(w.InstalledAt))
	return err
}

// Workspaces lists the workspaces of platform that installed the app, by
// id.
func (db *DB) Workspaces(ctx context.Context, platform bridge.Platform) ([]bridge.Workspace, error) {
	return queryRows(ctx, db, "workspaces", func(row pgx.Row) (bridge.Workspace, error) {
		w := bridge.Workspace{Platform: platform}
		var (
			scopes      string
			installedMS int64
		)
		if err := row.Scan(&w.ID, &w.TeamID, &w.EnterpriseID, &w.OrgWide, &w.Name, &w.BotUserID, &w.BotID, &scopes,
			&w.SealedToken, &installedMS); err != nil {
			return w, err
		}
		if scopes != "" {
			w.Scopes = strings.Split(scopes, ",")
		}
		w.InstalledAt = fromMS(installedMS)
		return w, nil
	}, `SELECT id, team_id, enterprise_id, org_wide, name, bot_user_id, bot_id, scopes, token, installed_ms
		FROM workspaces WHERE platform = $1 ORDER BY id COLLATE "C"`, string(platform))
}

// DeleteWorkspace forgets a workspace that uninstalled the app; ErrNotFound
// when there is none.
func (db *DB) DeleteWorkspace(ctx context.Context, platform bridge.Platform, id string) error {
	tag, err := db.exec(ctx, "delete workspace", `DELETE FROM workspaces WHERE platform = $1 AND id = $2`, string(platform), id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("workspace %s: %w", id, bridge.ErrNotFound)
	}
	return nil
}
