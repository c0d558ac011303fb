package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/botbridge/botbridge/bridge"
)

// PutWorkspace stores a workspace that installed the app, replacing an
// earlier install of it. Its token must be sealed already.
func (db *DB) PutWorkspace(ctx context.Context, w bridge.Workspace) error {
	if w.ID == "" || len(w.SealedToken) == 0 {
		return fmt.Errorf("put workspace: id and sealed token are required")
	}
	return db.tx(ctx, "put workspace", func(t *txn) error {
		_, err := t.exec(`INSERT INTO workspaces (platform, id, team_id, enterprise_id, org_wide, name, bot_user_id, bot_id,
			scopes, token, installed_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (platform, id) DO UPDATE SET team_id = excluded.team_id, enterprise_id = excluded.enterprise_id,
			org_wide = excluded.org_wide, name = excluded.name, bot_user_id = excluded.bot_user_id, bot_id = excluded.bot_id,
			scopes = excluded.scopes, token = excluded.token, installed_ms = excluded.installed_ms`,
			string(w.Platform), w.ID, w.TeamID, w.EnterpriseID, w.OrgWide, w.Name, w.BotUserID, w.BotID,
			strings.Join(w.Scopes, ","), w.SealedToken, ms(w.InstalledAt))
		return err
	})
}

// Workspaces lists the workspaces of platform that installed the app, by
// id.
func (db *DB) Workspaces(ctx context.Context, platform bridge.Platform) ([]bridge.Workspace, error) {
	rows, err := db.query(ctx, `SELECT id, team_id, enterprise_id, org_wide, name, bot_user_id, bot_id, scopes, token,
		installed_ms FROM workspaces WHERE platform = ? ORDER BY id`, string(platform))
	if err != nil {
		return nil, wrap("workspaces", err)
	}
	defer rows.Close()
	var out []bridge.Workspace
	for rows.Next() {
		w := bridge.Workspace{Platform: platform}
		var (
			scopes      string
			installedMS int64
		)
		if err := rows.Scan(&w.ID, &w.TeamID, &w.EnterpriseID, &w.OrgWide, &w.Name, &w.BotUserID, &w.BotID, &scopes,
			&w.SealedToken, &installedMS); err != nil {
			return nil, wrap("workspaces", err)
		}
		if scopes != "" {
			w.Scopes = strings.Split(scopes, ",")
		}
		w.InstalledAt = fromMS(installedMS)
		out = append(out, w)
	}
	return out, wrap("workspaces", rows.Err())
}

// DeleteWorkspace forgets a workspace that uninstalled the app; ErrNotFound
// when there is none.
func (db *DB) DeleteWorkspace(ctx context.Context, platform bridge.Platform, id string) error {
	return db.tx(ctx, "delete workspace", func(t *txn) error {
		res, err := t.exec(`DELETE FROM workspaces WHERE platform = ? AND id = ?`, string(platform), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("workspace %s: %w", id, bridge.ErrNotFound)
		}
		return nil
	})
}
