package slacktest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/botbridge/botbridge/adapters/slack/slacktest"
)

// Slack's worked example from "Verifying requests from Slack"
// (docs.slack.dev/authentication/verifying-requests-from-slack).
const (
	docSecret    = "8f742231b10e8888abcd99yyyzzz85a5"
	docTimestamp = 1531420618
	docBody      = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	docSignature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
)

func TestSign(t *testing.T) {
	t.Run("matches Slack's documented example", func(t *testing.T) {
		got := slacktest.Sign(docSecret, time.Unix(docTimestamp, 0), []byte(docBody))
		if got != docSignature {
			t.Fatalf("Sign = %s, want %s", got, docSignature)
		}
	})
	t.Run("is accepted by slack-go's verifier", func(t *testing.T) {
		now := time.Now()
		body := []byte(`{"type":"event_callback"}`)
		h := http.Header{}
		h.Set("X-Slack-Request-Timestamp", strconv.FormatInt(now.Unix(), 10))
		h.Set("X-Slack-Signature", slacktest.Sign("s3cret", now, body))
		v, err := slack.NewSecretsVerifier(h, "s3cret")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = v.Write(body)
		if err := v.Ensure(); err != nil {
			t.Fatalf("verifier: %v", err)
		}
	})
	t.Run("changes with the body", func(t *testing.T) {
		a := slacktest.Sign(docSecret, time.Unix(docTimestamp, 0), []byte(docBody))
		b := slacktest.Sign(docSecret, time.Unix(docTimestamp, 0), []byte(docBody+"x"))
		if a == b {
			t.Fatal("signatures of different bodies are equal")
		}
	})
}

// received is what the app under test saw of one request.
type received struct {
	verified    bool
	retryNum    string
	retryReason string
	contentType string
	event       slackevents.EventsAPIEvent
	interaction slack.InteractionCallback
	err         error
}

// newApp starts an HTTP app that checks signatures with slack-go and parses
// events (path /events) or interactions (path /interactions), reporting each
// request on the returned channel.
func newApp(t *testing.T, signingSecret string) (string, <-chan received) {
	t.Helper()
	got := make(chan received, 10)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := received{
			retryNum:    r.Header.Get("X-Slack-Retry-Num"),
			retryReason: r.Header.Get("X-Slack-Retry-Reason"),
			contentType: r.Header.Get("Content-Type"),
		}
		defer func() { got <- rec }()
		body, err := io.ReadAll(r.Body)
		if err != nil {
			rec.err = err
			return
		}
		v, err := slack.NewSecretsVerifier(r.Header, signingSecret)
		if err == nil {
			_, _ = v.Write(body)
			err = v.Ensure()
		}
		if err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		rec.verified = true
		switch r.URL.Path {
		case "/events":
			rec.event, rec.err = slackevents.ParseEvent(body, slackevents.OptionNoVerifyToken())
			if rec.event.Type == slackevents.URLVerification {
				var ch slackevents.ChallengeResponse
				rec.err = json.Unmarshal(body, &ch)
				_, _ = w.Write([]byte(ch.Challenge))
			}
		case "/interactions":
			r.Body = io.NopCloser(bytes.NewReader(body))
			rec.interaction, rec.err = slack.InteractionCallbackParse(r)
		}
	}))
	t.Cleanup(app.Close)
	return app.URL, got
}

func receive(t *testing.T, got <-chan received) received {
	t.Helper()
	select {
	case rec := <-got:
		if rec.err != nil {
			t.Fatalf("app: %v", rec.err)
		}
		return rec
	case <-time.After(waitTimeout):
		t.Fatal("the app received nothing")
	}
	return received{}
}

func TestPostEvent(t *testing.T) {
	const signing = "app-signing-secret"
	fake := newFake(t, slacktest.Options{SigningSecret: signing})
	url, got := newApp(t, signing)
	ctx := t.Context()

	t.Run("a signed event is verified and parsed by slack-go", func(t *testing.T) {
		msg := fake.AddMessage(slacktest.Message{Channel: general, User: alice, Text: "hi <@" + slacktest.DefaultBotUserID + ">"})
		resp, err := fake.PostEvent(ctx, url+"/events", fake.MessageEvent(msg), slacktest.Delivery{})
		if err != nil {
			t.Fatal(err)
		}
		rec := receive(t, got)
		if resp.StatusCode != http.StatusOK || !rec.verified {
			t.Fatalf("status %d, verified %v", resp.StatusCode, rec.verified)
		}
		if rec.contentType != "application/json" || rec.retryNum != "" {
			t.Errorf("content type %q, retry num %q", rec.contentType, rec.retryNum)
		}
		ev, ok := rec.event.InnerEvent.Data.(*slackevents.MessageEvent)
		if !ok {
			t.Fatalf("inner event is %T", rec.event.InnerEvent.Data)
		}
		if ev.Channel != general || ev.User != alice || ev.Text != msg.Text || ev.TimeStamp != msg.TS || ev.ChannelType != "channel" {
			t.Errorf("event = %+v", ev)
		}
		if rec.event.TeamID != slacktest.DefaultTeamID || rec.event.APIAppID != slacktest.DefaultAppID {
			t.Errorf("outer event = %+v", rec.event)
		}
	})

	t.Run("a retry carries the retry headers", func(t *testing.T) {
		ev := fake.MessageEvent(slacktest.Message{Channel: general, User: alice, Text: "again"})
		if _, err := fake.PostEvent(ctx, url+"/events", ev, slacktest.Delivery{RetryNum: 2, RetryReason: "http_timeout"}); err != nil {
			t.Fatal(err)
		}
		rec := receive(t, got)
		if rec.retryNum != "2" || rec.retryReason != "http_timeout" {
			t.Errorf("retry headers %q %q", rec.retryNum, rec.retryReason)
		}
	})

	t.Run("a wrong secret is rejected by slack-go's verifier", func(t *testing.T) {
		ev := fake.MessageEvent(slacktest.Message{Channel: general, User: alice, Text: "forged"})
		resp, err := fake.PostEvent(ctx, url+"/events", ev, slacktest.Delivery{Secret: "wrong"})
		if err != nil {
			t.Fatal(err)
		}
		if rec := receive(t, got); rec.verified || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("verified %v, status %d", rec.verified, resp.StatusCode)
		}
	})

	t.Run("an old timestamp is rejected by slack-go's verifier", func(t *testing.T) {
		ev := fake.MessageEvent(slacktest.Message{Channel: general, User: alice, Text: "replayed"})
		resp, err := fake.PostEvent(ctx, url+"/events", ev, slacktest.Delivery{Time: time.Now().Add(-10 * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if rec := receive(t, got); rec.verified || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("verified %v, status %d", rec.verified, resp.StatusCode)
		}
	})

	t.Run("url_verification gets its challenge back", func(t *testing.T) {
		resp, err := fake.PostEvent(ctx, url+"/events", slacktest.URLVerification("c4ll3nge"), slacktest.Delivery{})
		if err != nil {
			t.Fatal(err)
		}
		rec := receive(t, got)
		if rec.event.Type != slackevents.URLVerification || string(resp.Body) != "c4ll3nge" {
			t.Errorf("type %q, answer %q", rec.event.Type, resp.Body)
		}
	})
}

func TestPostInteraction(t *testing.T) {
	const signing = "app-signing-secret"
	fake := newFake(t, slacktest.Options{SigningSecret: signing})
	url, got := newApp(t, signing)
	api := newAPI(fake)
	ctx := t.Context()

	_, ts, err := api.PostMessageContext(ctx, general, slack.MsgOptionText("Pick one", false), slack.MsgOptionBlocks(
		slack.NewActionBlock("choices", slack.NewButtonBlockElement("yes", "v-yes", slack.NewTextBlockObject(slack.PlainTextType, "Yes", false, false))),
	))
	if err != nil {
		t.Fatal(err)
	}
	payload := fake.BlockActions(slacktest.Action{User: alice, Channel: general, MessageTS: ts, ActionID: "yes"})
	resp, err := fake.PostInteraction(ctx, url+"/interactions", payload, slacktest.Delivery{})
	if err != nil {
		t.Fatal(err)
	}
	rec := receive(t, got)
	if !rec.verified || resp.StatusCode != http.StatusOK {
		t.Fatalf("verified %v, status %d", rec.verified, resp.StatusCode)
	}
	if rec.contentType != "application/x-www-form-urlencoded" {
		t.Errorf("content type %q", rec.contentType)
	}
	ic := rec.interaction
	if ic.Type != slack.InteractionTypeBlockActions || ic.User.ID != alice || ic.Channel.ID != general || ic.Container.MessageTs != ts {
		t.Fatalf("interaction = %+v", ic)
	}
	if n := len(ic.ActionCallback.BlockActions); n != 1 {
		t.Fatalf("%d block actions", n)
	}
	if a := ic.ActionCallback.BlockActions[0]; a.ActionID != "yes" || a.BlockID != "choices" || a.Value != "v-yes" || a.Text.Text != "Yes" {
		t.Errorf("action = %+v", a)
	}
}
