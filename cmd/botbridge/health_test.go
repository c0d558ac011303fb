package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat/chattest"
)

// runService runs a Service with an in-memory adapter against the emulator
// at url until the test ends.
func runService(t *testing.T, url string) (*Service, *bridgetest.Adapter) {
	t.Helper()
	cfg := defaults()
	cfg.Bots = []BotConfig{{Name: "b", URL: url}}
	return runConfig(t, cfg, testLog(t))
}

// runConfig runs a Service of cfg, on a store in a temporary directory and
// the admin listener on a free port, with an in-memory adapter, until the
// test ends.
func runConfig(t *testing.T, cfg Config, log *slog.Logger) (*Service, *bridgetest.Adapter) {
	t.Helper()
	cfg.Store.Path = filepath.Join(t.TempDir(), "b.db")
	cfg.HTTP.AdminAddr = "127.0.0.1:0"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ad := bridgetest.NewAdapter(bridge.PlatformConsole)
	svc, err := NewService(t.Context(), cfg, log, ad)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		svc.Close()
	})
	return svc, ad
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestMetricsCountTheFlow(t *testing.T) {
	svc, ad := runService(t, startEmulator(t))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	in := bridge.Inbound{Key: "k1", Room: bridge.RoomKey{Platform: bridge.PlatformConsole, Room: "console"}, DM: true,
		Sender: bridge.Sender{ID: "me"}, Text: "count me", Time: time.Now()}
	if err := ad.Say(ctx, in); err != nil {
		t.Fatal(err)
	}
	if _, err := ad.WaitPosts(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// The reply can be posted before createMessage has returned.
	if err := svc.Engine.WaitIdle(ctx, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	code, body := get(t, "http://"+svc.AdminAddr()+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`botbridge_messages_in_total{bot="b",platform="console",result="stored"} 1`,
		`botbridge_messages_in_total{bot="b",platform="console",result="sent"} 1`,
		`botbridge_messages_out_total{bot="b",platform="console",result="posted"} 1`,
		`botbridge_botpress_request_duration_seconds_count{bot="b",code="200",op="createMessage"} 1`,
		`botbridge_delivery_lag_seconds_count{bot="b",platform="console"} 1`,
		`botbridge_listeners_open 1`,
		`botbridge_outbox_pending 0`,
		`botbridge_deliveries_pending 0`,
		`botbridge_store_up 1`,
		`botbridge_build_info{version=`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestReadyzNamesWhatIsNotReady runs two bots whose Chat API fails, one
// with 503 and one that does not answer: /readyz names both and what to
// check, without their addresses, which only the log shows.
func TestReadyzNamesWhatIsNotReady(t *testing.T) {
	em, err := chattest.New(chattest.Options{Bot: chattest.EchoBot()})
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	em.FailRequests(http.StatusServiceUnavailable, 0, time.Now().Add(time.Hour))
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close()

	var logs syncBuf
	cfg := defaults()
	cfg.Bots = []BotConfig{{Name: "failing", URL: em.URL()}, {Name: "gone", URL: "http://" + gone + "/webhook"}}
	cfg.Routes = []RouteConfig{{Bot: "failing"}}
	svc, _ := runConfig(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	code, body := get(t, "http://"+svc.AdminAddr()+"/readyz")
	var got struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	if code != http.StatusServiceUnavailable || got.Ready {
		t.Errorf("/readyz with Botpress down: %d %s", code, body)
	}
	t.Logf("/readyz: %d %s", code, body)
	if c := got.Checks["bot.failing"]; !strings.Contains(c, "503") || !strings.Contains(c, "check bots[0].url") {
		t.Errorf("bot.failing: %q; want the 503 and what to check", c)
	}
	if c := got.Checks["bot.gone"]; !strings.Contains(c, "does not answer") || !strings.Contains(c, "check bots[1].url") {
		t.Errorf("bot.gone: %q; want that it does not answer and what to check", c)
	}
	if got.Checks["store"] != "ok" {
		t.Errorf("store: %q, want ok", got.Checks["store"])
	}
	emHost := strings.TrimPrefix(strings.Split(em.URL(), "/")[2], "http://")
	for _, addr := range []string{gone, emHost, "127.0.0.1", "webhook"} {
		if strings.Contains(body, addr) {
			t.Errorf("/readyz shows %q: %s", addr, body)
		}
	}
	logs.wait(t, gone)
}

// TestReadyzWritesTheStoreAtMostEveryFewSeconds probes /readyz 1,000 times
// and counts the store's heartbeat writes with triggers on its table.
func TestReadyzWritesTheStoreAtMostEveryFewSeconds(t *testing.T) {
	svc, _ := runService(t, startEmulator(t))
	db, err := svc.Store.SQL()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE test_heartbeats (at INTEGER)`,
		`CREATE TRIGGER test_heartbeat_insert AFTER INSERT ON cursors WHEN NEW.name = 'store.heartbeat'
			BEGIN INSERT INTO test_heartbeats VALUES (NEW.updated_ms); END`,
		`CREATE TRIGGER test_heartbeat_update AFTER UPDATE ON cursors WHEN NEW.name = 'store.heartbeat'
			BEGIN INSERT INTO test_heartbeats VALUES (NEW.updated_ms); END`,
	} {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	const probes = 1000
	start := time.Now()
	for range probes {
		if code, body := get(t, "http://"+svc.AdminAddr()+"/readyz"); code != http.StatusOK {
			t.Fatalf("/readyz: %d %s", code, body)
		}
	}
	elapsed := time.Since(start)
	var writes int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM test_heartbeats`).Scan(&writes); err != nil {
		t.Fatal(err)
	}
	// One write, then one each time the last is older than storeCheckTTL.
	most := 1 + int(elapsed/storeCheckTTL)
	t.Logf("%d probes in %v wrote the heartbeat %d times", probes, elapsed.Round(time.Millisecond), writes)
	if writes > most {
		t.Errorf("%d probes in %v wrote the store %d times; want at most %d, one per %v", probes, elapsed.Round(time.Millisecond), writes, most, storeCheckTTL)
	}
}

func TestRedactKeepsAddressesOutOfReadyz(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`chat: hello: Get "https://chat.botpress.cloud/wh-secret/hello/": dial tcp 10.1.2.3:443: connect: connection refused`,
			`chat: hello: Get "…": dial tcp …: connect: connection refused`},
		{`dial tcp [fd00::1]:8008: i/o timeout`, `dial tcp …: i/o timeout`},
		{`dial tcp: lookup matrix.internal on 127.0.0.53:53: no such host`, `dial tcp: lookup … on …: no such host`},
		{`dial tcp botpress.internal:8080: connection reset`, `dial tcp …: connection reset`},
		{`x509: certificate is valid for a.internal, b.internal, not c.internal`, `x509: certificate is not valid for this host`},
		{`slack: invalid_auth: check slack.bot_token`, `slack: invalid_auth: check slack.bot_token`},
		{`matrix: cannot reach the homeserver at https://mx.internal:8448: timeout: check matrix.homeserver_url and the network`,
			`matrix: cannot reach the homeserver at …: timeout: check matrix.homeserver_url and the network`},
		{`the last write failed 3s ago and none succeeded since: database or disk is full (13)`,
			`the last write failed 3s ago and none succeeded since: database or disk is full (13)`},
	} {
		if got := redact(errors.New(c.in)); got != c.want {
			t.Errorf("redact(%q)\n = %q\nwant %q", c.in, got, c.want)
		}
	}
}

// TestReadyzAndMetricsShowTheLeases runs one replica: once it holds every
// shard, /readyz names it and lists the leases with the time left on each,
// and /metrics counts them.
func TestReadyzAndMetricsShowTheLeases(t *testing.T) {
	svc, _ := runService(t, startEmulator(t))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var (
		code int
		body string
		got  struct {
			Ready  bool              `json:"ready"`
			Checks map[string]string `json:"checks"`
			Leases struct {
				Replica  string   `json:"replica"`
				Replicas int      `json:"replicas"`
				Held     []string `json:"held"`
			} `json:"leases"`
		}
	)
	for len(got.Leases.Held) < bridge.Shards {
		if ctx.Err() != nil {
			t.Fatalf("/readyz: %d %s; want the %d shards held", code, body, bridge.Shards)
		}
		code, body = get(t, "http://"+svc.AdminAddr()+"/readyz")
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("/readyz body %q: %v", body, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	if code != http.StatusOK || got.Checks["leases"] != "ok" || got.Leases.Replica == "" || got.Leases.Replicas != 1 {
		t.Errorf("/readyz: %d %s; want ready, the leases ok, this replica named, one replica alive", code, body)
	}
	if h := got.Leases.Held[0]; !strings.HasPrefix(h, "shard:") || !strings.Contains(h, " left)") {
		t.Errorf("/readyz: held %q; want a shard and the time left on it", h)
	}
	_, body = get(t, "http://"+svc.AdminAddr()+"/metrics")
	if want := fmt.Sprintf("botbridge_leases_held %d\n", bridge.Shards); !strings.Contains(body, want) {
		t.Errorf("/metrics lacks %s", want)
	}
	if !strings.Contains(body, "botbridge_lease_renew_failures_total 0\n") {
		t.Errorf("/metrics lacks botbridge_lease_renew_failures_total 0")
	}
}
