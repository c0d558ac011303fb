package slack_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botbridge/botbridge/adapters/slack"
	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

// Slack's worked example from "Verifying requests from Slack"
// (docs.slack.dev/authentication/verifying-requests-from-slack).
const (
	docSecret    = "8f742231b10e8888abcd99yyyzzz85a5"
	docTimestamp = 1531420618
	docBody      = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	docSignature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
)

// clock is a settable offset from the real clock.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Set(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = d
}

// choiceBot answers "choose" with a choice and anything else with "got: "
// and the text.
func choiceBot() chattest.Bot {
	return chattest.BotFunc(func(ctx context.Context, r chattest.Replier, m chat.Message) {
		if text := bridgetest.Text(m.Payload); text == "choose" {
			_, _ = r.Reply(ctx, chat.Choice{Text: "Which size?", Options: []chat.ChoiceOption{{Label: "Small", Value: "s"}, {Label: "Large", Value: "l"}}})
		} else {
			_, _ = r.Reply(ctx, chat.Text{Text: "got: " + text})
		}
	})
}

// waitReady polls a.Ready until ok accepts its answer.
func waitReady(t *testing.T, a *slack.Adapter, what string, ok func(error) bool) error {
	t.Helper()
	ctx := waitCtx(t)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		err := a.Ready()
		if ok(err) {
			return err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("waiting for Ready to be %s: last %v", what, err)
		}
	}
}

func TestEventsAPI(t *testing.T) {
	var clk clock
	r := newRig(t, choiceBot(), rigOptions{
		fake: slacktest.Options{SigningSecret: "s3cret"},
		adapter: func(c *slack.Config) {
			c.Mode, c.AppToken, c.Now = slack.ModeHTTP, "", clk.Now
		},
	})
	srv := httptest.NewServer(r.ad.EventsHandler())
	t.Cleanup(srv.Close)
	waitReady(t, r.ad, "nil", func(err error) bool { return err == nil })
	ctx := waitCtx(t)
	post := func(t *testing.T, payload any, d slacktest.Delivery) *slacktest.Response {
		t.Helper()
		resp, err := r.fake.PostEvent(ctx, srv.URL, payload, d)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	t.Run("url_verification is answered with the challenge", func(t *testing.T) {
		resp := post(t, slacktest.URLVerification("ch4llenge"), slacktest.Delivery{})
		if resp.StatusCode != http.StatusOK || string(resp.Body) != "ch4llenge" {
			t.Errorf("answer %d %q", resp.StatusCode, resp.Body)
		}
	})
	m := r.fake.AddMessage(slacktest.Message{Channel: dm, User: alice, Text: "over http"})
	ev := r.fake.MessageEvent(m)
	t.Run("a signed event is answered", func(t *testing.T) {
		if resp := post(t, ev, slacktest.Delivery{}); resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
		}
		if got := r.waitReplies(t, dm, "", 1); got[0].Text != "got: over http" {
			t.Errorf("reply %q", got[0].Text)
		}
	})
	t.Run("Slack's retry of it is acknowledged and not answered again", func(t *testing.T) {
		if resp := post(t, ev, slacktest.Delivery{RetryNum: 1, RetryReason: "http_timeout"}); resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
		}
		r.idle(t)
		if got := r.replies(dm, ""); len(got) != 1 {
			t.Errorf("%d replies: %s", len(got), texts(got))
		}
	})
	t.Run("a bad signature is refused", func(t *testing.T) {
		bad := r.fake.MessageEvent(r.fake.AddMessage(slacktest.Message{Channel: dm, User: alice, Text: "forged"}))
		if resp := post(t, bad, slacktest.Delivery{Secret: "not-the-secret"}); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", resp.StatusCode)
		}
	})
	t.Run("a request signed more than 5 minutes ago is refused", func(t *testing.T) {
		clk.Set(5*time.Minute + 2*time.Second)
		defer clk.Set(0)
		late := r.fake.MessageEvent(r.fake.AddMessage(slacktest.Message{Channel: dm, User: alice, Text: "replayed"}))
		if resp := post(t, late, slacktest.Delivery{}); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", resp.StatusCode)
		}
	})
	t.Run("a request signed 4 minutes ago is accepted", func(t *testing.T) {
		clk.Set(4 * time.Minute)
		defer clk.Set(0)
		ok := r.fake.MessageEvent(r.fake.AddMessage(slacktest.Message{Channel: dm, User: alice, Text: "slow network"}))
		if resp := post(t, ok, slacktest.Delivery{}); resp.StatusCode != http.StatusOK {
			t.Errorf("status %d, want 200", resp.StatusCode)
		}
		r.waitReplies(t, dm, "", 2)
	})
	t.Run("a click arrives on the same URL", func(t *testing.T) {
		q := r.fake.MessageEvent(r.fake.AddMessage(slacktest.Message{Channel: dm, User: alice, Text: "choose"}))
		post(t, q, slacktest.Delivery{})
		question := r.waitReplies(t, dm, "", 3)[2]
		resp, err := r.fake.PostInteraction(ctx, srv.URL, r.fake.BlockActions(slacktest.Action{User: alice, Channel: dm, MessageTS: question.TS, ActionID: "bb:pick:1"}), slacktest.Delivery{})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
		}
		if got := r.waitReplies(t, dm, "", 4); got[3].Text != "got: s" {
			t.Errorf("reply %q", got[3].Text)
		}
	})
	t.Run("nothing forged or stale reached the bot", func(t *testing.T) {
		r.idle(t)
		for _, m := range r.replies(dm, "") {
			if strings.Contains(m.Text, "forged") || strings.Contains(m.Text, "replayed") {
				t.Errorf("the bot answered %q", m.Text)
			}
		}
	})
}

func TestSignatureCheck(t *testing.T) {
	fake := newFake(t, slacktest.Options{})
	at := time.Unix(docTimestamp, 0)
	now := at.Add(30 * time.Second)
	a := newAdapter(t, fake, func(c *slack.Config) {
		c.Mode, c.AppToken, c.SigningSecret = slack.ModeHTTP, "", docSecret
		c.Now = func() time.Time { return now }
	})
	h := a.EventsHandler()
	send := func(body, sig string, ts int64, ct string) int {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/slack/events", bytes.NewReader([]byte(body)))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts, 10))
		req.Header.Set("X-Slack-Signature", sig)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	const form = "application/x-www-form-urlencoded"
	t.Run("Slack's documented example is accepted", func(t *testing.T) {
		if code := send(docBody, docSignature, docTimestamp, form); code != http.StatusOK {
			t.Errorf("status %d, want 200", code)
		}
	})
	t.Run("a changed body is refused", func(t *testing.T) {
		if code := send(strings.Replace(docBody, "roadrunner", "coyote", 1), docSignature, docTimestamp, form); code != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", code)
		}
	})
	t.Run("a changed timestamp is refused", func(t *testing.T) {
		if code := send(docBody, docSignature, docTimestamp+1, form); code != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", code)
		}
	})
	t.Run("the example replayed 6 minutes later is refused", func(t *testing.T) {
		now = at.Add(6 * time.Minute)
		defer func() { now = at.Add(30 * time.Second) }()
		if code := send(docBody, docSignature, docTimestamp, form); code != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", code)
		}
	})
	t.Run("a request without signature is refused", func(t *testing.T) {
		if code := send(docBody, "", docTimestamp, form); code != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", code)
		}
	})
	t.Run("an event before the adapter runs is deferred with 503", func(t *testing.T) {
		body := `{"type":"event_callback","event":{"type":"message","channel":"D1","user":"U1","text":"hi","ts":"1.000001"}}`
		sig := slacktest.Sign(docSecret, at, []byte(body))
		if code := send(body, sig, docTimestamp, "application/json"); code != http.StatusServiceUnavailable {
			t.Errorf("status %d, want 503", code)
		}
	})
	t.Run("a body over the limit is refused", func(t *testing.T) {
		body := `{"type":"event_callback","x":"` + strings.Repeat("a", 2<<20) + `"}`
		if code := send(body, slacktest.Sign(docSecret, at, []byte(body)), docTimestamp, "application/json"); code != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413", code)
		}
	})
}
