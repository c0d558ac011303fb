package matrix_test

import (
	"context"
	"fmt"
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

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/cryptohelper"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/adapters/matrix"
	"github.com/botbridge/botbridge/adapters/matrix/matrixtest"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat"
)

func TestHomeserverRestartAndRateLimits(t *testing.T) {
	t.Parallel()
	name := localpart("alice")
	hs := matrixtest.StartT(t,
		matrixtest.WithConfig("client_api.rate_limiting.enabled", true),
		matrixtest.WithConfig("client_api.rate_limiting.threshold", 2),
		matrixtest.WithConfig("client_api.rate_limiting.cooloff_ms", 300),
		matrixtest.WithConfig("client_api.rate_limiting.exempt_user_ids", []string{"@" + name + ":localhost"}),
	)
	r := newRig(t, hs, false)
	limited := &statusCounter{status: http.StatusTooManyRequests}
	r.tweak = func(o *matrix.Config) { o.HTTPClient = &http.Client{Transport: limited} }
	r.start()
	alice := newPersonAs(t, hs, name, false)
	room := dm(alice, r, false)
	alice.say(room, "before the restart")
	alice.wait("the first reply", fromWith(r.acc.ID, room, "echo: before the restart"))

	t.Run("the bridge syncs on after the homeserver restarted", func(t *testing.T) {
		if err := hs.Restart(t.Context()); err != nil {
			t.Fatal(err)
		}
		alice.say(room, "after the restart")
		alice.wait("the reply", fromWith(r.acc.ID, room, "echo: after the restart"))
	})
	t.Run("rate limits are waited out, in order, nothing dropped", func(t *testing.T) {
		// Dendrite limits uploads, not sends: a burst of images hits it.
		before := limited.count.Load()
		alice.say(room, "burst")
		alice.wait("the last image of the burst", fromWith(r.acc.ID, room, "img-8.png"))
		var got []string
		for _, evt := range alice.seen(fromWith(r.acc.ID, room, "img-")) {
			if evt.Content.AsMessage().MsgType == event.MsgImage {
				got = append(got, evt.Content.AsMessage().Body)
			}
		}
		var want []string
		for i := 1; i <= 8; i++ {
			want = append(want, fmt.Sprintf("img-%d.png", i))
		}
		if !slices.Equal(got, want) {
			t.Errorf("the burst arrived as %q", got)
		}
		if limited.count.Load() == before {
			t.Error("the homeserver never rate-limited the burst; the test proves nothing")
		}
	})
}

// statusCounter is a transport that counts answers with one status.
type statusCounter struct {
	status int
	count  atomic.Int64
}

func (c *statusCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && resp.StatusCode == c.status {
		c.count.Add(1)
	}
	return resp, err
}

func TestLoggedOutBotLogsInAgainOnItsDevice(t *testing.T) {
	r := newRig(t, shared, true)
	r.start()
	dave := newPerson(t, shared, "dave", true)
	room := dm(dave, r, true)
	dave.say(room, "before the logout")
	dave.wait("the first reply", fromWith(r.acc.ID, room, "echo: before the logout"))

	// "Log out all sessions" ends the bridge's session and deletes its
	// device with the device's keys.
	admin, err := mautrix.NewClient(shared.URL, r.acc.ID, r.acc.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.LogoutAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Messages sent while the bot has no device cannot be encrypted for
	// it; dave waits for its keys to be back, as his client would.
	mach := dave.cli.Crypto.(*cryptohelper.CryptoHelper).Machine()
	bridgetest.WaitFor(t, "the bot's device to have its keys again", func() bool {
		devices, err := mach.FetchKeys(t.Context(), []id.UserID{r.acc.ID}, true)
		return err == nil && len(devices[r.acc.ID]) > 0
	})
	dave.say(room, "after the logout")
	dave.wait("the reply after the new login", fromWith(r.acc.ID, room, "echo: after the logout"))

	t.Run("the device is signed by the bot's cross-signing keys again", func(t *testing.T) {
		poll(t, "the bot's device to be signed again", 100*time.Millisecond, func() bool {
			keys, err := dave.cli.QueryKeys(t.Context(), &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{r.acc.ID: {}}})
			if err != nil {
				return false
			}
			self := keys.SelfSigningKeys[r.acc.ID]
			_, ok := keys.DeviceKeys[r.acc.ID][matrix.DeviceID(r.ad)].Signatures[r.acc.ID][id.NewKeyID(id.KeyAlgorithmEd25519, self.FirstKey().String())]
			return ok
		})
	})
}

// TestALoginThatFailsAfterALogoutIsTriedAgain fails the bot's first login
// after "log out all sessions" with a 500, as Dendrite answers when its
// database is locked. The bot is left without a token, and its next sync
// is refused for a missing one: it must log in again, not sync on without
// a token until it restarts.
func TestALoginThatFailsAfterALogoutIsTriedAgain(t *testing.T) {
	r := newRig(t, shared, false)
	logins := &failingLogin{}
	r.tweak = func(o *matrix.Config) { o.HTTPClient = &http.Client{Transport: logins} }
	r.start()
	erin := newPerson(t, shared, "erin", false)
	room := dm(erin, r, false)
	erin.say(room, "before the logout")
	erin.wait("the first reply", fromWith(r.acc.ID, room, "echo: before the logout"))

	logins.armed.Store(true)
	admin, err := mautrix.NewClient(shared.URL, r.acc.ID, r.acc.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.LogoutAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	erin.say(room, "after the logout")
	erin.wait("the reply after the second login", fromWith(r.acc.ID, room, "echo: after the logout"))
	if n := logins.failed.Load(); n != 1 {
		t.Fatalf("%d logins failed, want 1: the test did not make the failure it tests", n)
	}
}

// failingLogin is a transport that answers the first login after it is
// armed with a 500 of the homeserver's (M_UNKNOWN), without passing it on.
type failingLogin struct {
	armed  atomic.Bool
	failed atomic.Int64
}

func (f *failingLogin) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/login") || !f.armed.CompareAndSwap(true, false) {
		return http.DefaultTransport.RoundTrip(r)
	}
	if r.Body != nil {
		r.Body.Close()
	}
	f.failed.Add(1)
	body := `{"errcode":"M_UNKNOWN","error":"failed to create device: database is locked (517)"}`
	return &http.Response{
		Status:        "500 Internal Server Error",
		StatusCode:    http.StatusInternalServerError,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}, nil
}

func TestGapLongerThanOneSyncIsPagedThrough(t *testing.T) {
	r := newRig(t, shared, false)
	r.tweak = func(o *matrix.Config) { o.TimelineLimit = 3 }
	r.start()
	alice := newPerson(t, shared, "alice", false)
	room := dm(alice, r, false)
	alice.say(room, "first")
	alice.wait("the first reply", fromWith(r.acc.ID, room, "echo: first"))

	r.stop()
	want := []string{"first"}
	for i := 1; i <= 8; i++ {
		want = append(want, fmt.Sprintf("missed %d", i))
		alice.say(room, want[i])
	}
	r.start()
	alice.wait("the reply to the last missed message", fromWith(r.acc.ID, room, "echo: missed 8"))
	bridgetest.WaitFor(t, "every missed message to reach the bot", func() bool { return len(r.bot.texts()) >= len(want) })
	if got := r.bot.texts(); !slices.Equal(got, want) {
		t.Errorf("the bot got %q, want %q", got, want)
	}
}

// recorder is a handler that keeps what it gets.
type recorder struct{ got chan bridge.Inbound }

func (r recorder) HandleInbound(ctx context.Context, in bridge.Inbound) error {
	select {
	case r.got <- in:
	default:
	}
	return nil
}

func TestFindSentAfterRestart(t *testing.T) {
	acc := newAccount(t, shared, "bot")
	alice := newPerson(t, shared, "alice", false)
	path := filepath.Join(t.TempDir(), "bridge.db")
	start := func(t *testing.T) (*matrix.Adapter, func()) {
		st, db := openStore(t, path)
		a, err := matrix.New(options(t, shared, acc, st, db))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx, recorder{make(chan bridge.Inbound, 10)}) }()
		var once sync.Once
		stop := func() {
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
				st.Close()
			})
		}
		t.Cleanup(stop)
		waitReady(t, a)
		return a, stop
	}
	first, stop := start(t)
	room := alice.createRoom(false, true, acc.ID)
	alice.wait("the bot joining", joined(acc.ID, room))
	key := bridge.RoomKey{Platform: matrix.Platform, Room: string(room)}
	long := strings.Repeat("A paragraph of the long answer.\n\n", 1500)
	out := bridge.Outbound{ID: "answer-1", Room: key, Payload: chat.Text{Text: long}, Time: time.Now()}
	sent, err := first.Send(t.Context(), out)
	if err != nil {
		t.Fatal(err)
	}
	// Dendrite's sync API, which FindSent reads, learns of events shortly
	// after they are sent.
	alice.wait("the long answer", func(evt *event.Event) bool { return evt.ID == id.EventID(sent[len(sent)-1]) })
	stop()

	second, stop := start(t)
	defer stop()
	t.Run("a message posted before the restart is found", func(t *testing.T) {
		got, err := second.FindSent(t.Context(), out)
		if err != nil || !slices.Equal(got, sent) {
			t.Errorf("FindSent = %q, %v; want %q, nil", got, err, sent)
		}
	})
	t.Run("a message never posted is not found", func(t *testing.T) {
		out := out
		out.ID = "answer-2"
		if found, err := second.FindSent(t.Context(), out); err != nil || found.Found() {
			t.Errorf("FindSent = %q, %v; want nothing, nil", found, err)
		}
	})
	t.Run("a resend with the same transaction ids is not posted twice", func(t *testing.T) {
		again, err := second.Send(t.Context(), out)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(again, sent) {
			t.Errorf("resend posted %s, first post %s", again, sent)
		}
	})
}

func TestReadinessSaysWhatToFix(t *testing.T) {
	acc := newAccount(t, shared, "bot")
	notMatrix := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notMatrix.Close)
	cases := []struct {
		name string
		opts func(*matrix.Config)
		want string
	}{
		{"a refused access token", func(o *matrix.Config) { o.UserID, o.Password, o.AccessToken = "", "", "not-a-token" },
			"the access token is not valid (logged out?): check matrix.access_token, or set matrix.password"},
		{"a wrong password", func(o *matrix.Config) { o.Password = "wrong password" },
			"refused the password of " + string(acc.ID) + ": check matrix.user_id and matrix.password"},
		{"a URL that is not a homeserver", func(o *matrix.Config) { o.HomeserverURL = notMatrix.URL },
			notMatrix.URL + " is not a Matrix homeserver"},
		{"an unreachable homeserver", func(o *matrix.Config) { o.HomeserverURL = "http://127.0.0.1:1" },
			"cannot reach the homeserver at http://127.0.0.1:1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			st, db := openStore(t, filepath.Join(t.TempDir(), "bridge.db"))
			opts := options(t, shared, acc, st, db)
			c.opts(&opts)
			a, err := matrix.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			runAdapter(t, a, recorder{make(chan bridge.Inbound, 1)})
			bridgetest.WaitFor(t, "readiness to say "+c.want, func() bool {
				err := a.Ready()
				return err != nil && strings.Contains(err.Error(), c.want)
			})
		})
	}
}

func TestNewRefusesIncompleteOptions(t *testing.T) {
	st, db := openStore(t, filepath.Join(t.TempDir(), "bridge.db"))
	full := matrix.Config{HomeserverURL: "https://matrix.example.org", UserID: "@bot:example.org", Password: "secret", Store: st, DB: db}
	cases := []struct {
		name string
		edit func(*matrix.Config)
	}{
		{"no homeserver", func(o *matrix.Config) { o.HomeserverURL = "" }},
		{"no credentials", func(o *matrix.Config) { o.Password = "" }},
		{"a token and a password", func(o *matrix.Config) { o.AccessToken = "token" }},
		{"a malformed user id", func(o *matrix.Config) { o.UserID = "bot" }},
		{"no store", func(o *matrix.Config) { o.Store = nil }},
	}
	if _, err := matrix.New(full); err != nil {
		t.Fatalf("complete options refused: %v", err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := full
			c.edit(&opts)
			if _, err := matrix.New(opts); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestKeysOfAnotherDeviceAreNotUsed(t *testing.T) {
	acc := newAccount(t, shared, "bot")
	other, err := mautrix.NewClient(shared.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	login, err := other.Login(t.Context(), &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Password: acc.Password,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: string(acc.ID)}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bridge.db")
	run := func(t *testing.T, token string) *matrix.Adapter {
		st, db := openStore(t, path)
		opts := options(t, shared, acc, st, db)
		opts.Password, opts.AccessToken, opts.PickleKey = "", token, "a pickle key for the test"
		a, err := matrix.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		runAdapter(t, a, recorder{make(chan bridge.Inbound, 1)})
		return a
	}
	t.Run("the first device keeps its keys in the store", func(t *testing.T) {
		waitReady(t, run(t, acc.Token))
	})
	t.Run("a token of another device is refused with what to do", func(t *testing.T) {
		a := run(t, login.AccessToken)
		want := "the store holds the encryption keys of another device than " + string(login.DeviceID)
		bridgetest.WaitFor(t, "readiness to say "+want, func() bool {
			err := a.Ready()
			return err != nil && strings.Contains(err.Error(), want)
		})
	})
}
