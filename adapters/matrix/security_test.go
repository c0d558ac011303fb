package matrix_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/adapters/matrix"
	"github.com/botbridge/botbridge/bridge"
)

// headerLog records the Authorization header of the requests a server got,
// by path.
type headerLog struct {
	mu   sync.Mutex
	auth map[string]string
}

func (l *headerLog) note(r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.auth == nil {
		l.auth = make(map[string]string)
	}
	l.auth[r.URL.Path] = r.Header.Get("Authorization")
}

func (l *headerLog) get(path string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.auth[path]
	return v, ok
}

func TestAccessTokenStaysWithTheHomeserver(t *testing.T) {
	// A CDN the media repository sends downloads to, on another origin.
	var cdnLog headerLog
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cdnLog.note(r)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "the file from the CDN")
	}))
	t.Cleanup(cdn.Close)
	// The homeserver, behind a front that redirects media downloads to the
	// CDN, as homeservers with external media storage do.
	target, err := url.Parse(shared.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	// Requests the adapter cancels when it stops are no news.
	proxy.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) }
	var hsLog headerLog
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hsLog.note(r)
		if rest, ok := strings.CutPrefix(r.URL.Path, "/_matrix/client/v1/media/download/"); ok {
			http.Redirect(w, r, cdn.URL+"/media/"+rest, http.StatusFound)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	acc := newAccount(t, shared, "bot")
	st, db := openStore(t, filepath.Join(t.TempDir(), "bridge.db"))
	opts := options(t, shared, acc, st, db)
	opts.HomeserverURL = front.URL
	a, err := matrix.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	runAdapter(t, a, recorder{make(chan bridge.Inbound, 1)})
	waitReady(t, a)

	f, _, err := a.OpenFile(t.Context(), "mxc://localhost/somefile")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(f)
	f.Close()
	if err != nil || string(body) != "the file from the CDN" {
		t.Fatalf("OpenFile read %q, %v; want the CDN's file", body, err)
	}
	t.Run("the homeserver gets the token", func(t *testing.T) {
		if got, _ := hsLog.get("/_matrix/client/v1/media/download/localhost/somefile"); !strings.HasPrefix(got, "Bearer ") {
			t.Errorf("the homeserver's download got Authorization %q, want the bearer token", got)
		}
	})
	t.Run("the host a redirect points to does not", func(t *testing.T) {
		got, ok := cdnLog.get("/media/localhost/somefile")
		if !ok {
			t.Fatal("the CDN got no request")
		}
		if got != "" {
			t.Errorf("the CDN got Authorization %q, want none", got)
		}
	})
}

func TestOrigins(t *testing.T) {
	cases := []struct {
		a, b string
		same bool
	}{
		{"https://matrix.example.org", "https://matrix.example.org:443/_matrix/client/v3/sync", true},
		{"http://HS.example.org", "http://hs.example.org:80/x", true},
		{"http://127.0.0.1:8008", "http://127.0.0.1:8009/x", false},
		{"https://matrix.example.org", "http://matrix.example.org/x", false},
		{"https://matrix.example.org", "https://cdn.example.org/x", false},
		{"https://matrix.example.org", "https://matrix.example.org.evil.test/x", false},
	}
	for _, c := range cases {
		a, _ := url.Parse(c.a)
		b, _ := url.Parse(c.b)
		if got := matrix.Origin(a) == matrix.Origin(b); got != c.same {
			t.Errorf("%s and %s: same origin = %v, want %v", c.a, c.b, got, c.same)
		}
	}
}

// next returns the next message the recorder got, failing the test after
// waitTimeout.
func (r recorder) next(t *testing.T) bridge.Inbound {
	t.Helper()
	select {
	case in := <-r.got:
		return in
	case <-time.After(waitTimeout):
		t.Fatalf("no message reached the bridge within %s", waitTimeout)
		return bridge.Inbound{}
	}
}

func TestAliasesCountOnlyWhenTheDirectoryConfirmsThem(t *testing.T) {
	prefix := localpart("help")
	real, none := "#"+prefix+"-real:localhost", "#"+prefix+"-none:localhost"
	router, err := bridge.NewRouter([]bridge.Route{{Bot: "b", Rooms: []string{"#" + prefix + "-*:localhost"}}}, []string{"b"})
	if err != nil {
		t.Fatal(err)
	}

	acc := newAccount(t, shared, "bot")
	st, db := openStore(t, filepath.Join(t.TempDir(), "bridge.db"))
	opts := options(t, shared, acc, st, db)
	var mu sync.Mutex
	invited := make(map[id.RoomID]string)
	opts.Admit = func(in bridge.Inbound) bool {
		mu.Lock()
		defer mu.Unlock()
		invited[id.RoomID(in.Room.Room)] = in.RoomName
		return true
	}
	a, err := matrix.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	rec := recorder{make(chan bridge.Inbound, 10)}
	runAdapter(t, a, rec)
	waitReady(t, a)

	alice := newPerson(t, shared, "alice", false)
	claim := func(alias string) []*event.Event {
		stateKey := ""
		return []*event.Event{{Type: event.StateCanonicalAlias, StateKey: &stateKey,
			Content: event.Content{Parsed: &event.CanonicalAliasEventContent{Alias: id.RoomAlias(alias)}}}}
	}
	rooms := []struct {
		name  string
		room  id.RoomID
		alias string // what the bridge may see
	}{
		{"a room with its own alias", alice.create(&mautrix.ReqCreateRoom{Preset: "private_chat", RoomAliasName: prefix + "-real", Invite: []id.UserID{acc.ID}}), real},
		{"a room claiming another room's alias", alice.create(&mautrix.ReqCreateRoom{Preset: "private_chat", InitialState: claim(real), Invite: []id.UserID{acc.ID}}), ""},
		{"a room claiming an alias nobody has", alice.create(&mautrix.ReqCreateRoom{Preset: "private_chat", InitialState: claim(none), Invite: []id.UserID{acc.ID}}), ""},
	}
	for _, r := range rooms {
		alice.wait("the bot joining", joined(acc.ID, r.room))
		alice.say(r.room, "hello in "+r.name)
		in := rec.next(t)
		t.Run(r.name, func(t *testing.T) {
			if in.Room.Room != string(r.room) {
				t.Fatalf("the bridge got a message of %s, want %s", in.Room.Room, r.room)
			}
			mu.Lock()
			got := invited[r.room]
			mu.Unlock()
			if got != r.alias {
				t.Errorf("the invite gave the alias %q, want %q", got, r.alias)
			}
			if in.RoomName != r.alias {
				t.Errorf("the message gave the room name %q, want %q", in.RoomName, r.alias)
			}
			if _, matched := router.Match(in); matched != (r.alias != "") {
				t.Errorf("a route on %s matches: %v, want %v", "#"+prefix+"-*", matched, r.alias != "")
			}
		})
	}
}
