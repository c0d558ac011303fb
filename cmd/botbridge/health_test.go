package main

import (
	"context"
	"encoding/json"
	"io"
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
	cfg.Store.Path = filepath.Join(t.TempDir(), "b.db")
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Bots = []BotConfig{{Name: "b", URL: url}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ad := bridgetest.NewAdapter(bridge.PlatformConsole)
	svc, err := NewService(t.Context(), cfg, testLog(t), ad)
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
	code, body := get(t, "http://"+svc.HTTPAddr()+"/metrics")
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
	svc, _ := runService(t, em.URL())
	code, body := get(t, "http://"+svc.HTTPAddr()+"/readyz")
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
	if !strings.Contains(got.Checks["bot.b"], "503") || got.Checks["store"] != "ok" {
		t.Errorf("checks = %v; want bot.b naming the 503 and the store ok", got.Checks)
	}
}
