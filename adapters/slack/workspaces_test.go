package slack_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botbridge/botbridge/adapters/slack"
	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
	"github.com/botbridge/botbridge/store"
)

// Workspaces of these tests, beside the fake's default one.
const (
	teamTwo   = "T0000TWO"
	teamThree = "T000THREE"
	teamOrg   = "T0000ORG1" // in the enterprise enterprise
	enterpr   = "E00000ENT"
	chanTwo   = "C0000TWO1"
	chanThree = "C000THREE"
	chanOrg   = "C0000ORG1"
	dave      = "U0000DAVE"
	erin      = "U0000ERIN"
	frank     = "U000FRANK"
)

const tokenKey = "a test key of more than thirty-two characters"

// addTeams adds three workspaces without the app, each with a channel the
// bot is in and a person.
func addTeams(fake *slacktest.Server) {
	fake.AddTeam(slacktest.Team{ID: teamTwo, Name: "Two"})
	fake.AddTeam(slacktest.Team{ID: teamThree, Name: "Three"})
	fake.AddTeam(slacktest.Team{ID: teamOrg, Name: "Org one", EnterpriseID: enterpr})
	for _, u := range []slacktest.User{{ID: dave, Name: "dave", RealName: "Dave"}, {ID: erin, Name: "erin", RealName: "Erin"}, {ID: frank, Name: "frank", RealName: "Frank"}} {
		fake.AddUser(u)
	}
	fake.AddChannel(slacktest.Channel{ID: chanTwo, Name: "two", Team: teamTwo, Members: []string{dave}, IsMember: true})
	fake.AddChannel(slacktest.Channel{ID: chanThree, Name: "three", Team: teamThree, Members: []string{erin}, IsMember: true})
	fake.AddChannel(slacktest.Channel{ID: chanOrg, Name: "org", Team: teamOrg, Members: []string{frank}, IsMember: true})
}

// oauthServer serves the install link and the OAuth callback of a, at the
// paths botbridge uses.
func oauthServer(t *testing.T, a func() *slack.Adapter) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /slack/install", func(w http.ResponseWriter, r *http.Request) { a().InstallHandler().ServeHTTP(w, r) })
	mux.HandleFunc("GET /slack/oauth/callback", func(w http.ResponseWriter, r *http.Request) { a().CallbackHandler().ServeHTTP(w, r) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// browser is a person's browser: it keeps cookies and shows each redirect.
type browser struct {
	t      *testing.T
	client *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(u string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequestWithContext(waitCtx(b.t), http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// install goes through the install flow for team (a team or enterprise id)
// and returns the callback's answer.
func (b *browser) install(srv *httptest.Server, team string) (int, string) {
	b.t.Helper()
	resp, _ := b.get(srv.URL + "/slack/install")
	if resp.StatusCode != http.StatusFound {
		b.t.Fatalf("install link answered %d", resp.StatusCode)
	}
	authorize, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		b.t.Fatal(err)
	}
	q := authorize.Query()
	q.Set("team", team) // the person picks the workspace on Slack's page
	authorize.RawQuery = q.Encode()
	resp, _ = b.get(authorize.String())
	if resp.StatusCode != http.StatusFound {
		b.t.Fatalf("authorize page answered %d", resp.StatusCode)
	}
	resp, body := b.get(resp.Header.Get("Location"))
	return resp.StatusCode, body
}

// postsWith returns the tokens the bot's chat.postMessage calls to channel
// carried.
func postsWith(st *slacktest.State, channel string) []string {
	var out []string
	for _, c := range st.CallsTo("chat.postMessage") {
		if c.Args.Get("channel") == channel && c.Error == "" {
			out = append(out, c.Token)
		}
	}
	return out
}

// tokenOf returns the bot token of an install of the fake.
func tokenOf(t *testing.T, fake *slacktest.Server, id string) string {
	t.Helper()
	for _, in := range slices.Backward(fake.Installations()) {
		if in.ID == id {
			return in.BotToken
		}
	}
	t.Fatalf("no install %s", id)
	return ""
}

func TestSeveralWorkspaces(t *testing.T) {
	var srv *httptest.Server
	var ad *slack.Adapter
	srv = oauthServer(t, func() *slack.Adapter { return ad })
	o := slacktest.Options{SigningSecret: "signing secret"}
	r := newRig(t, whoBot(), rigOptions{
		fake: o,
		adapter: func(c *slack.Config) {
			c.BotToken = "" // every workspace installs the app
			c.ClientID, c.ClientSecret = slacktest.DefaultClientID, slacktest.DefaultClientSecret
			c.TokenKey = tokenKey
			c.RedirectURL = srv.URL + "/slack/oauth/callback"
		},
		bots:   map[string]chattest.Bot{"three": whoBot()},
		routes: []bridge.Route{{Bot: "three", Team: teamThree, Answer: bridge.AnswerAll}, {Bot: "bot", Answer: bridge.AnswerAll}},
	})
	ad = r.ad
	addTeams(r.fake)
	waitReady(t, r.ad, "nil", func(err error) bool { return err == nil })
	b := newBrowser(t)

	t.Run("two workspaces install the app through the OAuth flow", func(t *testing.T) {
		for _, team := range []string{teamTwo, teamThree} {
			status, body := b.install(srv, team)
			if status != http.StatusOK || !strings.Contains(body, "installed in") {
				t.Fatalf("install in %s: %d %s", team, status, body)
			}
		}
		ws, err := r.db.Workspaces(t.Context(), bridge.PlatformSlack)
		if err != nil || len(ws) != 2 {
			t.Fatalf("stored workspaces %+v, %v", ws, err)
		}
		for _, w := range ws {
			if strings.Contains(string(w.SealedToken), "xoxb-") {
				t.Errorf("the token of %s is stored in clear", w.ID)
			}
		}
	})
	t.Run("each is answered with its own token, by the bot its route names", func(t *testing.T) {
		two := r.say(t, dave, chanTwo, "", "hello from two")
		three := r.say(t, erin, chanThree, "", "hello from three")
		if got := r.waitReplies(t, chanTwo, two.TS, 1); got[0].Text != "hello from two (from Dave in #two)" {
			t.Errorf("reply in two: %q", got[0].Text)
		}
		r.waitReplies(t, chanThree, three.TS, 1)
		st := r.fake.Snapshot()
		if got := postsWith(st, chanTwo); !slices.Equal(got, []string{tokenOf(t, r.fake, teamTwo)}) {
			t.Errorf("posts in two carried %q", got)
		}
		if got := postsWith(st, chanThree); !slices.Equal(got, []string{tokenOf(t, r.fake, teamThree)}) {
			t.Errorf("posts in three carried %q", got)
		}
		r.idle(t)
		if sent := r.sentToBot(t, r.ems["three"]); len(sent) != 1 || sent[0].Metadata["team"] != teamThree ||
			sent[0].Metadata["room"] != teamThree+":"+chanThree {
			t.Errorf("bot three got %v", sent)
		}
		if sent := r.sentToBot(t, r.em); len(sent) != 1 || sent[0].Metadata["team"] != teamTwo {
			t.Errorf("bot got %v", sent)
		}
	})
	t.Run("an org-wide install serves the enterprise's teams", func(t *testing.T) {
		if status, body := b.install(srv, enterpr); status != http.StatusOK {
			t.Fatalf("install in %s: %d %s", enterpr, status, body)
		}
		m := r.say(t, frank, chanOrg, "", "hello from the org")
		r.waitReplies(t, chanOrg, m.TS, 1)
		if got := postsWith(r.fake.Snapshot(), chanOrg); !slices.Equal(got, []string{tokenOf(t, r.fake, enterpr)}) {
			t.Errorf("posts in the org carried %q", got)
		}
	})
	t.Run("one uninstalls without touching the others", func(t *testing.T) {
		if err := r.fake.Uninstall(teamTwo); err != nil {
			t.Fatal(err)
		}
		sendAcked(t, r.fake, r.fake.TokensRevokedEvent(teamTwo))
		sendAcked(t, r.fake, r.fake.AppUninstalledEvent(teamTwo))
		ws, err := r.db.Workspaces(t.Context(), bridge.PlatformSlack)
		if err != nil || len(ws) != 2 || slices.ContainsFunc(ws, func(w bridge.Workspace) bool { return w.ID == teamTwo }) {
			t.Fatalf("stored workspaces %+v, %v; want all but %s", ws, err, teamTwo)
		}
		gone := r.say(t, dave, chanTwo, "", "anyone there?")
		still := r.say(t, erin, chanThree, "", "still here")
		r.waitReplies(t, chanThree, still.TS, 1)
		r.idle(t)
		if n := len(r.replies(chanTwo, gone.TS)); n != 0 {
			t.Errorf("%d replies in the uninstalled workspace", n)
		}
		if err := r.ad.Ready(); err != nil {
			t.Errorf("Ready = %v after one workspace uninstalled", err)
		}
	})
	t.Run("after a restart the stored workspaces are served", func(t *testing.T) {
		got := make(chan bridge.Inbound, 1)
		var once sync.Once
		// Over HTTP, so that the running adapter's socket stays out of it.
		restarted := newAdapter(t, r.fake, func(c *slack.Config) {
			c.BotToken, c.Mode, c.AppToken = "", slack.ModeHTTP, ""
			c.ClientID, c.ClientSecret, c.TokenKey = slacktest.DefaultClientID, slacktest.DefaultClientSecret, tokenKey
			c.RedirectURL, c.Installs = srv.URL+"/slack/oauth/callback", r.db
		})
		run(t, restarted, bridge.HandlerFunc(func(_ context.Context, in bridge.Inbound) error {
			once.Do(func() { got <- in })
			return nil
		}))
		waitReady(t, restarted, "nil", func(err error) bool { return err == nil })
		events := httptest.NewServer(restarted.EventsHandler())
		t.Cleanup(events.Close)
		m := r.fake.AddMessage(slacktest.Message{Channel: chanThree, User: erin, Text: "after the restart"})
		if resp, err := r.fake.PostEvent(waitCtx(t), events.URL, r.fake.MessageEvent(m), slacktest.Delivery{}); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("event answered %v, %v", resp, err)
		}
		var in bridge.Inbound
		select {
		case in = <-got:
		case <-waitCtx(t).Done():
			t.Fatal("the restarted adapter handed nothing over")
		}
		if in.Room.Room != teamThree+":"+chanThree || in.Team != teamThree {
			t.Errorf("inbound in %s of team %q", in.Room, in.Team)
		}
		posted, err := restarted.Send(waitCtx(t), bridge.Outbound{ID: "msg-restart", Room: in.Room, Payload: textPayload("answer"), Time: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		c := r.fake.Snapshot().CallsTo("chat.postMessage")
		if last := c[len(c)-1]; last.Token != tokenOf(t, r.fake, teamThree) || last.Args.Get("channel") != chanThree || !posted.Complete() {
			t.Errorf("posted %q with %q in %q", posted, last.Token, last.Args.Get("channel"))
		}
	})
}

func TestInstallLink(t *testing.T) {
	now := time.Now()
	var srv *httptest.Server
	var ad *slack.Adapter
	srv = oauthServer(t, func() *slack.Adapter { return ad })
	fake := newFake(t, slacktest.Options{})
	addTeams(fake)
	db := openStore(t)
	ad = newAdapter(t, fake, func(c *slack.Config) {
		c.BotToken = ""
		c.ClientID, c.ClientSecret, c.TokenKey = slacktest.DefaultClientID, slacktest.DefaultClientSecret, tokenKey
		c.RedirectURL, c.Installs = srv.URL+"/slack/oauth/callback", db
		c.Now = func() time.Time { return now }
	})
	run(t, ad, nopHandler())
	waitReady(t, ad, "nil", func(err error) bool { return err == nil })

	t.Run("the install link asks Slack for the app's scopes with a state", func(t *testing.T) {
		resp, _ := newBrowser(t).get(srv.URL + "/slack/install")
		loc, _ := url.Parse(resp.Header.Get("Location"))
		q := loc.Query()
		if loc.Path != "/oauth/v2/authorize" || q.Get("client_id") != slacktest.DefaultClientID || q.Get("state") == "" ||
			q.Get("redirect_uri") != srv.URL+"/slack/oauth/callback" || !strings.Contains(q.Get("scope"), "commands") {
			t.Errorf("redirect to %s", loc)
		}
	})
	callback := func(b *browser, mangle func(q url.Values)) int {
		resp, _ := b.get(srv.URL + "/slack/install")
		authorize := resp.Header.Get("Location")
		resp, _ = b.get(authorize)
		back, _ := url.Parse(resp.Header.Get("Location"))
		q := back.Query()
		if mangle != nil {
			mangle(q)
		}
		back.RawQuery = q.Encode()
		resp, _ = b.get(back.String())
		return resp.StatusCode
	}
	t.Run("a forged state is refused", func(t *testing.T) {
		if got := callback(newBrowser(t), func(q url.Values) { q.Set("state", q.Get("state")+"x") }); got != http.StatusBadRequest {
			t.Errorf("status %d, want 400", got)
		}
	})
	t.Run("a callback in another browser is refused", func(t *testing.T) {
		b := newBrowser(t)
		resp, _ := b.get(srv.URL + "/slack/install")
		resp, _ = b.get(resp.Header.Get("Location"))
		resp, _ = newBrowser(t).get(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("status %d, want 400", resp.StatusCode)
		}
	})
	t.Run("an expired install link is refused", func(t *testing.T) {
		b := newBrowser(t)
		resp, _ := b.get(srv.URL + "/slack/install")
		resp, _ = b.get(resp.Header.Get("Location"))
		now = now.Add(11 * time.Minute)
		defer func() { now = now.Add(-11 * time.Minute) }()
		resp, body := b.get(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "expired") {
			t.Errorf("status %d %s, want 400", resp.StatusCode, body)
		}
	})
	t.Run("nothing was stored by the refused callbacks; a good one installs", func(t *testing.T) {
		if ws, _ := db.Workspaces(t.Context(), bridge.PlatformSlack); len(ws) != 0 {
			t.Errorf("stored %+v", ws)
		}
		if got := callback(newBrowser(t), nil); got != http.StatusOK {
			t.Errorf("status %d, want 200", got)
		}
		if ws, _ := db.Workspaces(t.Context(), bridge.PlatformSlack); len(ws) != 1 {
			t.Errorf("stored %+v", ws)
		}
	})
	t.Run("a person who cancels on Slack's page is told nothing was installed", func(t *testing.T) {
		resp, body := newBrowser(t).get(srv.URL + "/slack/oauth/callback?error=access_denied&state=x")
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Nothing was installed") {
			t.Errorf("status %d %s", resp.StatusCode, body)
		}
	})
}

func textPayload(s string) chat.Payload { return chat.Text{Text: s} }

// openStore opens a store on a new file, closed when the test ends.
func openStore(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "bridge.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
