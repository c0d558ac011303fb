package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botbridge/botbridge/store/postgres/pgtest"
)

// TestMain lets the test binary stand in for the bench binary when the bench
// re-executes itself as the emulator child or a replica.
func TestMain(m *testing.M) {
	if code, ok := runAsChild(); ok {
		os.Exit(code)
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

// runJSON runs the tool with args and -json, emulator child included, and
// returns the one JSON object it printed.
func runJSON(t *testing.T, args ...string) (map[string]any, string) {
	t.Helper()
	var stdout bytes.Buffer
	var stderr lockedBuffer // the emulator child's standard error is copied in too
	if code := Main(t.Context(), append([]string{"-json"}, args...), &stdout, &stderr); code != 0 {
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
	return got, stderr.String()
}

// checkFigures checks that the keys of positive are positive numbers, the
// keys of zero are 0, and that there are no other keys.
func checkFigures(t *testing.T, got map[string]any, positive, zero []string) {
	t.Helper()
	for _, k := range positive {
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
	for _, k := range zero {
		if v, ok := got[k].(float64); !ok || v != 0 {
			t.Errorf("%s = %v, want 0", k, got[k])
		}
	}
	for k := range got {
		if !slices.Contains(positive, k) && !slices.Contains(zero, k) {
			t.Errorf("unexpected key %s", k)
		}
	}
}

var (
	earlyKeys = []string{"direct_p50_ms", "direct_p99_ms", "bridge_p50_ms", "bridge_p99_ms",
		"msgs_per_sec_1", "msgs_per_sec_100", "msgs_per_sec_1000", "listener_bytes", "drain_seconds"}
	lateKeys    = []string{"late_reply_p50_s", "late_reply_p99_s", "late_reply_sweep_p99_s", "listener_bytes_h2"}
	replicaKeys = []string{"pg_msgs_per_sec_100_r1", "pg_msgs_per_sec_100_r2", "pg_msgs_per_sec_100_r3", "failover_seconds"}
	countKeys   = []string{"late_replies_lost", "replica_lost", "replica_doubled"}
)

// zeroBut returns the keys of the groups, which a run of other phases
// leaves at 0.
func zeroBut(groups ...[]string) []string {
	return slices.Concat(append(groups, countKeys)...)
}

// TestTinyRunPrintsEveryFigureAsPositiveJSON runs every phase of the tool
// but the late one in a tiny configuration, emulator child included, and
// checks the JSON it prints. The figures are timings: only their presence
// and sign are checked.
func TestTinyRunPrintsEveryFigureAsPositiveJSON(t *testing.T) {
	got, stderr := runJSON(t, "-n", "20", "-rooms", "1,2,5", "-msgs", "50", "-listeners", "50",
		"-backlog", "50", "-backlog-rooms", "5", "-phases", "latency,throughput,memory,drain", "-timeout", "2m")
	checkFigures(t, got, earlyKeys, zeroBut(lateKeys, replicaKeys))
	if !strings.Contains(stderr, "drain: ") {
		t.Errorf("no progress on stderr:\n%s", stderr)
	}
}

// TestLatePhasePostsEveryLateReply runs the late phase at a small scale: 50
// idle conversations, 10 late replies by webhook and 10 by sweeps (which
// take up to the default sweep interval, 15 s), and 50 streams over HTTP/2.
func TestLatePhasePostsEveryLateReply(t *testing.T) {
	got, stderr := runJSON(t, "-phases", "late", "-late-convs", "50", "-late-replies", "10", "-listeners", "50",
		"-late-deadline", "1m", "-timeout", "3m")
	checkFigures(t, got, lateKeys, zeroBut(earlyKeys, replicaKeys))
	if _, ok := got["late_replies_lost"]; !ok {
		t.Errorf("key late_replies_lost is missing")
	}
	for _, want := range []string{"late-webhook: 10 of 10 late replies posted", "late-sweep: 10 of 10 late replies posted"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// TestReplicasPhaseLosesAndDoublesNothing runs the replicas phase small: 1
// and 2 replicas on a throwaway PostgreSQL with 50 messages each, then the
// failover of 2 with a lease of 3 s. The failover takes at least the time
// the lease has left at the kill; being a timing, it is only checked to be
// there.
func TestReplicasPhaseLosesAndDoublesNothing(t *testing.T) {
	dsn := pgtest.Start(t).Admin(t)
	got, stderr := runJSON(t, "-store", "postgres", "-phases", "replicas", "-replicas", "2", "-msgs", "50",
		"-lease-ttl", "3s", "-pg-dsn", dsn, "-timeout", "3m")
	checkFigures(t, got, []string{"pg_msgs_per_sec_100_r1", "pg_msgs_per_sec_100_r2", "failover_seconds"},
		zeroBut(earlyKeys, lateKeys, []string{"pg_msgs_per_sec_100_r3"}))
	for _, want := range []string{"killed r1 (SIGKILL), which held 50 of its 100 busy rooms", "0 lost, 0 doubled"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestReplicasPhaseNeedsPostgres(t *testing.T) {
	var stderr bytes.Buffer
	if code := Main(t.Context(), []string{"-phases", "replicas"}, io.Discard, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "needs -store postgres") {
		t.Errorf("-phases replicas on SQLite: exit %d, %s; want a usage error", code, stderr.String())
	}
}

func TestTableMarksEachTargetMetOrMissed(t *testing.T) {
	var out bytes.Buffer
	b := &bench{
		opts: options{n: 2000, rooms: []int{1, 100, 1000}, msgs: 5000, listeners: 10000, backlog: 10000, backlogRooms: 100,
			lateConvs: 10000, lateReplies: 1000, lateDeadline: 5 * time.Minute, h2: protoTLS,
			phases: map[string]bool{phaseLatency: true, phaseThroughput: true, phaseMemory: true, phaseDrain: true, phaseLate: true,
				phaseReplicas: true},
			thinking: "auto", postInterval: time.Microsecond, store: storePostgres, replicas: 3, leaseTTL: 15 * time.Second},
		res: results{DirectP50: 0.3, DirectP99: 1.5, BridgeP50: 1.2, BridgeP99: 6, PerSec1: 800, PerSec100: 3100,
			PerSec1000: 3000, ListenerBytes: 41 << 10, DrainSeconds: 12,
			LateP50: 0.2, LateP99: 1.2, LateSweepP99: 15, ListenerBytesH2: 20 << 10, LateLost: 1,
			PgPerSec100R1: 500, PgPerSec100R2: 700, PgPerSec100R3: 800, FailoverSeconds: 12.5, ReplicaDoubled: 1},
		info: details{phases: map[string]phaseStats{}},
	}
	if err := b.table(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"+0.90 ms", "+4.50 ms", "< 1 ms", "< 5 ms",
		"1 room(s), 5000 messages",
		"≥ 2000", "≥ 3000", "< 40 KB", "< 30 s",
		"1000 of 10000 idle conversations", "0.200 / 1.200 s", "sweep_budget 60000 a minute", "≤ 60 s", "≤ 25 KB", "5m0s",
		"≥ 1550 (half of SQLite's)", "3 replica(s) on PostgreSQL, 100 rooms", "12.50 s", "lease_ttl 15s", "0 / 1",
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
		"late reply by webhook":    "MISSED",
		"late reply by sweeps":     "met",
		"late replies lost":        "MISSED",
		"over HTTP/2":              "met",
		"1 replica(s)":             "MISSED",
		"failover":                 "met",
		"lost / replies doubled":   "MISSED",
	} {
		if got := verdict(prefix); got != want {
			t.Errorf("%s: verdict %q, want %q", prefix, got, want)
		}
	}
}

func TestSyncFlagTakesFullOrNormal(t *testing.T) {
	for _, v := range []string{"full", "normal"} {
		o, err := parseFlags([]string{"-sync", v}, io.Discard)
		if err != nil || o.sync != v {
			t.Errorf("-sync %s: sync %q, %v", v, o.sync, err)
		}
	}
	if _, err := parseFlags([]string{"-sync", "off"}, io.Discard); err == nil || !strings.Contains(err.Error(), `-sync: "off" is not full or normal`) {
		t.Errorf("-sync off: %v, want an error naming the flag and its values", err)
	}
}
