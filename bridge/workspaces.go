package bridge

import "time"

// Workspace is a workspace of a platform that installed the app through
// OAuth (a Slack team, or a whole Enterprise Grid org), as the store keeps
// it. The adapter seals the bot token before the store sees it.
type Workspace struct {
	Platform Platform
	// ID is the team id, or the enterprise id of an org-wide install: it
	// prefixes the ids of the workspace's rooms.
	ID           string
	TeamID       string
	EnterpriseID string
	// OrgWide marks an install for every team of the enterprise.
	OrgWide bool
	Name    string
	// BotUserID and BotID are who the bot is there; Scopes what it was
	// granted.
	BotUserID string
	BotID     string
	Scopes    []string
	// SealedToken is the bot token, encrypted by the adapter.
	SealedToken []byte
	InstalledAt time.Time
}
