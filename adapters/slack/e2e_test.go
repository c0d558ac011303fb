package slack_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/adapters/slack"
	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

func TestConversation(t *testing.T) {
	r := newRig(t, whoBot(), rigOptions{})
	var root slacktest.Message

	t.Run("a mention in a channel is answered in a thread under it", func(t *testing.T) {
		root = r.say(t, alice, general, "", r.mention()+" hello there")
		got := r.waitReplies(t, general, root.TS, 1)
		if want := "hello there (from Alice in #general)"; got[0].Text != want {
			t.Errorf("reply %q, want %q", got[0].Text, want)
		}
	})
	t.Run("a follow-up in the thread needs no mention", func(t *testing.T) {
		r.say(t, bob, general, root.TS, "and *more*")
		got := r.waitReplies(t, general, root.TS, 2)
		if want := "and **more** (from Bob Builder in #general)"; got[1].Text != strings.ReplaceAll(want, "**", "*") {
			t.Errorf("reply %q, want %q", got[1].Text, want)
		}
	})
	t.Run("a message without mention at the top level is not answered", func(t *testing.T) {
		r.say(t, alice, general, "", "just chatting")
		r.idle(t)
		if got := r.replies(general, ""); len(got) != 0 {
			t.Errorf("the bot answered at the top level: %s", texts(got))
		}
	})
	t.Run("a DM is answered at the top level of the DM", func(t *testing.T) {
		r.say(t, alice, dm, "", "hi in private")
		got := r.waitReplies(t, dm, "", 1)
		if want := "hi in private (from Alice)"; got[0].Text != want {
			t.Errorf("reply %q, want %q", got[0].Text, want)
		}
	})
	t.Run("a group DM is a room: answered when mentioned", func(t *testing.T) {
		r.say(t, bob, group, "", "not for the bot")
		m := r.say(t, bob, group, "", r.mention()+" for the bot")
		got := r.waitReplies(t, group, m.TS, 1)
		if !strings.HasPrefix(got[0].Text, "for the bot") {
			t.Errorf("reply %q", got[0].Text)
		}
		r.idle(t)
		if n := len(r.replies(group, "")); n != 0 {
			t.Errorf("%d replies at the top level of the group DM", n)
		}
	})
	t.Run("an edit goes to the bot as a new message marked edited", func(t *testing.T) {
		m := r.say(t, alice, dm, "", "helo")
		r.waitReplies(t, dm, "", 2)
		prev, cur, err := r.fake.EditMessage(dm, m.TS, "hello")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.fake.SendEvent(waitCtx(t), slacktest.EventsAPI, r.fake.MessageChangedEvent(prev, cur)); err != nil {
			t.Fatal(err)
		}
		got := r.waitReplies(t, dm, "", 3)
		if want := "hello (from Alice, edited)"; got[2].Text != want {
			t.Errorf("reply %q, want %q", got[2].Text, want)
		}
	})
}

func TestThinkingShowsUntilTheReply(t *testing.T) {
	release := make(chan struct{})
	slow := chattest.BotFunc(func(ctx context.Context, r chattest.Replier, m chat.Message) {
		select {
		case <-release:
		case <-ctx.Done():
			return
		}
		_, _ = r.Reply(ctx, chat.Text{Text: "done: " + bridgetest.Text(m.Payload)})
	})
	r := newRig(t, slow, rigOptions{})
	statuses := func(st *slacktest.State, thread string) []string {
		var seq []string
		for _, s := range st.Statuses {
			if s.Channel == general && s.ThreadTS == thread {
				seq = append(seq, s.Status)
			}
		}
		return seq
	}
	t.Run("in a thread, as the assistant status", func(t *testing.T) {
		root := r.say(t, alice, general, "", r.mention()+" think")
		waitFor(t, r.fake, "the status", func(st *slacktest.State) bool {
			return slices.Equal(statuses(st, root.TS), []string{"is thinking…"})
		})
		release <- struct{}{}
		r.waitReplies(t, general, root.TS, 1)
		waitFor(t, r.fake, "the status cleared", func(st *slacktest.State) bool {
			return slices.Equal(statuses(st, root.TS), []string{"is thinking…", ""})
		})
	})
	t.Run("outside threads, as a reaction on the message", func(t *testing.T) {
		m := r.say(t, alice, dm, "", "think")
		waitFor(t, r.fake, "the reaction", func(st *slacktest.State) bool {
			rs := st.Message(dm, m.TS).Reactions
			return len(rs) == 1 && rs[0].Name == "eyes"
		})
		release <- struct{}{}
		r.waitReplies(t, dm, "", 1)
		waitFor(t, r.fake, "the reaction removed", func(st *slacktest.State) bool {
			return len(st.Message(dm, m.TS).Reactions) == 0
		})
	})
}

func TestIgnoredMessages(t *testing.T) {
	r := newRig(t, whoBot(), rigOptions{})
	first := r.say(t, alice, general, "", r.mention()+" first")
	reply := r.waitReplies(t, general, first.TS, 1)[0]
	ctx := waitCtx(t)

	// The bot's own message, as Slack echoes it.
	own := reply
	own.Text = r.mention() + " echo of myself"
	if _, err := r.fake.SendEvent(ctx, slacktest.EventsAPI, r.fake.MessageEvent(own)); err != nil {
		t.Fatal(err)
	}
	// Another app's bot, mentioning the bot, at the top level and in the thread.
	for _, thread := range []string{"", first.TS} {
		m := r.fake.AddMessage(slacktest.Message{Channel: general, User: otherBot, BotID: "B0OTHERBOT", ThreadTS: thread, Text: r.mention() + " bot talk"})
		if _, err := r.fake.SendEvent(ctx, slacktest.EventsAPI, r.fake.MessageEvent(m)); err != nil {
			t.Fatal(err)
		}
	}
	// A legacy integration's message, and a join.
	legacy := r.fake.AddMessage(slacktest.Message{Channel: general, BotID: "B0HOOK", Username: "hook", ThreadTS: first.TS, Text: "webhook says"})
	join, err := r.fake.JoinChannel(general, bob)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []slacktest.Message{legacy, join} {
		if _, err := r.fake.SendEvent(ctx, slacktest.EventsAPI, r.fake.MessageEvent(m)); err != nil {
			t.Fatal(err)
		}
	}
	r.say(t, alice, general, first.TS, "marker")
	r.waitReplies(t, general, first.TS, 2)
	r.idle(t)
	got := r.replies(general, first.TS)
	if len(got) != 2 || !strings.HasPrefix(got[1].Text, "marker") {
		t.Errorf("replies in the thread: %s; want the answers to first and marker only", texts(got))
	}
	if n := len(r.replies(general, "")); n != 0 {
		t.Errorf("%d top-level replies", n)
	}
}

func TestDuplicateDeliveriesGiveOneReply(t *testing.T) {
	r := newRig(t, whoBot(), rigOptions{})
	m := r.fake.AddMessage(slacktest.Message{Channel: general, User: alice, Text: r.mention() + " only once"})
	ctx := waitCtx(t)
	ev := r.fake.MessageEvent(m)
	for _, env := range []slacktest.Envelope{
		{Type: slacktest.EventsAPI, Payload: ev},
		{Type: slacktest.EventsAPI, Payload: r.fake.AppMentionEvent(m)},
		{Type: slacktest.EventsAPI, Payload: ev, RetryAttempt: 1, RetryReason: "timeout"},
		{Type: slacktest.EventsAPI, Payload: r.fake.MessageEvent(m)},
	} {
		id, err := r.fake.Send(ctx, env)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.fake.WaitAck(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	r.waitReplies(t, general, m.TS, 1)
	r.idle(t)
	if got := r.replies(general, m.TS); len(got) != 1 {
		t.Errorf("%d replies: %s; want 1", len(got), texts(got))
	}
}

func TestAnEditAddingTheMentionIsAnsweredOnce(t *testing.T) {
	r := newRig(t, whoBot(), rigOptions{})
	m := r.say(t, alice, general, "", "forgot to ask the bot")
	prev, cur, err := r.fake.EditMessage(general, m.TS, r.mention()+" forgot to ask the bot")
	if err != nil {
		t.Fatal(err)
	}
	ctx := waitCtx(t)
	// Slack sends both for the edit; app_mention carries "edited".
	for _, ev := range []slacktest.EventCallback{r.fake.MessageChangedEvent(prev, cur), r.fake.AppMentionEvent(cur)} {
		id, err := r.fake.Send(ctx, slacktest.Envelope{Type: slacktest.EventsAPI, Payload: ev})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.fake.WaitAck(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	r.waitReplies(t, general, m.TS, 1)
	r.idle(t)
	if got := r.replies(general, m.TS); len(got) != 1 {
		t.Errorf("%d replies: %s; want 1", len(got), texts(got))
	}
}

// sampleBot answers "sample <name>" with that sample payload of
// bridgetest.Samples, and "files <url>" with files served at url.
func sampleBot() chattest.Bot {
	return chattest.BotFunc(func(ctx context.Context, r chattest.Replier, m chat.Message) {
		text := bridgetest.Text(m.Payload)
		if name, ok := strings.CutPrefix(text, "sample "); ok {
			for _, s := range bridgetest.Samples() {
				if s.Name == name {
					_, _ = r.Reply(ctx, s.Payload)
				}
			}
			return
		}
		if base, ok := strings.CutPrefix(text, "files "); ok {
			for _, p := range []chat.Payload{
				chat.File{FileURL: base + "/report.pdf", Title: "Quarterly report"},
				chat.Audio{AudioURL: base + "/song.mp3"},
				chat.Video{VideoURL: base + "/clip.mp4"},
				chat.Image{ImageURL: base + "/pic.png"},
				chat.File{FileURL: base + "/noext"},
				chat.File{FileURL: base + "/missing.pdf", Title: "Gone"},
			} {
				_, _ = r.Reply(ctx, p)
			}
			return
		}
		_, _ = r.Reply(ctx, chat.Text{Text: "got: " + text})
	})
}

func TestEveryPayloadTypeIsRendered(t *testing.T) {
	r := newRig(t, sampleBot(), rigOptions{})
	blockTypes := func(m slacktest.Message) []string {
		var bs []struct {
			Type      string `json:"type"`
			Accessory *struct {
				Type string `json:"type"`
			} `json:"accessory"`
			Elements []struct {
				Type string `json:"type"`
			} `json:"elements"`
		}
		_ = json.Unmarshal(m.Blocks, &bs)
		var out []string
		for _, b := range bs {
			out = append(out, b.Type)
			if b.Accessory != nil {
				out = append(out, b.Accessory.Type)
			}
			for _, e := range b.Elements {
				out = append(out, e.Type)
			}
		}
		return out
	}
	want := map[string][]string{
		"image":    {"image"},
		"location": {"section"},
		"card":     {"section", "image", "actions", "button", "button"},
		"carousel": {"section", "actions", "button", "divider", "section", "actions", "button"},
		"choice":   {"section", "actions", "button", "button"},
		"dropdown": {"section", "static_select"},
		"bloc":     {"section", "image"},
	}
	for i, s := range bridgetest.Samples() {
		t.Run(s.Name, func(t *testing.T) {
			r.say(t, alice, dm, "", "sample "+s.Name)
			msgs := r.waitReplies(t, dm, "", i+1)
			m := msgs[len(msgs)-1]
			text := shown(r.fake.Snapshot(), m)
			for _, w := range s.Want {
				if !strings.Contains(text, w) {
					t.Errorf("the message shows %q, which lacks %q", text, w)
				}
			}
			if w, ok := want[s.Name]; ok && !slices.Equal(blockTypes(m), w) {
				t.Errorf("blocks %v, want %v", blockTypes(m), w)
			}
			if m.Text == "" {
				t.Error("no notification text")
			}
		})
	}
}

func TestClicksReachTheBot(t *testing.T) {
	bot := chattest.BotFunc(func(ctx context.Context, r chattest.Replier, m chat.Message) {
		switch text := bridgetest.Text(m.Payload); text {
		case "choose":
			_, _ = r.Reply(ctx, chat.Choice{Text: "Which size?", Options: []chat.ChoiceOption{{Label: "Small", Value: "s"}, {Label: "Large", Value: "l"}}})
		case "pick":
			_, _ = r.Reply(ctx, chat.Dropdown{Text: "Pick a country", Options: []chat.ChoiceOption{{Label: "France", Value: "fr"}, {Label: "Japan", Value: "jp"}}})
		default:
			_, _ = r.Reply(ctx, chat.Text{Text: "got: " + text})
		}
	})
	r := newRig(t, bot, rigOptions{})
	root := r.say(t, alice, general, "", r.mention()+" choose")
	question := r.waitReplies(t, general, root.TS, 1)[0]

	click := func(t *testing.T, a slacktest.Action) {
		t.Helper()
		if _, err := r.fake.SendEvent(waitCtx(t), slacktest.Interactive, r.fake.BlockActions(a)); err != nil {
			t.Fatal(err)
		}
	}
	updated := func(t *testing.T, ts, label string) {
		t.Helper()
		waitFor(t, r.fake, "the message updated with the choice", func(st *slacktest.State) bool {
			m := st.Message(general, ts)
			return m != nil && len(m.Updates) > 0 && strings.Contains(string(m.Blocks), "chose *"+label+"*") &&
				!strings.Contains(string(m.Blocks), "bb:pick:")
		})
	}
	t.Run("a button click goes to the bot in the thread", func(t *testing.T) {
		click(t, slacktest.Action{User: bob, Channel: general, MessageTS: question.TS, ActionID: "bb:pick:2"})
		got := r.waitReplies(t, general, root.TS, 2)
		if got[1].Text != "got: l" {
			t.Errorf("reply %q, want %q", got[1].Text, "got: l")
		}
		updated(t, question.TS, "Large")
	})
	t.Run("a select choice goes to the bot in the thread", func(t *testing.T) {
		r.say(t, alice, general, root.TS, "pick")
		menu := r.waitReplies(t, general, root.TS, 3)[2]
		click(t, slacktest.Action{User: alice, Channel: general, MessageTS: menu.TS, ActionID: "bb:pick:1", Type: "static_select", Value: "jp"})
		got := r.waitReplies(t, general, root.TS, 4)
		if got[3].Text != "got: jp" {
			t.Errorf("reply %q, want %q", got[3].Text, "got: jp")
		}
		updated(t, menu.TS, "Japan")
	})
}

func TestFiles(t *testing.T) {
	// The bot fetches what it is sent and answers with it.
	fetcher := chattest.BotFunc(func(ctx context.Context, r chattest.Replier, m chat.Message) {
		var u string
		switch p := m.Payload.(type) {
		case chat.File:
			u = p.FileURL
		case chat.Image:
			u = p.ImageURL
		default:
			if base, ok := strings.CutPrefix(bridgetest.Text(p), "files "); ok {
				sampleBot().HandleMessage(ctx, r, chat.Message{Payload: chat.Text{Text: "files " + base}})
			}
			return
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := (&http.Client{}).Do(req)
		if err != nil {
			_, _ = r.Reply(ctx, chat.Text{Text: "fetch failed: " + err.Error()})
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		_, _ = r.Reply(ctx, chat.Text{Text: resp.Header.Get("Content-Type") + ": " + string(body)})
	})
	r := newRig(t, fetcher, rigOptions{})

	t.Run("a person's file reaches the bot as a link it can fetch", func(t *testing.T) {
		f := r.fake.AddFile(slacktest.File{Name: "notes.txt", Mimetype: "text/plain", User: alice, Content: []byte("secret notes")})
		m := r.fake.AddMessage(slacktest.Message{Channel: dm, User: alice, Files: []string{f.ID}})
		if _, err := r.fake.SendEvent(waitCtx(t), slacktest.EventsAPI, r.fake.MessageEvent(m)); err != nil {
			t.Fatal(err)
		}
		got := r.waitReplies(t, dm, "", 1)
		if want := "text/plain: secret notes"; got[0].Text != want {
			t.Errorf("reply %q, want %q", got[0].Text, want)
		}
	})
	t.Run("the bot's files are uploaded", func(t *testing.T) {
		srv := fileServer(t)
		r.say(t, alice, dm, "", "files "+srv.URL)
		r.waitReplies(t, dm, "", 7)
		r.idle(t)
		st := r.fake.Snapshot()
		uploaded := map[string]string{}
		for _, f := range st.Files {
			if f.User == r.fake.Options().BotUserID && f.Completed && slices.ContainsFunc(f.Shares, func(s slacktest.Share) bool { return s.Channel == dm }) {
				uploaded[f.Name] = string(f.Content)
			}
		}
		for name, body := range map[string]string{"report.pdf": "%PDF-1.4 report", "song.mp3": "ID3 song", "clip.mp4": "mp4 clip",
			"pic.png": "\x89PNG picture", "noext.pdf": "%PDF-1.4 no extension"} {
			if uploaded[name] != body {
				t.Errorf("file %s uploaded with %q, want %q (uploaded: %v)", name, uploaded[name], body, uploaded)
			}
		}
		var titles []string
		for _, m := range botMessages(st, r.fake, dm) {
			for _, id := range m.Files {
				titles = append(titles, st.Files[id].Title)
			}
		}
		if !slices.Contains(titles, "Quarterly report") {
			t.Errorf("file titles %v lack the bot's title", titles)
		}
		last := botMessages(st, r.fake, dm)
		if text := shown(st, last[len(last)-1]); !strings.Contains(text, "Gone") || !strings.Contains(text, srv.URL+"/missing.pdf") {
			t.Errorf("a file that cannot be downloaded shows %q; want a link to it", text)
		}
	})
}

func TestFilesFromPrivateAddressesAreRefusedByDefault(t *testing.T) {
	r := newRig(t, sampleBot(), rigOptions{adapter: func(c *slack.Config) { c.AllowPrivateURLs = false }})
	srv := fileServer(t)
	r.say(t, alice, dm, "", "files "+srv.URL)
	got := r.waitReplies(t, dm, "", 6)
	r.idle(t)
	st := r.fake.Snapshot()
	for _, f := range st.Files {
		if f.User == r.fake.Options().BotUserID {
			t.Errorf("file %s was downloaded from a loopback address and uploaded", f.Name)
		}
	}
	if text := shown(st, got[0]); !strings.Contains(text, srv.URL+"/report.pdf") {
		t.Errorf("the refused file shows %q; want a link", text)
	}
}

func TestRateLimitStormLosesNothing(t *testing.T) {
	burst := chattest.BotFunc(func(ctx context.Context, r chattest.Replier, m chat.Message) {
		for _, s := range []string{"one", "two", "three", "four", "five"} {
			_, _ = r.Reply(ctx, chat.Text{Text: s})
		}
	})
	r := newRig(t, burst, rigOptions{})
	r.fake.RateLimit("chat.postMessage", 3, time.Second)
	r.say(t, alice, dm, "", "burst")
	r.waitReplies(t, dm, "", 5)
	r.idle(t)
	got := r.replies(dm, "")
	var seq []string
	for _, m := range got {
		seq = append(seq, m.Text)
	}
	if want := []string{"one", "two", "three", "four", "five"}; !slices.Equal(seq, want) {
		t.Errorf("posted %v, want %v", seq, want)
	}
	limited := 0
	for _, c := range r.fake.Snapshot().CallsTo("chat.postMessage") {
		if c.Status == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 3 {
		t.Errorf("%d calls were rate limited, want 3", limited)
	}
}

func TestSocketDropLosesNothing(t *testing.T) {
	r := newRig(t, whoBot(), rigOptions{fake: slacktest.Options{RedeliverAfter: 300 * time.Millisecond}})
	ctx := waitCtx(t)
	r.say(t, alice, dm, "", "m1")
	r.waitReplies(t, dm, "", 1)

	if r.fake.DropConnections() == 0 {
		t.Fatal("no connection to drop")
	}
	r.say(t, alice, dm, "", "m2") // waits for the adapter to reconnect
	r.waitReplies(t, dm, "", 2)

	// An envelope whose connection dies before it is acknowledged comes
	// again on the next connection.
	m3 := r.fake.AddMessage(slacktest.Message{Channel: dm, User: alice, Text: "m3"})
	if _, err := r.fake.SendEvent(ctx, slacktest.EventsAPI, r.fake.MessageEvent(m3)); err != nil {
		t.Fatal(err)
	}
	r.fake.DropConnections()
	r.fake.Disconnect(slacktest.ReasonRefreshRequested)
	r.say(t, alice, dm, "", "m4")
	r.waitReplies(t, dm, "", 4)
	r.idle(t)
	var seq []string
	for _, m := range r.replies(dm, "") {
		seq = append(seq, strings.TrimSuffix(m.Text, " (from Alice)"))
	}
	if slices.Sort(seq); !slices.Equal(seq, []string{"m1", "m2", "m3", "m4"}) {
		t.Errorf("replies %v, want one to each of m1…m4", seq)
	}
	if err := r.ad.Ready(); err != nil {
		t.Errorf("Ready after reconnecting: %v", err)
	}
}

// openThread starts a conversation in a thread of general, so that the
// bridge listens to it before the bot streams. (The bridge opens a
// conversation's stream without waiting for it to connect, so the deltas of
// the very first reply may come before it.)
func (r *rig) openThread(t *testing.T) slacktest.Message {
	t.Helper()
	root := r.say(t, alice, general, "", r.mention()+" hello")
	r.waitReplies(t, general, root.TS, 1)
	r.idle(t)
	return root
}

func TestStreamedReplies(t *testing.T) {
	t.Run("in a thread it is one of Slack's streamed messages", func(t *testing.T) {
		r := newRig(t, chattest.DemoBot(), rigOptions{})
		root := r.openThread(t)
		r.say(t, alice, general, root.TS, "stream")
		waitFor(t, r.fake, "the stream to end", func(st *slacktest.State) bool {
			for _, m := range botMessages(st, r.fake, general) {
				if m.ThreadTS == root.TS && m.Stream != nil && !m.Stream.Active {
					return true
				}
			}
			return false
		})
		r.idle(t)
		got := r.replies(general, root.TS)
		if len(got) != 2 {
			t.Fatalf("%d messages in the thread: %s; want the greeting and the streamed one", len(got), texts(got))
		}
		if want := "This reply arrives word by word, as a streamed message."; got[1].Text != want {
			t.Errorf("streamed message shows %q, want %q", got[1].Text, want)
		}
		if st := got[1].Stream; st == nil || st.RecipientUserID != alice || st.Active {
			t.Errorf("stream %+v; want a stopped stream for %s", st, alice)
		}
	})
	t.Run("without Slack's streaming it is posted and updated", func(t *testing.T) {
		r := newRig(t, chattest.DemoBot(), rigOptions{})
		r.fake.FailMethod("chat.startStream", "unknown_method", 1)
		root := r.openThread(t)
		r.say(t, alice, general, root.TS, "stream")
		waitFor(t, r.fake, "the final text", func(st *slacktest.State) bool {
			for _, m := range botMessages(st, r.fake, general) {
				if m.ThreadTS == root.TS && m.Text == "This reply arrives word by word, as a streamed message." && len(m.Updates) > 0 {
					return true
				}
			}
			return false
		})
		r.idle(t)
		if got := r.replies(general, root.TS); len(got) != 2 {
			t.Errorf("%d messages in the thread: %s; want the greeting and the streamed one", len(got), texts(got))
		}
	})
}

func TestImageSlackCannotFetchIsUploaded(t *testing.T) {
	srv := fileServer(t)
	// cdn.example.com resolves to the file server, for the adapter only:
	// Slack (the fake) cannot fetch it.
	dialer := &net.Dialer{}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "cdn.example.com:80" {
			addr = srv.Listener.Addr().String()
		}
		return dialer.DialContext(ctx, network, addr)
	}}}
	bot := chattest.BotFunc(func(ctx context.Context, r chattest.Replier, m chat.Message) {
		_, _ = r.Reply(ctx, chat.Image{ImageURL: "http://cdn.example.com/pic.png"})
	})
	r := newRig(t, bot, rigOptions{adapter: func(c *slack.Config) { c.HTTPClient = client }})
	r.fake.RefuseImages(func(u string) bool { return strings.Contains(u, "cdn.example.com") })
	r.say(t, alice, dm, "", "show me")
	got := r.waitReplies(t, dm, "", 1)
	st := r.fake.Snapshot()
	if len(got[0].Files) != 1 || string(st.Files[got[0].Files[0]].Content) != "\x89PNG picture" {
		t.Errorf("reply %+v; want the image uploaded", got[0])
	}
	refused := 0
	for _, c := range st.CallsTo("chat.postMessage") {
		if c.Error == "invalid_blocks" {
			refused++
		}
	}
	if refused != 1 {
		t.Errorf("%d refused posts, want 1 (the image block, before the upload)", refused)
	}
}
