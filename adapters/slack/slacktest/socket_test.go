package slacktest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/botbridge/botbridge/adapters/slack/slacktest"
)

// eventsAPI returns the inner event of an events_api client event.
func eventsAPI(t *testing.T, ev socketmode.Event) any {
	t.Helper()
	outer, ok := ev.Data.(slackevents.EventsAPIEvent)
	if !ok {
		t.Fatalf("data is %T", ev.Data)
	}
	return outer.InnerEvent.Data
}

func TestSocketMode(t *testing.T) {
	fake := newFake(t, slacktest.Options{PingInterval: 20 * time.Millisecond})
	ctx := waitCtx(t)

	// Sent before any client connects: Slack holds it, the fake too.
	early := make(chan string, 1)
	go func() {
		id, err := fake.SendEvent(ctx, slacktest.EventsAPI, fake.MessageEvent(slacktest.Message{Channel: general, User: alice, Text: "early"}))
		if err != nil {
			id = "error: " + err.Error()
		}
		early <- id
	}()

	client, events := startSocket(t, fake)
	api := newAPI(fake)

	t.Run("hello comes first, with Slack's fields", func(t *testing.T) {
		ev := nextEvent(t, events, socketmode.EventTypeHello)
		if ev.Request.NumConnections != 1 || ev.Request.ConnectionInfo.AppID != slacktest.DefaultAppID || ev.Request.DebugInfo.Host == "" {
			t.Errorf("hello = %+v", ev.Request)
		}
		ev = nextEvent(t, events, socketmode.EventTypeEventsAPI)
		msg, ok := eventsAPI(t, ev).(*slackevents.MessageEvent)
		if !ok || msg.Text != "early" {
			t.Fatalf("first event = %#v", eventsAPI(t, ev))
		}
		if id := <-early; ev.Request.EnvelopeID != id {
			t.Errorf("envelope id %q, SendEvent returned %q", ev.Request.EnvelopeID, id)
		}
		client.Ack(*ev.Request)
	})

	t.Run("pings are sent and answered", func(t *testing.T) {
		waitFor(t, fake, "two pongs", func(st *slacktest.State) bool {
			return len(st.Connections) == 1 && st.Connections[0].Pongs >= 2
		})
	})

	t.Run("a channel message is delivered and its ack seen", func(t *testing.T) {
		m := fake.AddMessage(slacktest.Message{Channel: general, User: alice, Text: "hello <@" + slacktest.DefaultBotUserID + ">"})
		id, err := fake.SendEvent(ctx, slacktest.EventsAPI, fake.MessageEvent(m))
		if err != nil {
			t.Fatal(err)
		}
		ev := nextEvent(t, events, socketmode.EventTypeEventsAPI)
		if ev.Request.EnvelopeID != id || ev.Request.AcceptsResponsePayload {
			t.Errorf("request = %+v", ev.Request)
		}
		msg, ok := eventsAPI(t, ev).(*slackevents.MessageEvent)
		if !ok {
			t.Fatalf("inner event is %T", eventsAPI(t, ev))
		}
		if msg.Channel != general || msg.User != alice || msg.Text != m.Text || msg.TimeStamp != m.TS ||
			msg.ChannelType != slackevents.ChannelTypeChannel || msg.ClientMsgID != m.ClientMsgID || msg.SubType != "" {
			t.Errorf("message = %+v", msg)
		}
		if len(msg.Blocks.BlockSet) != 1 || msg.Blocks.BlockSet[0].BlockType() != slack.MBTRichText {
			t.Errorf("blocks = %+v", msg.Blocks.BlockSet)
		}
		client.Ack(*ev.Request)
		ack, err := fake.WaitAck(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if ack.Payload != nil || ack.Conn != 1 {
			t.Errorf("ack = %+v", ack)
		}
	})

	t.Run("an app_mention in a thread is delivered", func(t *testing.T) {
		parent := fake.AddMessage(slacktest.Message{Channel: general, User: bob, Text: "question"})
		m := fake.AddMessage(slacktest.Message{Channel: general, User: alice, ThreadTS: parent.TS, Text: "<@" + slacktest.DefaultBotUserID + "> answer it"})
		if _, err := fake.SendEvent(ctx, slacktest.EventsAPI, fake.AppMentionEvent(m)); err != nil {
			t.Fatal(err)
		}
		ev := nextEvent(t, events, socketmode.EventTypeEventsAPI)
		mention, ok := eventsAPI(t, ev).(*slackevents.AppMentionEvent)
		if !ok {
			t.Fatalf("inner event is %T", eventsAPI(t, ev))
		}
		if mention.Channel != general || mention.ThreadTimeStamp != parent.TS || mention.TimeStamp != m.TS || mention.User != alice {
			t.Errorf("mention = %+v", mention)
		}
		client.Ack(*ev.Request)
	})

	t.Run("an edit arrives as message_changed", func(t *testing.T) {
		m := fake.AddMessage(slacktest.Message{Channel: general, User: alice, Text: "helo"})
		prev, cur, err := fake.EditMessage(general, m.TS, "hello")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fake.SendEvent(ctx, slacktest.EventsAPI, fake.MessageChangedEvent(prev, cur)); err != nil {
			t.Fatal(err)
		}
		msg := eventsAPI(t, nextEvent(t, events, socketmode.EventTypeEventsAPI)).(*slackevents.MessageEvent)
		if msg.SubType != slack.MsgSubTypeMessageChanged || msg.Message == nil || msg.PreviousMessage == nil {
			t.Fatalf("message = %+v", msg)
		}
		if msg.Message.Text != "hello" || msg.Message.Timestamp != m.TS || msg.Message.Edited == nil || msg.PreviousMessage.Text != "helo" {
			t.Errorf("changed = %+v, previous = %+v", msg.Message, msg.PreviousMessage)
		}
	})

	t.Run("a file shared in a DM arrives as file_share with a private URL", func(t *testing.T) {
		f := fake.AddFile(slacktest.File{Name: "cat.png", Mimetype: "image/png", User: alice, Content: []byte("png bytes")})
		m := fake.AddMessage(slacktest.Message{Channel: dm, User: alice, Text: "look", Files: []string{f.ID}})
		if _, err := fake.SendEvent(ctx, slacktest.EventsAPI, fake.MessageEvent(m)); err != nil {
			t.Fatal(err)
		}
		msg := eventsAPI(t, nextEvent(t, events, socketmode.EventTypeEventsAPI)).(*slackevents.MessageEvent)
		if msg.SubType != slack.MsgSubTypeFileShare || msg.ChannelType != slackevents.ChannelTypeIM || len(msg.Message.Files) != 1 {
			t.Fatalf("message = %+v", msg)
		}
		file := msg.Message.Files[0]
		if file.ID != f.ID || file.URLPrivate != f.URLPrivate || file.Mimetype != "image/png" || file.Size != len("png bytes") {
			t.Errorf("file = %+v", file)
		}
		var got bytesWriter
		if err := api.GetFileContext(ctx, file.URLPrivateDownload, &got); err != nil || string(got) != "png bytes" {
			t.Errorf("download = %q, %v", got, err)
		}
	})

	t.Run("bot messages and joins carry their subtypes", func(t *testing.T) {
		legacy := fake.MessageEvent(slacktest.Message{Channel: general, BotID: "B0000OTHER", Username: "deploys", Text: "deployed"})
		app := fake.MessageEvent(slacktest.Message{Channel: general, BotID: "B0000OTHER", User: "U0000OTHER", Text: "from an app"})
		join, err := fake.JoinChannel(general, "U0000CAROL")
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range []slacktest.EventCallback{legacy, app, fake.MessageEvent(join)} {
			if _, err := fake.SendEvent(ctx, slacktest.EventsAPI, ev); err != nil {
				t.Fatal(err)
			}
		}
		got := make([]*slackevents.MessageEvent, 3)
		for i := range got {
			got[i] = eventsAPI(t, nextEvent(t, events, socketmode.EventTypeEventsAPI)).(*slackevents.MessageEvent)
		}
		if got[0].SubType != slack.MsgSubTypeBotMessage || got[0].BotID != "B0000OTHER" || got[0].Username != "deploys" {
			t.Errorf("legacy bot message = %+v", got[0])
		}
		if got[1].SubType != "" || got[1].BotID != "B0000OTHER" || got[1].User != "U0000OTHER" {
			t.Errorf("app message = %+v", got[1])
		}
		if got[2].SubType != slack.MsgSubTypeChannelJoin || got[2].User != "U0000CAROL" {
			t.Errorf("join = %+v", got[2])
		}
	})

	t.Run("a button click and a select choice arrive as block_actions", func(t *testing.T) {
		_, ts, err := api.PostMessageContext(ctx, general, slack.MsgOptionText("Pick", false), slack.MsgOptionBlocks(
			slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "Pick a size", false, false), nil,
				slack.NewAccessory(slack.NewOptionsSelectBlockElement(slack.OptTypeStatic,
					slack.NewTextBlockObject(slack.PlainTextType, "Size", false, false), "size",
					slack.NewOptionBlockObject("s", slack.NewTextBlockObject(slack.PlainTextType, "Small", false, false), nil),
					slack.NewOptionBlockObject("l", slack.NewTextBlockObject(slack.PlainTextType, "Large", false, false), nil),
				)), slack.SectionBlockOptionBlockID("sizes")),
			slack.NewActionBlock("", slack.NewButtonBlockElement("ok", "confirmed", slack.NewTextBlockObject(slack.PlainTextType, "OK", false, false))),
		))
		if err != nil {
			t.Fatal(err)
		}

		id, err := fake.SendEvent(ctx, slacktest.Interactive, fake.BlockActions(slacktest.Action{User: alice, Channel: general, MessageTS: ts, ActionID: "ok"}))
		if err != nil {
			t.Fatal(err)
		}
		ev := nextEvent(t, events, socketmode.EventTypeInteractive)
		ic := ev.Data.(slack.InteractionCallback)
		if ic.Type != slack.InteractionTypeBlockActions || ic.User.ID != alice || ic.User.Name != "alice" || ic.Channel.ID != general ||
			ic.Container.Type != "message" || ic.Container.MessageTs != ts || ic.Container.ChannelID != general ||
			ic.Message.Timestamp != ts || ic.Message.BotID != slacktest.DefaultBotID || len(ic.Message.Blocks.BlockSet) != 2 ||
			ic.ResponseURL == "" || ic.TriggerID == "" || ic.Team.ID != slacktest.DefaultTeamID {
			t.Errorf("interaction = %+v", ic)
		}
		btn := ic.ActionCallback.BlockActions[0]
		if btn.ActionID != "ok" || btn.Value != "confirmed" || btn.Text.Text != "OK" || btn.BlockID == "" || btn.Type != "button" {
			t.Errorf("button action = %+v", btn)
		}
		client.Ack(*ev.Request, map[string]string{"text": "thanks"})
		ack, err := fake.WaitAck(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if string(ack.Payload) != `{"text":"thanks"}` {
			t.Errorf("ack payload = %s", ack.Payload)
		}

		if _, err := fake.SendEvent(ctx, slacktest.Interactive, fake.BlockActions(slacktest.Action{User: bob, Channel: general, MessageTS: ts, ActionID: "size", Type: "static_select", Value: "l"})); err != nil {
			t.Fatal(err)
		}
		ic = nextEvent(t, events, socketmode.EventTypeInteractive).Data.(slack.InteractionCallback)
		sel := ic.ActionCallback.BlockActions[0]
		if sel.Type != "static_select" || sel.BlockID != "sizes" || sel.SelectedOption.Value != "l" || sel.SelectedOption.Text.Text != "Large" {
			t.Errorf("select action = %+v", sel)
		}
		if ic.BlockActionState == nil || ic.BlockActionState.Values["sizes"]["size"].SelectedOption.Value != "l" {
			t.Errorf("state = %+v", ic.BlockActionState)
		}
	})

	t.Run("refresh_requested makes the client reconnect", func(t *testing.T) {
		if n := fake.Disconnect(slacktest.ReasonRefreshRequested); n != 1 {
			t.Fatalf("disconnect reached %d connections", n)
		}
		ev := nextEvent(t, events, socketmode.EventTypeHello)
		if ev.Request.NumConnections < 1 {
			t.Errorf("hello = %+v", ev.Request)
		}
		waitFor(t, fake, "the first connection closed by the client", func(st *slacktest.State) bool {
			return len(st.Connections) == 2 && !st.Connections[0].Open && st.Connections[1].Open
		})
	})

	t.Run("a dropped connection is reopened and envelopes go to the new one", func(t *testing.T) {
		if n := fake.DropConnections(); n != 1 {
			t.Fatalf("dropped %d connections", n)
		}
		nextEvent(t, events, socketmode.EventTypeHello)
		id, err := fake.SendEvent(ctx, slacktest.EventsAPI, fake.MessageEvent(slacktest.Message{Channel: general, User: alice, Text: "after drop"}))
		if err != nil {
			t.Fatal(err)
		}
		ev := nextEvent(t, events, socketmode.EventTypeEventsAPI)
		client.Ack(*ev.Request)
		ack, err := fake.WaitAck(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if ack.Conn != 3 {
			t.Errorf("ack read from connection %d, want 3", ack.Conn)
		}
		if st := fake.Snapshot(); len(st.CallsTo("apps.connections.open")) != 3 {
			t.Errorf("%d apps.connections.open calls", len(st.CallsTo("apps.connections.open")))
		}
	})

	t.Run("link_disabled closes the connection", func(t *testing.T) {
		if n := fake.Disconnect(slacktest.ReasonLinkDisabled); n != 1 {
			t.Fatalf("disconnect reached %d connections", n)
		}
		nextEvent(t, events, socketmode.EventTypeHello)
		waitFor(t, fake, "a fourth connection", func(st *slacktest.State) bool {
			return len(st.Connections) == 4 && !st.Connections[2].Open && st.Connections[3].Open
		})
	})
}

func TestSocketModeConnectErrors(t *testing.T) {
	fake := newFake(t, slacktest.Options{})
	fake.RateLimit("apps.connections.open", 1, 0)
	fake.RefuseConnections(true)
	_, events := startSocket(t, fake)

	t.Run("a rate limited open surfaces as RateLimitedError", func(t *testing.T) {
		ev := nextEvent(t, events, socketmode.EventTypeConnectionError)
		var rl *slack.RateLimitedError
		if !errors.As(ev.Data.(*slack.ConnectionErrorEvent).ErrorObj, &rl) {
			t.Errorf("error = %v", ev.Data.(*slack.ConnectionErrorEvent).ErrorObj)
		}
	})
	t.Run("a refused open is retried", func(t *testing.T) {
		ev := nextEvent(t, events, socketmode.EventTypeConnectionError)
		var se slack.SlackErrorResponse
		if !errors.As(ev.Data.(*slack.ConnectionErrorEvent).ErrorObj, &se) || se.Err != "internal_error" {
			t.Errorf("error = %v", ev.Data.(*slack.ConnectionErrorEvent).ErrorObj)
		}
	})
	t.Run("the client connects once connections are accepted", func(t *testing.T) {
		fake.RefuseConnections(false)
		nextEvent(t, events, socketmode.EventTypeHello)
	})
}

// TestSocketWire checks the frames byte for byte where slack-go is lenient:
// field names of hello and envelopes, ping frames, tickets used once.
func TestSocketWire(t *testing.T) {
	fake := newFake(t, slacktest.Options{PingInterval: 20 * time.Millisecond})
	ctx := waitCtx(t)
	api := newAPI(fake)

	_, wsURL, err := api.StartSocketModeContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, wsURL, http.Header{"Origin": {"https://api.slack.com"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	pings := make(chan string, 10)
	conn.SetPingHandler(func(data string) error {
		select {
		case pings <- data:
		default:
		}
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	frames := make(chan map[string]json.RawMessage, 10)
	go func() {
		defer close(frames)
		for {
			var f map[string]json.RawMessage
			if err := conn.ReadJSON(&f); err != nil {
				return
			}
			frames <- f
		}
	}()
	next := func() map[string]json.RawMessage {
		t.Helper()
		f, ok := <-frames
		if !ok {
			t.Fatal("connection ended")
		}
		return f
	}

	t.Run("hello has Slack's fields", func(t *testing.T) {
		hello := next()
		for _, k := range []string{"type", "num_connections", "debug_info", "connection_info"} {
			if _, ok := hello[k]; !ok {
				t.Errorf("hello lacks %s: %v", k, hello)
			}
		}
		if string(hello["type"]) != `"hello"` {
			t.Errorf("type = %s", hello["type"])
		}
	})
	t.Run("pings are websocket ping frames", func(t *testing.T) {
		select {
		case <-pings:
		case <-time.After(waitTimeout):
			t.Fatal("no ping")
		}
	})
	t.Run("an envelope has Slack's fields and takes an ack", func(t *testing.T) {
		id, err := fake.Send(ctx, slacktest.Envelope{Type: slacktest.EventsAPI, Payload: json.RawMessage(`{"x":1}`), RetryAttempt: 1, RetryReason: "timeout"})
		if err != nil {
			t.Fatal(err)
		}
		env := next()
		want := map[string]string{
			"envelope_id":              `"` + id + `"`,
			"payload":                  `{"x":1}`,
			"type":                     `"events_api"`,
			"accepts_response_payload": `false`,
			"retry_attempt":            `1`,
			"retry_reason":             `"timeout"`,
		}
		for k, v := range want {
			if string(env[k]) != v {
				t.Errorf("%s = %s, want %s", k, env[k], v)
			}
		}
		if err := conn.WriteJSON(map[string]string{"envelope_id": id}); err != nil {
			t.Fatal(err)
		}
		if _, err := fake.WaitAck(ctx, id); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a ticket is good for one connection", func(t *testing.T) {
		_, resp, err := websocket.DefaultDialer.DialContext(ctx, wsURL, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("second dial: %v, %v", resp, err)
		}
	})
}

func TestWaitFor(t *testing.T) {
	fake := newFake(t, slacktest.Options{})
	t.Run("returns the context's error when it ends first", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := fake.WaitFor(ctx, func(*slacktest.State) bool { return false })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("SendEvent gives up when no client connects in time", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := fake.SendEvent(ctx, slacktest.EventsAPI, json.RawMessage(`{}`)); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	})
}

// bytesWriter collects a download.
type bytesWriter []byte

func (b *bytesWriter) Write(p []byte) (int, error) {
	*b = append(*b, p...)
	return len(p), nil
}

func TestRedelivery(t *testing.T) {
	fake := newFake(t, slacktest.Options{RedeliverAfter: 200 * time.Millisecond})
	ctx := waitCtx(t)
	client, events := startSocket(t, fake)
	nextEvent(t, events, socketmode.EventTypeHello)
	m := fake.AddMessage(slacktest.Message{Channel: general, User: alice, Text: "retry me"})
	first, err := fake.SendEvent(ctx, slacktest.EventsAPI, fake.MessageEvent(m))
	if err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, events, socketmode.EventTypeEventsAPI)
	if ev.Request.EnvelopeID != first || ev.Request.RetryAttempt != 0 {
		t.Fatalf("first delivery %+v", ev.Request)
	}
	t.Run("an envelope not acked comes again as a retry", func(t *testing.T) {
		ev := nextEvent(t, events, socketmode.EventTypeEventsAPI)
		if ev.Request.EnvelopeID == first || ev.Request.RetryAttempt != 1 || ev.Request.RetryReason != "timeout" {
			t.Errorf("redelivery %+v", ev.Request)
		}
		if msg, ok := eventsAPI(t, ev).(*slackevents.MessageEvent); !ok || msg.Text != "retry me" {
			t.Errorf("redelivered event %#v", eventsAPI(t, ev))
		}
		client.Ack(*ev.Request)
	})
	t.Run("an acked retry is not sent again", func(t *testing.T) {
		waitFor(t, fake, "the ack", func(st *slacktest.State) bool { return len(st.Acks) == 1 })
		marker, err := fake.SendEvent(ctx, slacktest.EventsAPI, fake.MessageEvent(m))
		if err != nil {
			t.Fatal(err)
		}
		ev := nextEvent(t, events, socketmode.EventTypeEventsAPI)
		if ev.Request.EnvelopeID != marker {
			t.Errorf("got %+v before the next envelope", ev.Request)
		}
		client.Ack(*ev.Request)
	})
}
