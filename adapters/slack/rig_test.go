package slack_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/adapters/slack"
	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/bridge/media"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
	"github.com/botbridge/botbridge/store"
)

// rig is the whole path of a message: the fake Slack, the adapter, a bridge
// engine on a real SQLite file, and the Chat API emulator with a bot.
type rig struct {
	fake *slacktest.Server
	em   *chattest.Server
	// ems are the emulators of the bots by name ("bot" is em).
	ems map[string]*chattest.Server
	ad  *slack.Adapter
	db  *store.DB
	eng *bridge.Engine
	// files serves the bridge's file links (media.Links).
	files *httptest.Server
}

type rigOptions struct {
	fake    slacktest.Options
	adapter func(*slack.Config)
	// routes are the engine's (default: every room to "bot"); the adapter
	// shares their router.
	routes []bridge.Route
	// bots are more bots beside "bot", by name.
	bots map[string]chattest.Bot
	// tweak changes the bots' specs (Notify) before the engine starts.
	tweak func(*bridge.BotSpec)
}

func newRig(t *testing.T, bot chattest.Bot, o rigOptions) *rig {
	t.Helper()
	r := &rig{fake: newFake(t, o.fake), ems: map[string]*chattest.Server{}}
	bp := bridgetest.StartBotpress(t, bot)
	r.em = bp.Server
	r.ems["bot"] = bp.Server
	specs := []bridge.BotSpec{bp.Bot("bot")}
	for name, b := range o.bots {
		more := bridgetest.StartBotpress(t, b)
		r.ems[name] = more.Server
		specs = append(specs, more.Bot(name))
	}
	if o.tweak != nil {
		for i := range specs {
			o.tweak(&specs[i])
		}
	}
	routes := o.routes
	if routes == nil {
		routes = []bridge.Route{{Bot: "bot"}}
	}
	router := bridgetest.Router(t, routes, specs...)
	var err error
	r.db, err = store.Open(t.Context(), filepath.Join(t.TempDir(), "bridge.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.db.Close() })
	r.ad = newAdapter(t, r.fake, func(c *slack.Config) {
		c.Router = router
		if o.adapter != nil {
			o.adapter(c)
		}
		if c.ClientID != "" && c.Installs == nil {
			c.Installs = r.db
		}
	})
	var links *media.Links
	r.files = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { links.ServeHTTP(w, req) }))
	t.Cleanup(r.files.Close)
	links, err = media.NewLinks(media.LinksConfig{BaseURL: r.files.URL, Secret: []byte(strings.Repeat("k", 32)),
		Openers: map[bridge.Platform]bridge.FileOpener{bridge.PlatformSlack: r.ad}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := bridgetest.Config(t, r.db, specs, r.ad)
	cfg.Router = router
	cfg.Files = links
	r.eng, _ = bridgetest.RunEngine(t, cfg)
	return r
}

// mention is how a person mentions the bot.
func (r *rig) mention() string { return "<@" + r.fake.Options().BotUserID + ">" }

// say makes user post text in channel (in thread when set).
func (r *rig) say(t *testing.T, user, channel, thread, text string) slacktest.Message {
	t.Helper()
	return say(t, r.fake, user, channel, thread, text)
}

// replies returns the bot's messages in a thread, or at the top level of
// the channel when thread is empty.
func (r *rig) replies(channel, thread string) []slacktest.Message {
	var out []slacktest.Message
	for _, m := range botMessagesOf(r.fake.Snapshot(), appBotIDs(r.fake), channel) {
		if m.ThreadTS == thread {
			out = append(out, m)
		}
	}
	return out
}

// waitReplies waits for n bot messages in a thread (or at the top level).
func (r *rig) waitReplies(t *testing.T, channel, thread string, n int) []slacktest.Message {
	t.Helper()
	var got []slacktest.Message
	bots := appBotIDs(r.fake)
	err := r.fake.WaitFor(waitCtx(t), func(st *slacktest.State) bool {
		got = got[:0]
		for _, m := range botMessagesOf(st, bots, channel) {
			if m.ThreadTS == thread {
				got = append(got, m)
			}
		}
		return len(got) >= n
	})
	if err != nil {
		t.Fatalf("waiting for %d replies in %s/%s: %v; have %s", n, channel, thread, err, texts(got))
	}
	return slices.Clone(got)
}

// idle waits until the bridge has nothing left to do.
func (r *rig) idle(t *testing.T) {
	t.Helper()
	if err := r.eng.WaitIdle(waitCtx(t), 150*time.Millisecond); err != nil {
		t.Fatalf("the bridge never went idle: %v", err)
	}
}

func texts(ms []slacktest.Message) string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%q", m.Text))
	}
	return "[" + strings.Join(out, ", ") + "]"
}

// whoBot answers every text with the text, who said it and where.
func whoBot() chattest.Bot {
	return chattest.BotFunc(func(ctx context.Context, r chattest.Replier, m chat.Message) {
		text := bridgetest.Text(m.Payload)
		who := fmt.Sprintf(" (from %v", m.Metadata["userName"])
		if room, ok := m.Metadata["roomName"]; ok {
			who += fmt.Sprintf(" in %v", room)
		}
		if m.Metadata["edited"] == true {
			who += ", edited"
		}
		_, _ = r.Reply(ctx, chat.Text{Text: text + who + ")"})
	})
}

// fileServer serves the bot's files over loopback.
func fileServer(t *testing.T) *httptest.Server {
	files := map[string]struct{ mime, body string }{
		"/report.pdf": {"application/pdf", "%PDF-1.4 report"},
		"/song.mp3":   {"audio/mpeg", "ID3 song"},
		"/clip.mp4":   {"video/mp4", "mp4 clip"},
		"/pic.png":    {"image/png", "\x89PNG picture"},
		"/noext":      {"application/pdf", "%PDF-1.4 no extension"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", f.mime)
		fmt.Fprint(w, f.body)
	}))
	t.Cleanup(srv.Close)
	return srv
}
