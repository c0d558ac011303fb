package slacktest_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/botbridge/botbridge/adapters/slack/slacktest"
)

// authorize approves the app for team on the fake's authorize page and
// returns the code it hands back.
func authorize(t *testing.T, fake *slacktest.Server, team, redirect string) string {
	t.Helper()
	q := url.Values{"client_id": {slacktest.DefaultClientID}, "scope": {"chat:write,commands"}, "redirect_uri": {redirect},
		"state": {"st"}, "team": {team}}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(fake.AuthorizeURL() + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound || back.Query().Get("state") != "st" {
		t.Fatalf("authorize answered %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	return back.Query().Get("code")
}

func TestOAuthAndTeams(t *testing.T) {
	fake := newFake(t, slacktest.Options{})
	fake.AddTeam(slacktest.Team{ID: "T2", Name: "Two"})
	fake.AddChannel(slacktest.Channel{ID: "C2", Name: "two", Team: "T2", Members: []string{alice}, IsMember: true})
	const redirect = "https://bridge.example.com/slack/oauth/callback"
	exchange := func(code, secret string) (*slack.OAuthV2Response, error) {
		return slack.GetOAuthV2ResponseContext(t.Context(), http.DefaultClient, slacktest.DefaultClientID, secret, code, redirect,
			slack.OAuthOptionAPIURL(fake.APIURL()))
	}

	code := authorize(t, fake, "T2", redirect)
	t.Run("a bad client secret is refused", func(t *testing.T) {
		_, err := exchange(code, "wrong")
		wantSlackErr(t, err, "bad_client_secret")
	})
	resp, err := exchange(code, slacktest.DefaultClientSecret)
	if err != nil {
		t.Fatal(err)
	}
	if resp.TokenType != "bot" || !strings.HasPrefix(resp.AccessToken, "xoxb-") || resp.Team.ID != "T2" || resp.Scope != "chat:write,commands" {
		t.Fatalf("oauth.v2.access = %+v", resp)
	}
	two := slack.New(resp.AccessToken, slack.OptionAPIURL(fake.APIURL()))
	t.Run("a code is used once", func(t *testing.T) {
		_, err := exchange(code, slacktest.DefaultClientSecret)
		wantSlackErr(t, err, "invalid_code")
	})
	t.Run("the token is the team's bot, and posts in its channels only", func(t *testing.T) {
		id, err := two.AuthTestContext(t.Context())
		if err != nil || id.TeamID != "T2" || id.UserID != resp.BotUserID {
			t.Fatalf("auth.test = %+v, %v", id, err)
		}
		if _, _, err := two.PostMessageContext(t.Context(), "C2", slack.MsgOptionText("hi", false)); err != nil {
			t.Error(err)
		}
		_, _, err = two.PostMessageContext(t.Context(), general, slack.MsgOptionText("hi", false))
		wantSlackErr(t, err, "channel_not_found")
		m := fake.Snapshot().Messages["C2"][0]
		if m.User != resp.BotUserID || m.BotID != id.BotID {
			t.Errorf("posted as %s/%s", m.User, m.BotID)
		}
	})
	t.Run("an event of the team's channel says its team and install", func(t *testing.T) {
		cb := fake.MessageEvent(slacktest.Message{Channel: "C2", User: alice, Text: "hi"})
		if cb.TeamID != "T2" || len(cb.Authorizations) != 1 || cb.Authorizations[0].UserID != resp.BotUserID {
			t.Errorf("callback %+v", cb)
		}
	})
	t.Run("after an uninstall the token is revoked, and Slack says so in events", func(t *testing.T) {
		if err := fake.Uninstall("T2"); err != nil {
			t.Fatal(err)
		}
		_, err := two.AuthTestContext(t.Context())
		wantSlackErr(t, err, "token_revoked")
		ev := fake.TokensRevokedEvent("T2")
		var inner slackevents.TokensRevokedEvent
		if err := json.Unmarshal(ev.Event, &inner); err != nil || len(inner.Tokens.Bot) != 1 || inner.Tokens.Bot[0] != resp.BotUserID {
			t.Errorf("tokens_revoked %s, %v", ev.Event, err)
		}
		if up := fake.AppUninstalledEvent("T2"); up.TeamID != "T2" || !strings.Contains(string(up.Event), "app_uninstalled") {
			t.Errorf("app_uninstalled %+v", up)
		}
	})
	t.Run("an org-wide install covers the enterprise's teams", func(t *testing.T) {
		fake.AddTeam(slacktest.Team{ID: "T3", EnterpriseID: "E1"})
		fake.AddChannel(slacktest.Channel{ID: "C3", Team: "T3", IsMember: true})
		resp, err := exchange(authorize(t, fake, "E1", redirect), slacktest.DefaultClientSecret)
		if err != nil || !resp.IsEnterpriseInstall || resp.Enterprise.ID != "E1" {
			t.Fatalf("org-wide install = %+v, %v", resp, err)
		}
		org := slack.New(resp.AccessToken, slack.OptionAPIURL(fake.APIURL()))
		if _, _, err := org.PostMessageContext(t.Context(), "C3", slack.MsgOptionText("hi", false)); err != nil {
			t.Error(err)
		}
		cb := fake.MessageEvent(slacktest.Message{Channel: "C3", User: alice, Text: "hi"})
		if cb.EnterpriseID == nil || *cb.EnterpriseID != "E1" || !cb.Authorizations[0].IsEnterpriseInstall {
			t.Errorf("callback %+v", cb)
		}
	})
}

func TestAppSurfaces(t *testing.T) {
	fake := newFake(t, slacktest.Options{Scopes: append(slacktest.DefaultScopes(), "chat:write.customize")})
	api := slack.New(slacktest.DefaultBotToken, slack.OptionAPIURL(fake.APIURL()))
	t.Run("views.publish keeps each user's Home tab", func(t *testing.T) {
		view := slack.HomeTabViewRequest{Type: slack.VTHomeTab, PrivateMetadata: "v1", Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewSectionBlock(slack.NewTextBlockObject("mrkdwn", "hello", false, false), nil, nil)}}}
		if _, err := api.PublishViewContext(t.Context(), slack.PublishViewContextRequest{UserID: alice, View: view}); err != nil {
			t.Fatal(err)
		}
		v := fake.Snapshot().Views[alice]
		if v.Type != "home" || v.PrivateMetadata != "v1" || !strings.Contains(string(v.Blocks), "hello") {
			t.Errorf("view %+v", v)
		}
		ev := fake.AppHomeOpenedEvent(alice, "home")
		var inner slackevents.AppHomeOpenedEvent
		if err := json.Unmarshal(ev.Event, &inner); err != nil || inner.View == nil || inner.View.PrivateMetadata != "v1" {
			t.Errorf("app_home_opened %s, %v", ev.Event, err)
		}
	})
	t.Run("assistant threads get prompts and titles", func(t *testing.T) {
		root, ev, err := fake.StartAssistantThread(alice, dm, slacktest.AssistantContext{ChannelID: general})
		if err != nil {
			t.Fatal(err)
		}
		var inner slackevents.AssistantThreadStartedEvent
		if err := json.Unmarshal(ev.Event, &inner); err != nil || inner.AssistantThread.ThreadTimeStamp != root.TS || inner.AssistantThread.Context.ChannelID != general {
			t.Errorf("assistant_thread_started %s, %v", ev.Event, err)
		}
		p := slack.AssistantThreadsSetSuggestedPromptsParameters{ChannelID: dm, ThreadTS: root.TS}
		p.AddPrompt("Hi", "Say hi")
		if err := api.SetAssistantThreadsSuggestedPromptsContext(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		if err := api.SetAssistantThreadsTitleContext(t.Context(), slack.AssistantThreadsSetTitleParameters{ChannelID: dm, ThreadTS: root.TS, Title: "Greetings"}); err != nil {
			t.Fatal(err)
		}
		st := fake.Snapshot()
		if len(st.Prompts) != 1 || st.Prompts[0].Prompts[0].Message != "Say hi" || len(st.Titles) != 1 || st.Titles[0].Title != "Greetings" {
			t.Errorf("prompts %+v titles %+v", st.Prompts, st.Titles)
		}
	})
	t.Run("a post keeps its name and icon with chat:write.customize", func(t *testing.T) {
		_, ts, err := api.PostMessageContext(t.Context(), general, slack.MsgOptionText("hi", false),
			slack.MsgOptionUsername("Helper"), slack.MsgOptionIconURL("https://icons.example.com/h.png"))
		if err != nil {
			t.Fatal(err)
		}
		if m := fake.Snapshot().Message(general, ts); m.Username != "Helper" || m.IconURL != "https://icons.example.com/h.png" {
			t.Errorf("posted as %q %q", m.Username, m.IconURL)
		}
	})
	t.Run("reactions of people come as events", func(t *testing.T) {
		m := fake.AddMessage(slacktest.Message{Channel: general, User: bob, Text: "hi"})
		ev, err := fake.React(alice, general, m.TS, "+1")
		if err != nil {
			t.Fatal(err)
		}
		var inner slackevents.ReactionAddedEvent
		if err := json.Unmarshal(ev.Event, &inner); err != nil || inner.User != alice || inner.ItemUser != bob || inner.Item.Timestamp != m.TS {
			t.Errorf("reaction_added %s, %v", ev.Event, err)
		}
		if _, err := fake.React(alice, general, m.TS, "+1"); err == nil {
			t.Error("reacting twice with the same emoji worked")
		}
	})
	t.Run("a slash command is the form Slack posts", func(t *testing.T) {
		var got slack.SlashCommand
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, _ = slack.SlashCommandParse(r)
		}))
		t.Cleanup(srv.Close)
		c := fake.Command(alice, general, "/ask", "what now")
		if _, err := fake.PostCommand(t.Context(), srv.URL, c, slacktest.Delivery{}); err != nil {
			t.Fatal(err)
		}
		if got.Command != "/ask" || got.Text != "what now" || got.UserID != alice || got.ChannelID != general ||
			got.TeamID != slacktest.DefaultTeamID || got.TriggerID == "" || got.ResponseURL == "" {
			t.Errorf("parsed %+v", got)
		}
	})
}
