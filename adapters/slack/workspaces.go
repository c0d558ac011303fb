package slack

import (
	"context"
	"errors"
	"fmt"
	"strings"

	slackapi "github.com/slack-go/slack"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/retry"
)

// Several workspaces. The adapter serves the workspace of the configured bot
// token (its "home", if any) and every workspace that installed the app
// through OAuth v2 (oauth.go). Each has its own token, bot user and
// scopes, and all share the app's Socket Mode connection or Events API
// request URL: an event is routed by its team_id, or by its enterprise id
// for an org-wide install.
//
// A room must say which workspace it is in, for the reply to go out with
// that workspace's token, also after a restart: the home workspace keeps
// Slack's own ids (C0123), so that a set-up with one token is unchanged,
// and an installed workspace prefixes them with its id and a colon
// (T0456:C0123, or E0789:C0123 for an org-wide install). The same goes for
// the files people send (FileOpener refs). Routes match these room ids
// (routes[].rooms patterns such as "T0456:*"), or a workspace as a whole
// with routes[].team.

// workspace is one Slack workspace the adapter serves.
type workspace struct {
	// id prefixes the ids of its rooms and files; "" for the home
	// workspace.
	id string
	// teamID is the team (for the home workspace, learned by Run);
	// enterpriseID the Enterprise Grid org, if any; orgWide marks an
	// install for the whole org.
	teamID       string
	enterpriseID string
	orgWide      bool
	name         string
	token        string
	api          *slackapi.Client
	// self is who the bot is there; set by Run for the home workspace.
	self identity
}

// Installs keeps the workspaces that installed the app through OAuth;
// *store.DB implements it. Tokens are sealed before they reach it.
type Installs interface {
	// PutWorkspace stores or replaces an installed workspace.
	PutWorkspace(ctx context.Context, w bridge.Workspace) error
	// Workspaces lists the installed workspaces of a platform.
	Workspaces(ctx context.Context, platform bridge.Platform) ([]bridge.Workspace, error)
	// DeleteWorkspace forgets an installed workspace; ErrNotFound when
	// there is none.
	DeleteWorkspace(ctx context.Context, platform bridge.Platform, id string) error
}

// newWorkspace returns a workspace with a Web API client of token.
func (a *Adapter) newWorkspace(id, token string) *workspace {
	return &workspace{id: id, token: token, api: slackapi.New(token,
		slackapi.OptionAPIURL(a.cfg.APIURL),
		slackapi.OptionHTTPClient(a.cfg.HTTPClient))}
}

// team is the workspace's id for routes and event keys (Inbound.Team): its
// id, or the home workspace's team.
func (ws *workspace) team() string { return nonEmpty(ws.id, ws.teamID) }

// roomID returns the bridge's id of a channel of ws.
func (ws *workspace) roomID(channel string) string {
	if ws.id == "" || channel == "" {
		return channel
	}
	return ws.id + ":" + channel
}

// errNoWorkspace is the reason a room or file of a workspace the app is no
// longer installed in cannot be used.
var errNoWorkspace = errors.New("the app is not installed in this workspace (any more)")

// split returns the workspace of a room (or file ref) id and the id Slack
// knows. A room of a workspace that uninstalled the app fails with
// errNoWorkspace, wrapped with bridge.Permanent.
func (a *Adapter) split(id string) (*workspace, string, error) {
	prefix, rest, found := strings.Cut(id, ":")
	if !found {
		if a.home == nil {
			return nil, id, bridge.Permanent(fmt.Errorf("slack: %s: no bot token is configured for ids without a workspace", id))
		}
		return a.home, id, nil
	}
	a.mu.Lock()
	ws := a.spaces[prefix]
	a.mu.Unlock()
	if ws == nil {
		return nil, rest, bridge.Permanent(fmt.Errorf("slack: %s: %w", prefix, errNoWorkspace))
	}
	return ws, rest, nil
}

// eventWorkspace returns the workspace an event, command or click of team
// (in enterprise) is for: the home workspace for its team, else the
// team's install, else the org-wide install of the enterprise. nil: the
// app is not installed there.
func (a *Adapter) eventWorkspace(team, enterprise string) *workspace {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.home != nil && (team == "" || team == a.home.teamID) {
		return a.home
	}
	if ws := a.spaces[team]; ws != nil && team != "" {
		return ws
	}
	if ws := a.spaces[enterprise]; ws != nil && enterprise != "" && ws.orgWide {
		return ws
	}
	return nil
}

// loadWorkspaces reads the installed workspaces from Installs, retrying
// while the store fails, until ctx ends. A workspace whose token does not
// unseal (TokenKey changed) is logged and left out.
func (a *Adapter) loadWorkspaces(ctx context.Context) error {
	b := a.backoff()
	for {
		ws, err := a.cfg.Installs.Workspaces(ctx, Platform)
		if err == nil {
			for _, w := range ws {
				if err := a.addWorkspace(w); err != nil {
					a.log.Error("cannot read the token of an installed workspace; install the app there again (/slack/install)",
						logTeam, w.ID, bridge.LogErr, err)
				}
			}
			if len(ws) > 0 {
				a.log.Info("workspaces installed through OAuth", logCount, len(ws))
			}
			return nil
		}
		d := b.Next(nil)
		a.logs.Warn(a.log, "workspaces", "cannot read the installed workspaces; retrying", bridge.LogErr, err, bridge.LogWait, d)
		if werr := retry.Wait(ctx, d); werr != nil {
			return werr
		}
	}
}

// addWorkspace unseals the token of an installed workspace and serves it
// from now on, replacing an earlier install of it.
func (a *Adapter) addWorkspace(w bridge.Workspace) error {
	if a.seal == nil {
		return errors.New("slack: no slack.token_key to read installed workspaces with")
	}
	token, err := a.unsealToken(w.ID, w.SealedToken)
	if err != nil {
		return err
	}
	ws := a.newWorkspace(w.ID, token)
	ws.teamID, ws.enterpriseID, ws.orgWide, ws.name = w.TeamID, w.EnterpriseID, w.OrgWide, w.Name
	ws.self = identity{userID: w.BotUserID, botID: w.BotID, teamID: w.TeamID, scopes: w.Scopes}
	a.mu.Lock()
	a.spaces[w.ID] = ws
	a.mu.Unlock()
	return nil
}

// uninstalled handles app_uninstalled and tokens_revoked (of the bot) in
// ws: an installed workspace is forgotten, in the store and here, so that
// its replies are given up; the others go on. For the home workspace only
// the configuration can help, which the log says.
func (a *Adapter) uninstalled(ctx context.Context, ws *workspace, why string) error {
	if ws.id == "" {
		problem := errors.New("slack: " + why + ": the app lost access to the workspace of slack.bot_token; install it again and update slack.bot_token")
		if a.health.set("auth", problem) {
			a.log.Error("Slack revoked the configured bot token", bridge.LogErr, problem)
		}
		return nil
	}
	if a.cfg.Installs != nil {
		err := a.cfg.Installs.DeleteWorkspace(ctx, Platform, ws.id)
		if err != nil && !errors.Is(err, bridge.ErrNotFound) {
			return fmt.Errorf("slack: forget workspace %s: %w", ws.id, err)
		}
	}
	a.mu.Lock()
	if a.spaces[ws.id] == ws {
		delete(a.spaces, ws.id)
	}
	a.mu.Unlock()
	a.log.Info("the app was removed from a workspace; its replies are given up", logTeam, ws.id, "reason", why)
	return nil
}
