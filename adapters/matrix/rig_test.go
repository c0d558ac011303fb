package matrix_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botbridge/botbridge/adapters/matrix"
	"github.com/botbridge/botbridge/adapters/matrix/matrixtest"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	bridgemedia "github.com/botbridge/botbridge/bridge/media"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
	"github.com/botbridge/botbridge/store"
)

// rig is the whole bridge on a real SQLite file: the Matrix adapter on a
// real homeserver, the engine, the Chat API emulator with testBot, and the
// HTTP server of the links to files people send.
type rig struct {
	t   *testing.T
	hs  *matrixtest.Homeserver
	acc account
	bot *testBot

	path       string
	encryption bool
	routes     []bridge.Route
	// wrap, when set, wraps the store the engine uses.
	wrap func(bridge.Store) bridge.Store
	// tweak, when set, changes the adapter's options.
	tweak func(*matrix.Config)

	em    *chattest.Server
	bp    *bridgetest.Botpress
	files *httptest.Server
	links atomic.Pointer[bridgemedia.Links]

	ad      *matrix.Adapter
	st      *store.DB
	stopEng func()
}

func newRig(t *testing.T, hs *matrixtest.Homeserver, encryption bool) *rig {
	t.Helper()
	media := mediaServer(t)
	bot := &testBot{media: media.URL, changed: make(chan struct{}), release: make(chan struct{})}
	bp := bridgetest.StartBotpress(t, bot)
	r := &rig{
		t: t, hs: hs, acc: newAccount(t, hs, "bot"), bot: bot,
		path: filepath.Join(t.TempDir(), "bridge.db"), encryption: encryption,
		routes: []bridge.Route{{Bot: "bot"}},
		em:     bp.Server, bp: bp,
	}
	r.files = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.links.Load().ServeHTTP(w, req)
	}))
	t.Cleanup(r.files.Close)
	t.Cleanup(r.stop)
	return r
}

// start runs the bridge and returns once the adapter has synced.
func (r *rig) start() {
	t := r.t
	t.Helper()
	st, err := store.Open(t.Context(), r.path)
	if err != nil {
		t.Fatal(err)
	}
	db, err := st.SQL()
	if err != nil {
		t.Fatal(err)
	}
	opts := options(t, r.hs, r.acc, st, db)
	if r.encryption {
		opts.PickleKey = "the rig's pickle key"
	}
	if r.tweak != nil {
		r.tweak(&opts)
	}
	ad, err := matrix.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	links, err := bridgemedia.NewLinks(bridgemedia.LinksConfig{BaseURL: r.files.URL, Secret: []byte(strings.Repeat("s", 32)),
		Openers: map[bridge.Platform]bridge.FileOpener{matrix.Platform: ad}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	r.links.Store(links)
	var bs bridge.Store = st
	if r.wrap != nil {
		bs = r.wrap(st)
	}
	cfg := bridgetest.Config(t, bs, []bridge.BotSpec{r.bp.Bot("bot")}, ad)
	cfg.Router, cfg.Files = bridgetest.Router(t, r.routes, cfg.Bots...), links
	cfg.RetryMax, cfg.StreamThrottle = 200*time.Millisecond, 20*time.Millisecond
	_, stop := bridgetest.RunEngine(t, cfg)
	r.ad, r.st, r.stopEng = ad, st, stop
	waitReady(t, ad)
}

// stop stops the bridge and closes its store, as a shutdown would.
func (r *rig) stop() {
	if r.ad == nil {
		return
	}
	r.stopEng()
	r.st.Close()
	r.ad = nil
}

// waitReady waits until a has logged in and synced.
func waitReady(t *testing.T, a *matrix.Adapter) {
	t.Helper()
	bridgetest.WaitFor(t, "the adapter to be ready", func() bool { return a.Ready() == nil })
}

// testBot is the Botpress bot of the tests. It records what it gets and
// answers by keyword:
//
//	choice    a choice of sizes (Small: s, Large: l)
//	payloads  one message of every payload type, media from the media server
//	image     an image from the media server
//	stream    a streamed reply
//	burst     eight images at once (img-1.png to img-8.png)
//	slow      an echo, once release is closed
//
// An answer to a choice gets "chose: <value>", an edit "edited: <text>", a
// file "got <n> bytes <sha256 prefix>", anything else "echo: <text>".
type testBot struct {
	media   string
	release chan struct{}

	mu      sync.Mutex
	got     []chat.Message
	changed chan struct{}
}

func (b *testBot) HandleMessage(ctx context.Context, r chattest.Replier, m chat.Message) {
	b.mu.Lock()
	b.got = append(b.got, m)
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
	reply := func(p chat.Payload) { _, _ = r.Reply(ctx, p) }
	text := func(s string) { reply(chat.Text{Text: s}) }
	var url string
	switch p := m.Payload.(type) {
	case chat.Text:
		switch {
		case m.Metadata["action"] == true:
			text("chose: " + p.Text)
		case m.Metadata["edited"] == true:
			text("edited: " + p.Text)
		case p.Text == "choice":
			reply(chat.Choice{Text: "Which size?", Options: []chat.ChoiceOption{{Label: "Small", Value: "s"}, {Label: "Large", Value: "l"}}})
		case p.Text == "payloads":
			for _, s := range samples(b.media) {
				reply(s.Payload)
			}
		case p.Text == "image":
			reply(chat.Image{ImageURL: b.media + "/cat.png"})
		case p.Text == "stream":
			_, _ = r.Stream(ctx, []string{"This ", "reply ", "grows ", "word ", "by ", "word."}, nil)
		case p.Text == "burst":
			for i := 1; i <= 8; i++ {
				reply(chat.Image{ImageURL: fmt.Sprintf("%s/img-%d.png", b.media, i)})
			}
		case p.Text == "slow":
			select {
			case <-b.release:
			case <-ctx.Done():
			}
			text("echo: slow")
		default:
			text("echo: " + p.Text)
		}
		return
	case chat.Image:
		url = p.ImageURL
	case chat.File:
		url = p.FileURL
	case chat.Audio:
		url = p.AudioURL
	case chat.Video:
		url = p.VideoURL
	default:
		text("echo: " + chattest.Describe(p))
		return
	}
	body, err := fetch(ctx, url)
	if err != nil {
		text("cannot fetch: " + err.Error())
		return
	}
	text(fmt.Sprintf("got %d bytes %s", len(body), digest(body)))
}

// messages returns the messages the bot got, in order.
func (b *testBot) messages() []chat.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.got)
}

// texts returns the texts the bot got, in order.
func (b *testBot) texts() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.got {
		if p, ok := m.Payload.(chat.Text); ok {
			out = append(out, p.Text)
		}
	}
	return out
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

func fetch(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// testPNG is a small real PNG: 5 by 3 pixels.
var testPNG = func() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 5, 3))
	img.Set(1, 1, color.RGBA{R: 200, A: 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err)
	}
	return b.Bytes()
}()

// mediaFiles are what the media server serves.
var mediaFiles = map[string]struct {
	mime string
	body []byte
}{
	"/cat.png":    {"image/png", testPNG},
	"/song.mp3":   {"audio/mpeg", bytes.Repeat([]byte("mp3 "), 300)},
	"/clip.mp4":   {"video/mp4", bytes.Repeat([]byte("mp4 "), 400)},
	"/report.pdf": {"application/pdf", []byte("%PDF-1.4 a small report")},
}

// mediaServer serves mediaFiles over HTTP, as a bot's media host would.
func mediaServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := mediaFiles[r.URL.Path]
		if strings.HasPrefix(r.URL.Path, "/img-") {
			f, ok = mediaFiles["/cat.png"], true
		}
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", f.mime)
		w.Write(f.body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// samples are the contract's payloads with media on the media server.
func samples(media string) []bridgetest.Sample {
	out := bridgetest.Samples()
	for i, s := range out {
		switch p := s.Payload.(type) {
		case chat.Image:
			out[i].Payload = chat.Image{ImageURL: media + "/cat.png"}
		case chat.Audio:
			out[i].Payload = chat.Audio{AudioURL: media + "/song.mp3"}
		case chat.Video:
			out[i].Payload = chat.Video{VideoURL: media + "/clip.mp4"}
		case chat.File:
			out[i].Payload = chat.File{FileURL: media + "/report.pdf", Title: p.Title}
		case chat.Bloc:
			out[i].Payload = chat.Bloc{Items: []chat.Payload{p.Items[0], chat.Image{ImageURL: media + "/cat.png"}}}
		}
	}
	return out
}
