package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/adapters/matrix"
	"github.com/botbridge/botbridge/adapters/matrix/matrixtest"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/store"
)

func TestMatrixConfigErrorsNameTheField(t *testing.T) {
	base := "bots:\n  - name: a\n    url: https://x/y\nmatrix:\n  homeserver_url: https://matrix.example.org\n"
	cases := []struct {
		name, yaml, want string
	}{
		{"credentials without a homeserver", "bots:\n  - name: a\n    url: https://x/y\nmatrix:\n  access_token: t\n", "matrix.homeserver_url: must be set"},
		{"a homeserver that is no URL", "bots:\n  - name: a\n    url: https://x/y\nmatrix:\n  homeserver_url: matrix.example.org\n  access_token: t\n", "matrix.homeserver_url:"},
		{"no credentials", base, "matrix.access_token: missing"},
		{"token and password", base + "  access_token: t\n  user_id: \"@b:x\"\n  password: p\n", "give one of them, not both"},
		{"password without user", base + "  password: p\n", "matrix.user_id: must be set with matrix.password"},
		{"a malformed user", base + "  user_id: bot\n  password: p\n", "matrix.user_id: \"bot\" is not a Matrix user id"},
		{"encryption without a pickle key", base + "  access_token: t\n  encryption: true\n", "matrix.pickle_key: must be at least 16"},
		{"a pickle key without encryption", base + "  access_token: t\n  pickle_key: a-long-enough-pickle-key\n", "matrix.pickle_key: set, but matrix.encryption is false"},
		{"a negative timeout", base + "  access_token: t\n  sync_timeout: -1s\n", "matrix.sync_timeout: must not be negative"},
		{"a negative cap", base + "  access_token: t\n  max_pending_per_room: -1\n", "matrix.max_pending_per_room: must not be negative"},
		{"an unknown key", base + "  acess_token: t\n", "acess_token"},
		{"a recovery key without encryption", base + "  access_token: t\n  recovery_key: " + testRecoveryKey + "\n", "matrix.recovery_key: set, but matrix.encryption is false"},
		{"a recovery key that is none", base + "  access_token: t\n  encryption: true\n  pickle_key: a-long-enough-pickle-key\n  recovery_key: EsTc 1234\n", "matrix.recovery_key: not a Matrix recovery key"},
		{"an unknown trust policy", base + "  access_token: t\n  encryption: true\n  pickle_key: a-long-enough-pickle-key\n  trust: everyone\n", `matrix.trust: "everyone" is not any, cross_signed or verified`},
		{"a strict policy without encryption", base + "  access_token: t\n  trust: verified\n", "matrix.trust: verified needs matrix.encryption: true"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(c.yaml), env(nil))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	t.Run("a complete section is accepted", func(t *testing.T) {
		yaml := base + "  user_id: \"@bot:example.org\"\n  password: p\n  encryption: true\n  pickle_key: a-long-enough-pickle-key\n  max_file_mb: 5\n" +
			"  recovery_key: ${MATRIX_RECOVERY_KEY}\n  trust: cross_signed\n"
		cfg, err := ParseConfig(strings.NewReader(yaml), env(map[string]string{"MATRIX_RECOVERY_KEY": testRecoveryKey}))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Matrix.MaxFileMB != 5 || !cfg.Matrix.Encryption || cfg.Matrix.RecoveryKey != testRecoveryKey || cfg.Matrix.Trust != "cross_signed" {
			t.Errorf("matrix = %+v", cfg.Matrix)
		}
		s := &Service{Config: cfg, Store: openTestStore(t), Metrics: NewMetrics(nil)}
		opts, err := s.matrixConfig()
		if err != nil {
			t.Fatal(err)
		}
		if opts.RecoveryKey != testRecoveryKey || opts.Trust != matrix.TrustCrossSigned || opts.RecoveryKeyOut == nil {
			t.Errorf("options: recovery key %q, trust %q, out %v", opts.RecoveryKey, opts.Trust, opts.RecoveryKeyOut)
		}
		if _, err := matrix.New(opts); err != nil {
			t.Errorf("the adapter refuses the options: %v", err)
		}
	})
}

// testRecoveryKey is a well-formed recovery key.
const testRecoveryKey = "EsT1 t3bE JPZs Bz9H xApv jfQh PY9X gmGM bhbN Kz2L 2t9n aeKB"

// openTestStore opens a store in t.TempDir and closes it when the test ends.
func openTestStore(t *testing.T) *store.DB {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "botbridge.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestMatrixAdmitsWhomTheRoutesLetIn(t *testing.T) {
	yaml := `bots:
  - name: b
    url: https://x/y
routes:
  - bot: b
    platform: slack
  - bot: b
    platform: matrix
    dm: only
    users: ["@ann:x"]
  - bot: b
    platform: matrix
    rooms: ["#support*"]
matrix:
  homeserver_url: https://matrix.example.org
  access_token: t
`
	cfg, err := ParseConfig(strings.NewReader(yaml), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "botbridge.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	router, err := bridge.NewRouter(cfg.BridgeRoutes(), cfg.botNames())
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{Config: cfg, Store: st, Metrics: NewMetrics(nil), Router: router}
	opts, err := s.matrixConfig()
	if err != nil {
		t.Fatal(err)
	}
	if opts.Admit == nil {
		t.Fatal("no admission check")
	}
	in := func(room, alias, sender string, dm bool) bridge.Inbound {
		return bridge.Inbound{Room: bridge.RoomKey{Platform: bridge.PlatformMatrix, Room: room}, RoomName: alias,
			Sender: bridge.Sender{ID: sender}, DM: dm}
	}
	cases := []struct {
		name string
		in   bridge.Inbound
		want bool
	}{
		{"an allowed person's direct chat", in("!a:x", "", "@ann:x", true), true},
		{"someone else's direct chat", in("!a:x", "", "@bob:x", true), false},
		{"a room whose confirmed alias a route names", in("!b:x", "#support-eu:x", "@bob:x", false), true},
		{"another room", in("!c:x", "#random:x", "@ann:x", false), false},
	}
	for _, c := range cases {
		if got := opts.Admit(c.in); got != c.want {
			t.Errorf("%s: admitted = %v, want %v", c.name, got, c.want)
		}
	}

	t.Run("sender trust is a metric", func(t *testing.T) {
		opts.OnSenderTrust("forwarded")
		opts.OnSenderTrust("forwarded")
		opts.OnSenderTrust("unverified")
		rec := httptest.NewRecorder()
		s.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		for _, want := range []string{`botbridge_matrix_sender_trust_total{state="forwarded"} 2`, `botbridge_matrix_sender_trust_total{state="unverified"} 1`} {
			if !strings.Contains(rec.Body.String(), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

func TestRunAnswersOnMatrix(t *testing.T) {
	hs := matrixtest.StartT(t)
	ctx := t.Context()
	botID, _, _, err := hs.Register(ctx, "botbridge", "the bot's password", false)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := hs.Client(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}

	cfg := defaults()
	cfg.Store.Path = filepath.Join(t.TempDir(), "botbridge.db")
	cfg.HTTP.AdminAddr = "127.0.0.1:0"
	cfg.Bots = []BotConfig{{Name: "echo", URL: startEmulator(t)}}
	cfg.Matrix = MatrixConfig{HomeserverURL: hs.URL, UserID: string(botID), Password: "the bot's password",
		Encryption: true, PickleKey: "the test's pickle key"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	svc, err := NewService(ctx, cfg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	bridgetest.WaitFor(t, "/readyz to answer 200", func() bool {
		resp, err := http.Get("http://" + svc.AdminAddr() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	// Dendrite on SQLite without cgo sometimes answers 500 when several
	// clients write at once; that is not what this test is about.
	var room *mautrix.RespCreateRoom
	bridgetest.WaitFor(t, "the room to be created", func() bool {
		room, err = alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{botID}})
		return err == nil
	})
	bridgetest.WaitFor(t, "the bot to join", func() bool {
		m, err := alice.JoinedMembers(ctx, room.RoomID)
		return err == nil && len(m.Joined) == 2
	})
	txn := mautrix.ReqSendEvent{TransactionID: alice.TxnID()}
	bridgetest.WaitFor(t, "the message to be sent", func() bool {
		_, err := alice.SendMessageEvent(ctx, room.RoomID, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText, Body: "hello from Matrix"}, txn)
		return err == nil
	})
	bridgetest.WaitFor(t, "the bot's answer", func() bool {
		msgs, err := alice.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 20)
		return err == nil && slices.ContainsFunc(msgs.Chunk, func(evt *event.Event) bool {
			_ = evt.Content.ParseRaw(evt.Type)
			return evt.Sender == botID && evt.Type == event.EventMessage && evt.Content.AsMessage().Body == "hello from Matrix"
		})
	})
}

func TestCheckConfigOnlineChecksMatrix(t *testing.T) {
	hs := matrixtest.StartT(t)
	botID, token, _, err := hs.Register(t.Context(), "checked", "a password", false)
	if err != nil {
		t.Fatal(err)
	}
	em := startEmulator(t)
	config := func(matrix string) string {
		return writeFile(t, "bots:\n  - name: b\n    url: "+em+"\nmatrix:\n"+matrix)
	}
	cases := []struct {
		name, matrix string
		code         int
		want         []string
	}{
		{"a good token", "  homeserver_url: " + hs.URL + "\n  user_id: \"" + string(botID) + "\"\n  access_token: " + token + "\n",
			0, []string{"ok    matrix.homeserver_url", "ok    matrix.access_token"}},
		{"a refused token", "  homeserver_url: " + hs.URL + "\n  access_token: not-a-token\n",
			1, []string{"FAIL  matrix.access_token: the homeserver refuses it"}},
		{"a URL that is no homeserver", "  homeserver_url: " + em + "\n  access_token: " + token + "\n",
			1, []string{"FAIL  matrix.homeserver_url", "does not answer as a Matrix homeserver"}},
		{"a password is not tried", "  homeserver_url: " + hs.URL + "\n  user_id: \"" + string(botID) + "\"\n  password: a password\n",
			0, []string{"warn  matrix.password: not tried"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runMain(t, "", "check-config", "-online", "-config", config(c.matrix))
			if code != c.code {
				t.Errorf("exit %d, want %d:\n%s%s", code, c.code, out, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, token) {
				t.Errorf("output shows the access token:\n%s", out)
			}
		})
	}
}
