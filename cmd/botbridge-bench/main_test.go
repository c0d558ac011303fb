package main

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the bench binary when the bench
// re-executes itself as the emulator child.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == childEmulator {
		os.Exit(runChild(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestTinyRunPrintsEveryFigureAsPositiveJSON runs every phase of the tool in a tiny
// configuration, emulator child included, and checks the JSON it prints.
// The figures are timings: only their presence and sign are checked.
func TestTinyRunPrintsEveryFigureAsPositiveJSON(t *testing.T) {
	var stdout bytes.Buffer
	var stderr lockedBuffer // the emulator child's standard error is copied in too
	args := []string{"-json", "-n", "20", "-rooms", "1,2,5", "-msgs", "50", "-listeners", "50",
		"-backlog", "50", "-backlog-rooms", "5", "-timeout", "2m"}
	if code := Main(t.Context(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	var got map[string]any
	dec := json.NewDecoder(&stdout)
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout.String())
	}
	if dec.More() {
		t.Errorf("stdout holds more than one JSON value")
	}
	want := []string{"direct_p50_ms", "direct_p99_ms", "bridge_p50_ms", "bridge_p99_ms",
		"msgs_per_sec_1", "msgs_per_sec_100", "msgs_per_sec_1000", "listener_bytes", "drain_seconds"}
	for _, k := range want {
		v, ok := got[k].(float64)
		switch {
		case got[k] == nil:
			t.Errorf("key %s is missing", k)
		case !ok:
			t.Errorf("%s = %v, not a number", k, got[k])
		case v <= 0:
			t.Errorf("%s = %v, want a positive figure", k, v)
		}
	}
	for k := range got {
		if !slices.Contains(want, k) {
			t.Errorf("unexpected key %s", k)
		}
	}
	if !strings.Contains(stderr.String(), "drain: ") {
		t.Errorf("no progress on stderr:\n%s", stderr.String())
	}
}

func TestTableMarksEachTargetMetOrMissed(t *testing.T) {
	var out bytes.Buffer
	b := &bench{
		opts: options{n: 2000, rooms: []int{1, 100, 1000}, msgs: 5000, listeners: 10000, backlog: 10000, backlogRooms: 100,
			phases:   map[string]bool{phaseLatency: true, phaseThroughput: true, phaseMemory: true, phaseDrain: true},
			thinking: "auto", postInterval: time.Microsecond},
		res: results{DirectP50: 0.3, DirectP99: 1.5, BridgeP50: 1.2, BridgeP99: 6, PerSec1: 800, PerSec100: 1100,
			PerSec1000: 1000, ListenerBytes: 41 << 10, DrainSeconds: 12},
		info: details{phases: map[string]phaseStats{}},
	}
	if err := b.table(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"+0.90 ms", "+4.50 ms", "< 2 ms", "< 10 ms",
		"1 room(s), 5000 messages",
		"≥ 1000", "< 40 KB", "< 30 s",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	lines := strings.Split(out.String(), "\n")
	verdict := func(prefix string) string {
		for _, l := range lines {
			if strings.Contains(l, prefix) {
				return strings.Fields(l)[len(strings.Fields(l))-1]
			}
		}
		return ""
	}
	for prefix, want := range map[string]string{
		"added by the bridge, p50": "met",
		"1 room(s)":                "MISSED",
		"100 room(s)":              "met",
		"1000 room(s)":             "met",
		"memory per open listener": "MISSED",
		"drain 10000":              "met",
	} {
		if got := verdict(prefix); got != want {
			t.Errorf("%s: verdict %q, want %q", prefix, got, want)
		}
	}
}
