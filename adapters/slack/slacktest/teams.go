package slacktest

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Team is a workspace of the fake. The one of Options (TeamID) has the app
// installed from the start with Options.BotToken; teams added with AddTeam
// install it through the OAuth v2 flow: /oauth/v2/authorize, then
// oauth.v2.access.
type Team struct {
	// ID is the team id, "T…".
	ID string
	// Name is the workspace's name; default the id.
	Name string
	// EnterpriseID puts the team in an Enterprise Grid org, "E…": the app
	// may then be installed org-wide, for all its teams at once (authorize
	// with team=EnterpriseID).
	EnterpriseID string
}

// install is an installation of the app: in one team, or org-wide in an
// enterprise. It holds the bot token and who the bot is there.
type install struct {
	// id is the team id, or the enterprise id of an org-wide install.
	id         string
	teamID     string
	enterprise string
	orgWide    bool
	token      string
	botUserID  string
	botID      string
	scopes     []string
	revoked    bool
}

// covers reports whether the install serves a team.
func (in *install) covers(t Team) bool {
	if in.orgWide {
		return t.EnterpriseID == in.enterprise
	}
	return t.ID == in.teamID
}

// grant is an authorization code the authorize page handed out.
type grant struct {
	target      string // team or enterprise id
	scopes      []string
	redirectURI string
}

// Installation is what the fake knows of an installation of the app, for
// tests.
type Installation struct {
	// ID is the team id, or the enterprise id of an org-wide install.
	ID           string
	TeamID       string
	EnterpriseID string
	OrgWide      bool
	BotToken     string
	BotUserID    string
	BotID        string
	Scopes       []string
	Revoked      bool
}

// AddTeam adds a workspace without the app; it is installed through the
// OAuth flow.
func (s *Server) AddTeam(t Team) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.Name == "" {
		t.Name = t.ID
	}
	s.teams[t.ID] = t
	s.notify()
}

// Installations returns the installations of the app, revoked ones
// included, in the order they were made.
func (s *Server) Installations() []Installation {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Installation, 0, len(s.installs))
	for _, in := range s.installs {
		out = append(out, Installation{ID: in.id, TeamID: in.teamID, EnterpriseID: in.enterprise, OrgWide: in.orgWide,
			BotToken: in.token, BotUserID: in.botUserID, BotID: in.botID, Scopes: slices.Clone(in.scopes), Revoked: in.revoked})
	}
	return out
}

// Uninstall removes the app from a team (or org, by enterprise id), as an
// admin would: its bot token answers token_revoked from then on. Send the
// events of AppUninstalledEvent and TokensRevokedEvent to tell the app, as
// Slack does.
func (s *Server) Uninstall(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.installByID(id)
	if in == nil || in.revoked {
		return fmt.Errorf("slacktest: uninstall: the app is not installed in %s", id)
	}
	in.revoked = true
	s.notify()
	return nil
}

// installByID returns the newest install with id. The caller holds s.mu.
func (s *Server) installByID(id string) *install {
	for i := len(s.installs) - 1; i >= 0; i-- {
		if s.installs[i].id == id {
			return s.installs[i]
		}
	}
	return nil
}

// installFor returns the live install that serves team, preferring a
// team's own to an org-wide one; nil when there is none. The caller holds
// s.mu.
func (s *Server) installFor(teamID string) *install {
	t := s.team(teamID)
	var org *install
	for i := len(s.installs) - 1; i >= 0; i-- {
		in := s.installs[i]
		if in.revoked || !in.covers(t) {
			continue
		}
		if !in.orgWide {
			return in
		}
		if org == nil {
			org = in
		}
	}
	return org
}

// team returns a known team, or one made up from its id. The caller holds
// s.mu.
func (s *Server) team(id string) Team {
	if t, ok := s.teams[id]; ok {
		return t
	}
	return Team{ID: id, Name: id}
}

// teamOf returns the team of a channel: its own, or Options.TeamID. The
// caller holds s.mu.
func (s *Server) teamOf(channel string) string {
	if c, ok := s.channels[channel]; ok && c.Team != "" {
		return c.Team
	}
	return s.opts.TeamID
}

// isBotUser reports whether user is the bot user of an install. The caller
// holds s.mu.
func (s *Server) isBotUser(user string) bool {
	return slices.ContainsFunc(s.installs, func(in *install) bool { return in.botUserID == user })
}

// isBotID reports whether id is the bot id of an install. The caller holds
// s.mu.
func (s *Server) isBotID(id string) bool {
	return id != "" && slices.ContainsFunc(s.installs, func(in *install) bool { return in.botID == id })
}

// serveAuthorize is the page of https://slack.com/oauth/v2/authorize where a
// person approves the app: the fake approves at once and redirects to
// redirect_uri with a code and the state, or with error=access_denied when
// the team is unknown. team chooses the workspace (Slack's own parameter);
// it defaults to Options.TeamID, and an enterprise id installs the app
// org-wide.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || redirect.Scheme == "" || q.Get("client_id") != s.opts.ClientID {
		http.Error(w, "invalid client_id or redirect_uri", http.StatusBadRequest)
		return
	}
	target := q.Get("team")
	s.mu.Lock()
	if target == "" {
		target = s.opts.TeamID
	}
	known := target == s.opts.TeamID
	for _, t := range s.teams {
		known = known || t.ID == target || t.EnterpriseID == target
	}
	back := redirect.Query()
	if !known {
		back.Set("error", "access_denied")
	} else {
		code := fmt.Sprintf("%d.%s", len(s.codes)+1, randomToken(24))
		s.codes[code] = grant{target: target, scopes: strings.Split(q.Get("scope"), ","), redirectURI: q.Get("redirect_uri")}
		back.Set("code", code)
	}
	s.mu.Unlock()
	if st := q.Get("state"); st != "" {
		back.Set("state", st)
	}
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// AuthorizeURL returns the fake's authorize page, the counterpart of
// https://slack.com/oauth/v2/authorize.
func (s *Server) AuthorizeURL() string { return s.URL() + "/oauth/v2/authorize" }

// oauthV2Access exchanges a code for a bot token, once, checking the
// client's id and secret and the redirect_uri, as Slack does. Installing
// again in a team replaces its install (the old token is revoked).
func (s *Server) oauthV2Access(r *apiRequest) (obj, error) {
	if r.args.Get("client_id") != s.opts.ClientID {
		return nil, errCode("invalid_client_id")
	}
	if r.args.Get("client_secret") != s.opts.ClientSecret {
		return nil, errCode("bad_client_secret")
	}
	code := r.args.Get("code")
	g, ok := s.codes[code]
	if !ok {
		return nil, errCode("invalid_code")
	}
	delete(s.codes, code)
	if g.redirectURI != "" && r.args.Get("redirect_uri") != g.redirectURI {
		return nil, errCode("bad_redirect_uri")
	}
	in := &install{id: g.target, scopes: g.scopes}
	var team, enterprise any
	if t, ok := s.teams[g.target]; ok || g.target == s.opts.TeamID {
		t = s.team(g.target)
		in.teamID, in.enterprise = t.ID, t.EnterpriseID
		team = obj{"id": t.ID, "name": t.Name}
		if t.EnterpriseID != "" {
			enterprise = obj{"id": t.EnterpriseID, "name": t.EnterpriseID}
		}
	} else {
		in.enterprise, in.orgWide = g.target, true
		enterprise = obj{"id": g.target, "name": g.target}
	}
	if old := s.installByID(in.id); old != nil {
		old.revoked = true
	}
	n := len(s.installs) + 1
	in.botUserID = fmt.Sprintf("U%07dBOT", n)
	in.botID = fmt.Sprintf("B%07dBOT", n)
	in.token = fmt.Sprintf("xoxb-%d-%d-%s", n, n, randomToken(24))
	s.installs = append(s.installs, in)
	s.tokens[in.token] = in
	s.users[in.botUserID] = User{ID: in.botUserID, Name: s.opts.BotName, RealName: s.opts.BotName, IsBot: true, BotID: in.botID}
	return obj{
		"access_token":          in.token,
		"token_type":            "bot",
		"scope":                 strings.Join(in.scopes, ","),
		"bot_user_id":           in.botUserID,
		"app_id":                s.opts.AppID,
		"team":                  team,
		"enterprise":            enterprise,
		"is_enterprise_install": in.orgWide,
		"authed_user":           obj{"id": "U_INSTALLER"},
	}, nil
}

// AppUninstalledEvent returns the app_uninstalled event Slack sends to an
// install (by team or enterprise id) when the app is removed from it.
func (s *Server) AppUninstalledEvent(id string) EventCallback {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.installCallback("app_uninstalled", id, obj{"type": "app_uninstalled"})
}

// TokensRevokedEvent returns the tokens_revoked event Slack sends when the
// bot token of an install (by team or enterprise id) is revoked.
func (s *Server) TokensRevokedEvent(id string) EventCallback {
	s.mu.Lock()
	defer s.mu.Unlock()
	bot := []string{}
	if in := s.installByID(id); in != nil {
		bot = append(bot, in.botUserID)
	}
	ts := s.nextTS()
	return s.installCallback("tokens_revoked", id, obj{"type": "tokens_revoked", "tokens": obj{"oauth": []string{}, "bot": bot}, "event_ts": ts})
}

// installCallback wraps an event about an install itself. The caller holds
// s.mu.
func (s *Server) installCallback(eventType, id string, inner obj) EventCallback {
	teamID, enterprise := id, ""
	orgWide := false
	if in := s.installByID(id); in != nil {
		teamID, enterprise, orgWide = in.teamID, in.enterprise, in.orgWide
	}
	cb := s.callbackFor(eventType, teamID, enterprise, orgWide, "", inner)
	return cb
}
