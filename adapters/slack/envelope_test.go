package slack_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/botbridge/botbridge/adapters/slack"
	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge"
)

// The one-pass decoding of an Events API payload must give every reader
// (the lane key, the outer object, the kind, the message) what it got when
// each decoded the payload on its own, for every kind of event and for
// odd and malformed ones.
func TestOnePassDecodingReadsWhatEachReaderReadApart(t *testing.T) {
	outer := func(event string) string {
		return `{"type":"event_callback","team_id":"T0TEAM","enterprise_id":"E0ORG","event_id":"Ev1",` +
			`"authorizations":[{"team_id":"T0TEAM","enterprise_id":"E0ORG","is_enterprise_install":true}],"event":` + event + `}`
	}
	for _, tc := range []struct {
		name, payload, lane string
	}{
		{"a message names its channel", outer(`{"type":"message","channel":"C0GENERAL","channel_type":"channel","user":"U1","text":"hi <@U2>","ts":"1.000100","thread_ts":"1.000000","files":[{"id":"F1","name":"a.png","size":12}],"bot_profile":{"name":"b"}}`), "C0GENERAL"},
		{"an edit names its channel", outer(`{"type":"message","subtype":"message_changed","channel":"D0DM","message":{"type":"message","user":"U1","text":"new","ts":"1.1","edited":{"user":"U1","ts":"2.2"}},"previous_message":{"type":"message","user":"U1","text":"old","ts":"1.1"}}`), "D0DM"},
		{"a mention names its channel", outer(`{"type":"app_mention","channel":"C0GENERAL","user":"U1","text":"<@U2> hi","ts":"1.2","edited":{"user":"U1","ts":"3.3"}}`), "C0GENERAL"},
		{"an escaped channel id is unescaped", outer(`{"type":"message","channel":"C0\u0047ENERAL","user":"U1","text":"hi","ts":"1.3"}`), "C0GENERAL"},
		{"a channel id of invalid UTF-8 is decoded as JSON decodes it", outer("{\"type\":\"message\",\"channel\":\"C0\xffX\",\"user\":\"U1\",\"text\":\"hi\",\"ts\":\"1.3\"}"), "C0\uFFFDX"},
		{"a channel id of other letters is kept", outer(`{"type":"message","channel":"C0ÉTÉ","user":"U1","text":"hi","ts":"1.3"}`), "C0ÉTÉ"},
		{"a message with a channel object is malformed", outer(`{"type":"message","channel":{"id":"C0GENERAL"},"user":"U1","text":"hi","ts":"1.4"}`), "C0GENERAL"},
		{"a message with files of the wrong type is malformed", outer(`{"type":"message","channel":"C0GENERAL","user":"U1","text":"hi","ts":"1.5","files":{"id":"F1"}}`), "C0GENERAL"},
		{"a message with a null channel names none", outer(`{"type":"message","channel":null,"user":"U1","text":"hi","ts":"1.6"}`), ""},
		{"a reaction names its item's channel", outer(`{"type":"reaction_added","user":"U1","reaction":"+1","item_user":"U2","item":{"type":"message","channel":"C0GENERAL","ts":"1.7"},"event_ts":"1.8"}`), "C0GENERAL"},
		{"a join names its channel", outer(`{"type":"member_joined_channel","user":"U1","channel":"C0GENERAL","inviter":"U2","event_ts":"1.9"}`), "C0GENERAL"},
		{"an event about a channel names its id", outer(`{"type":"channel_rename","channel":{"id":"C0GENERAL","name":"news","created":1}}`), "C0GENERAL"},
		{"an event with a user object reads as apart", outer(`{"type":"user_change","user":{"id":"U1","name":"alice"},"event_ts":"2.0"}`), ""},
		{"an agent thread names no channel at the top", outer(`{"type":"assistant_thread_started","assistant_thread":{"user_id":"U1","channel_id":"D0DM","thread_ts":"2.1","context":{"channel_id":"C0GENERAL"}},"event_ts":"2.2"}`), ""},
		{"a tokens_revoked keeps its tokens", outer(`{"type":"tokens_revoked","tokens":{"bot":["U2"]}}`), ""},
		{"an event of no object reads as apart", outer(`"message"`), ""},
		{"a null event has no kind", outer(`null`), ""},
		{"an event with an item of the wrong type reads as apart", outer(`{"type":"pin_added","channel_id":"C0GENERAL","item":"x"}`), ""},
		{"an interaction names its channel object", `{"type":"block_actions","channel":{"id":"C0GENERAL","name":"general"}}`, "C0GENERAL"},
		{"a command names its channel_id", `{"command":"/ask","channel_id":"C0GENERAL"}`, "C0GENERAL"},
		{"a url_verification has its challenge", `{"type":"url_verification","challenge":"abc","token":"t"}`, ""},
		{"a team id of the wrong type is malformed", `{"type":"event_callback","team_id":7,"event":{"type":"message","channel":"C0GENERAL","ts":"1.1","user":"U1"}}`, "C0GENERAL"},
		{"broken JSON is malformed", `{"type":"event_callback","event":{"type":"message"`, ""},
		{"no payload is malformed", ``, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			onePass, apart := slack.ReadEnvelope(json.RawMessage(tc.payload))
			if onePass != apart {
				t.Errorf("read in one pass:\n%+v\nread apart:\n%+v", onePass, apart)
			}
			if onePass.Lane != tc.lane {
				t.Errorf("lane %q, want %q", onePass.Lane, tc.lane)
			}
		})
	}
}

// Malformed events and events of unexpected shapes are answered as before
// over the Events API (400 for what is no event, 200 and ignored for an
// event the bridge cannot read), and the next message is handled.
func TestEventsOfUnexpectedShapesAreIgnored(t *testing.T) {
	fake := newFake(t, slacktest.Options{SigningSecret: "s3cret"})
	a := newAdapter(t, fake, func(c *slack.Config) { c.Mode, c.AppToken = slack.ModeHTTP, "" })
	var (
		mu  sync.Mutex
		got []string
	)
	run(t, a, bridge.HandlerFunc(func(_ context.Context, in bridge.Inbound) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, in.Text)
		return nil
	}))
	srv := httptest.NewServer(a.EventsHandler())
	t.Cleanup(srv.Close)
	waitReady(t, a, "nil", func(err error) bool { return err == nil })
	// reshaped returns the event of a message of alice in general, with
	// change applied to the event's fields.
	reshaped := func(text string, change func(ev map[string]any)) slacktest.EventCallback {
		cb := fake.MessageEvent(fake.AddMessage(slacktest.Message{Channel: general, User: alice, Text: text}))
		var ev map[string]any
		if err := json.Unmarshal(cb.Event, &ev); err != nil {
			t.Fatal(err)
		}
		change(ev)
		var err error
		if cb.Event, err = json.Marshal(ev); err != nil {
			t.Fatal(err)
		}
		return cb
	}
	for _, tc := range []struct {
		name    string
		payload any
		status  int
	}{
		{"broken JSON is refused", json.RawMessage(`{"type":"event_callback","event":`), http.StatusBadRequest},
		{"a team id of the wrong type is refused", json.RawMessage(`{"type":"event_callback","team_id":7,"event":{}}`), http.StatusBadRequest},
		{"a message in a channel object is ignored", reshaped("channel object", func(ev map[string]any) {
			ev["channel"] = map[string]any{"id": general}
		}), http.StatusOK},
		{"a message with files of the wrong type is ignored", reshaped("files object", func(ev map[string]any) {
			ev["files"] = map[string]any{"id": "F1"}
		}), http.StatusOK},
		{"an event with a user object is ignored", reshaped("user object", func(ev map[string]any) {
			ev["type"], ev["user"] = "user_change", map[string]any{"id": alice}
		}), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := fake.PostEvent(waitCtx(t), srv.URL, tc.payload, slacktest.Delivery{})
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Errorf("status %d (%s), want %d", resp.StatusCode, resp.Body, tc.status)
			}
		})
	}
	ok := fake.MessageEvent(fake.AddMessage(slacktest.Message{Channel: general, User: alice, Text: "after them"}))
	resp, err := fake.PostEvent(waitCtx(t), srv.URL, ok, slacktest.Delivery{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d (%s), want 200", resp.StatusCode, resp.Body)
	}
	mu.Lock() // the Events API answers once the handler returned
	defer mu.Unlock()
	if want := []string{"after them"}; !slices.Equal(got, want) {
		t.Errorf("handled %q, want %q", got, want)
	}
}
