// Command botbridge-bench measures botbridge on the machine it runs on. It
// runs the real bridge (engine, SQLite store in a temporary directory, the
// Slack adapter over Socket Mode) against the Chat API emulator's echo bot,
// served by a child process of its own, and a fake Slack in this process,
// everything over loopback, and reports side by side:
//
//   - round-trip latency p50/p99 of a person's Slack DM through the bridge
//     to the posted reply, next to the same round trip made directly with
//     the chat client;
//   - sustained messages per second through the whole bridge, for 1, 100
//     and 1,000 rooms;
//   - memory (heap and stack) per open conversation listener, with 10,000
//     open;
//   - the time to drain a backlog of 10,000 messages queued while Botpress
//     was down, after a restart;
//   - late replies: 10,000 conversations, all idle, then the bot sends one
//     reply into each of 1,000 random ones; the delay from the bot's send
//     to the post, p50/p99 with the bot's webhooks, p99 with sweeps alone
//     (no webhook, streams closed), the replies not posted by a deadline,
//     and the memory per open stream over HTTP/2, with 10,000 open;
//   - with -store postgres, replicas on one PostgreSQL database (a
//     throwaway server the bench starts, or -pg-dsn), each a child process:
//     messages per second of 1 to -replicas of them in 100 rooms; the
//     failover, from the kill -9 of the replica owning 50 busy rooms until
//     each of them had its next reply posted; and the messages lost and
//     replies doubled in those runs.
//
// With -json it prints one JSON object (direct_p50_ms, direct_p99_ms,
// bridge_p50_ms, bridge_p99_ms, msgs_per_sec_1, msgs_per_sec_100,
// msgs_per_sec_1000, listener_bytes, drain_seconds, late_reply_p50_s,
// late_reply_p99_s, late_reply_sweep_p99_s, listener_bytes_h2,
// late_replies_lost, pg_msgs_per_sec_100_r1, _r2, _r3, failover_seconds,
// replica_lost, replica_doubled); else a table with the targets and what
// each phase cost in CPU and Chat API requests. Progress goes to standard
// error.
//
//	botbridge-bench [-json] [-n 2000] [-rooms 1,100,1000] [-msgs 5000]
//	    [-listeners 10000] [-backlog 10000] [-backlog-rooms 100]
//	    [-late-convs 10000] [-late-replies 1000] [-late-deadline 5m]
//	    [-sweep-budget 0] [-h2 tls]
//	    [-store sqlite|postgres] [-replicas 3] [-lease-ttl 12s] [-pg-dsn DSN]
//	    [-phases latency,throughput,memory,drain,late] [-thinking auto]
//	    [-post-interval 1µs] [-slack-idle-conns 0] [-chat-idle-conns 0]
//	    [-sync full] [-cpu-split]
//	    [-cpuprofile FILE] [-memprofile FILE] [-blockprofile FILE] [-trace FILE]
//
// The Slack adapter runs with a post interval of 1µs: its default, one post
// a second per channel as Slack asks, would make every figure Slack's pace.
// The CPU profile labels goroutines with side=bridge, slack (the fake),
// people (the simulated senders) or direct, for pprof's -tagfocus.
// -cpu-split profiles each throughput run itself and prints the CPU time a
// message costs on each side, with the rate the machine's cores allow at
// that cost.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/store/postgres/pgtest"
)

func main() {
	if code, ok := runAsChild(); ok {
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// runAsChild runs the child the environment names (the emulator or a
// replica), if any, and returns its exit code.
func runAsChild() (int, bool) {
	switch os.Getenv(childEnv) {
	case childEmulator:
		return runChild(os.Getenv(childProtoEnv), os.Stdin, os.Stdout, os.Stderr), true
	case childReplica:
		return runReplica(os.Stdin, os.Stdout, os.Stderr), true
	}
	return 0, false
}

// Phases of a run, in the order they run.
const (
	phaseLatency    = "latency"
	phaseThroughput = "throughput"
	phaseMemory     = "memory"
	phaseDrain      = "drain"
	phaseLate       = "late"
	phaseReplicas   = "replicas"
)

var allPhases = []string{phaseLatency, phaseThroughput, phaseMemory, phaseDrain, phaseLate, phaseReplicas}

// Stores of -store.
const (
	storeSQLite   = "sqlite"
	storePostgres = "postgres"
)

// options are the command line.
type options struct {
	json         bool
	n            int
	rooms        []int
	msgs         int
	listeners    int
	backlog      int
	backlogRooms int
	lateConvs    int
	lateReplies  int
	lateDeadline time.Duration
	sweepBudget  int
	h2           string
	phases       map[string]bool
	thinking     string
	// sync is the SQLite store's store.sync: full (the default) or normal.
	sync         string
	postInterval time.Duration
	timeout      time.Duration
	cpuprofile   string
	// cpuSplit profiles each throughput run to split its CPU time by side.
	cpuSplit     bool
	memprofile   string
	blockprofile string
	trace        string
	slackIdle    int
	chatIdle     int
	verbose      bool
	// store, replicas, leaseTTL and pgDSN are the replicas phase's.
	store    string
	replicas int
	leaseTTL time.Duration
	pgDSN    string
}

// results are the figures; their JSON form is the -json output.
type results struct {
	DirectP50     float64 `json:"direct_p50_ms"`
	DirectP99     float64 `json:"direct_p99_ms"`
	BridgeP50     float64 `json:"bridge_p50_ms"`
	BridgeP99     float64 `json:"bridge_p99_ms"`
	PerSec1       float64 `json:"msgs_per_sec_1"`
	PerSec100     float64 `json:"msgs_per_sec_100"`
	PerSec1000    float64 `json:"msgs_per_sec_1000"`
	ListenerBytes float64 `json:"listener_bytes"`
	DrainSeconds  float64 `json:"drain_seconds"`
	// LateP50 and LateP99 are the delays of late replies with webhooks,
	// LateSweepP99 with sweeps alone, in seconds.
	LateP50      float64 `json:"late_reply_p50_s"`
	LateP99      float64 `json:"late_reply_p99_s"`
	LateSweepP99 float64 `json:"late_reply_sweep_p99_s"`
	// ListenerBytesH2 is the memory per open stream over HTTP/2.
	ListenerBytesH2 float64 `json:"listener_bytes_h2"`
	// LateLost counts the late replies of both runs not posted by the
	// deadline.
	LateLost int `json:"late_replies_lost"`
	// PgPerSec100R1 to R3 are the messages per second of 1, 2 and 3
	// replicas on PostgreSQL in 100 rooms.
	PgPerSec100R1 float64 `json:"pg_msgs_per_sec_100_r1"`
	PgPerSec100R2 float64 `json:"pg_msgs_per_sec_100_r2"`
	PgPerSec100R3 float64 `json:"pg_msgs_per_sec_100_r3"`
	// FailoverSeconds is the time from the kill of the replica owning 50
	// busy rooms until each of them had its next reply posted.
	FailoverSeconds float64 `json:"failover_seconds"`
	// ReplicaLost and ReplicaDoubled count the messages of the replicas
	// phase's runs answered never, and the replies posted beyond one per
	// message.
	ReplicaLost    int `json:"replica_lost"`
	ReplicaDoubled int `json:"replica_doubled"`
}

// details are what the table shows beside the figures.
type details struct {
	heapPerListener       float64
	stackPerListener      float64
	goroutinesPerListener float64
	filesPerListener      float64
	phases                map[string]phaseStats
	perMsg                [3]perMsg // of each throughput run
	drainRequests         float64   // Chat API requests per message drained
	late                  lateDetails
	wall                  time.Duration
	rlimit                string
	// failoverLeft is the time the killed replica's leases had left at
	// the kill, by the store's clock.
	failoverLeft time.Duration
	// others is the CPU time other processes of the machine used during
	// the phases; negative when unknown.
	others time.Duration
}

// phaseStats is what a phase cost: wall time, CPU time and the requests
// the emulated Botpress answered.
type phaseStats struct {
	wall     time.Duration
	cpu      cpuTimes
	requests int
}

// perMsg is what one message cost in a throughput run.
type perMsg struct {
	cpu      cpuTimes
	requests float64
	// split is the share of this process's CPU time of each of
	// splitSides, with -cpu-split; else nil.
	split map[string]float64
}

// bench is one run.
type bench struct {
	opts   options
	emu    *emulator
	client *chat.Client // the bridge's, shared by its runs as one process would
	signer *chat.Signer
	log    *slog.Logger
	dir    string
	stderr io.Writer
	res    results
	info   details
}

func (b *bench) note(format string, args ...any) {
	fmt.Fprintf(b.stderr, "bench: "+format+"\n", args...)
}

func (b *bench) dbPath(name string) string { return filepath.Join(b.dir, name+".db") }

// exitUsage is the exit code for a command line that cannot be run.
const exitUsage = 2

// Main runs the command line args and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "botbridge-bench:", err)
		return exitUsage
	}
	b, err := run(ctx, opts, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "botbridge-bench:", err)
		return 1
	}
	if opts.json {
		err = json.NewEncoder(stdout).Encode(b.res.rounded())
	} else {
		err = b.table(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "botbridge-bench:", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("botbridge-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.json, "json", false, "print one JSON object instead of the table")
	fs.IntVar(&o.n, "n", 2000, "latency samples of each kind")
	rooms := fs.String("rooms", "1,100,1000", "the three room counts of the throughput runs (msgs_per_sec_1, _100 and _1000)")
	fs.IntVar(&o.msgs, "msgs", 5000, "messages of each throughput run")
	fs.IntVar(&o.listeners, "listeners", 10000, "open conversation listeners of the memory run")
	fs.IntVar(&o.backlog, "backlog", 10000, "queued messages of the drain run")
	fs.IntVar(&o.backlogRooms, "backlog-rooms", 100, "rooms the queued messages are spread over")
	fs.IntVar(&o.lateConvs, "late-convs", 10000, "idle conversations of each late-reply run")
	fs.IntVar(&o.lateReplies, "late-replies", 1000, "late replies of each late-reply run, one in each of as many random conversations")
	fs.DurationVar(&o.lateDeadline, "late-deadline", 5*time.Minute, "a late reply not posted this long after the bot sent it counts as lost")
	fs.IntVar(&o.sweepBudget, "sweep-budget", 0,
		"bridge.sweep_budget (requests a minute) of the sweep run; 0 is 6 per conversation (1.5 times the 4 a minute each asks while idle less than 5 minutes), at least the default 300")
	fs.StringVar(&o.h2, "h2", protoTLS, "how the late phase's HTTP/2 run speaks HTTP/2: tls (negotiated, as with Botpress Cloud) or h2c (without TLS)")
	phases := fs.String("phases", strings.Join(allPhases[:len(allPhases)-1], ","),
		"phases to run; the figures of the others are 0. -store postgres adds "+phaseReplicas)
	fs.StringVar(&o.store, "store", storeSQLite, "sqlite: every phase on SQLite; postgres: also the replicas phase, several replicas on one PostgreSQL")
	fs.IntVar(&o.replicas, "replicas", 3, "the replicas phase measures 1 to this many replicas (at most 3), and the failover with this many (at least 2)")
	fs.DurationVar(&o.leaseTTL, "lease-ttl", bridge.DefaultLeaseTTL, "bridge.lease_ttl of the replicas (bridge.lease_renew is a third of it); the failover waits for it")
	fs.StringVar(&o.pgDSN, "pg-dsn", "",
		"connection string of a PostgreSQL user who may create databases, for the replicas phase; default $"+pgtest.EnvDSN+", else a throwaway server started with the machine's initdb and postgres")
	fs.StringVar(&o.thinking, "thinking", "auto", "the Slack adapter's thinking indicator: auto (the service's default), status, reaction or off")
	fs.StringVar(&o.sync, "sync", "full", "the SQLite store's store.sync: full (the service's default: every commit synced) or normal (durable across a killed process, not a power loss)")
	fs.DurationVar(&o.postInterval, "post-interval", time.Microsecond,
		"the Slack adapter's least time between posts in one channel (the service's default, 1s, would make every figure Slack's pace)")
	fs.DurationVar(&o.timeout, "timeout", 20*time.Minute, "give up after this long")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run to `file`")
	fs.BoolVar(&o.cpuSplit, "cpu-split", false, "profile each throughput run and split its CPU time per message by side: the bridge, the fake Slack, the simulated people, the Go runtime, the emulator (not with -cpuprofile)")
	fs.StringVar(&o.memprofile, "memprofile", "", "write a heap profile to `file` with every listener open: the memory phase's, else the late phase's over HTTP/2, else at the end")
	fs.StringVar(&o.blockprofile, "blockprofile", "", "write a profile of where goroutines waited (channels, locks, the store's connection) to `file`")
	fs.StringVar(&o.trace, "trace", "", "write an execution trace of the whole run to `file` (go tool trace); keep the run short")
	fs.IntVar(&o.slackIdle, "slack-idle-conns", 0, "idle connections per host of the Slack adapter's HTTP client; 0 is the service's (the adapter's default: 64)")
	fs.IntVar(&o.chatIdle, "chat-idle-conns", 0, "idle connections per host of the bridge's Chat API client; 0 is the service's (the chat client's default: 128)")
	fs.BoolVar(&o.verbose, "v", false, "log the bridge's info messages to standard error")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for s := range strings.SplitSeq(*rooms, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || v < 1 {
			return o, fmt.Errorf("-rooms: %q is not a positive count", s)
		}
		o.rooms = append(o.rooms, v)
	}
	if len(o.rooms) != 3 {
		return o, errors.New("-rooms: give three counts, such as 1,100,1000")
	}
	o.phases = map[string]bool{}
	for p := range strings.SplitSeq(*phases, ",") {
		p = strings.TrimSpace(p)
		if !slices.Contains(allPhases, p) {
			return o, fmt.Errorf("-phases: %q is not one of %s", p, strings.Join(allPhases, ", "))
		}
		o.phases[p] = true
	}
	for name, v := range map[string]int{"-n": o.n, "-msgs": o.msgs, "-listeners": o.listeners, "-backlog": o.backlog, "-backlog-rooms": o.backlogRooms,
		"-late-convs": o.lateConvs, "-late-replies": o.lateReplies} {
		if v < 1 {
			return o, fmt.Errorf("%s: must be at least 1", name)
		}
	}
	if o.lateReplies > o.lateConvs {
		return o, fmt.Errorf("-late-replies: %d is more than the %d conversations of -late-convs", o.lateReplies, o.lateConvs)
	}
	if o.lateDeadline <= 0 {
		return o, errors.New("-late-deadline: must be positive")
	}
	if o.sweepBudget < 0 {
		return o, errors.New("-sweep-budget: must be 0 (computed) or positive")
	}
	if o.h2 != protoTLS && o.h2 != protoH2C {
		return o, fmt.Errorf("-h2: %q is not tls or h2c", o.h2)
	}
	switch o.thinking {
	case "auto", "status", "reaction", "off":
	default:
		return o, fmt.Errorf("-thinking: %q is not auto, status, reaction or off", o.thinking)
	}
	if o.sync != "full" && o.sync != "normal" {
		return o, fmt.Errorf("-sync: %q is not full or normal", o.sync)
	}
	if o.postInterval <= 0 {
		return o, errors.New("-post-interval: must be positive (the adapter takes 0 for its 1s default)")
	}
	switch o.store {
	case storeSQLite:
		if o.phases[phaseReplicas] {
			return o, fmt.Errorf("-phases: %s needs -store postgres", phaseReplicas)
		}
	case storePostgres:
		o.phases[phaseReplicas] = true
	default:
		return o, fmt.Errorf("-store: %q is not %s or %s", o.store, storeSQLite, storePostgres)
	}
	if o.replicas < 1 || o.replicas > 3 {
		return o, errors.New("-replicas: give 1, 2 or 3")
	}
	if o.cpuSplit && o.cpuprofile != "" {
		return o, errors.New("-cpu-split: not with -cpuprofile (one CPU profile at a time): drop one")
	}
	if o.cpuSplit && o.json {
		return o, errors.New("-cpu-split: its figures are in the table, not in -json's object: drop one")
	}
	if o.cpuSplit && !o.phases[phaseThroughput] {
		return o, fmt.Errorf("-cpu-split: splits the %s phase's CPU: add it to -phases", phaseThroughput)
	}
	if o.leaseTTL < time.Second {
		return o, errors.New("-lease-ttl: must be at least 1s")
	}
	return o, nil
}

// run runs the phases and returns the bench with its figures.
func run(ctx context.Context, opts options, stderr io.Writer) (*bench, error) {
	started := time.Now()
	ctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()
	b := &bench{opts: opts, stderr: stderr, log: slog.New(slog.DiscardHandler), info: details{phases: map[string]phaseStats{}}}
	if opts.verbose {
		b.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if opts.cpuprofile != "" {
		f, err := os.Create(opts.cpuprofile)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	if opts.trace != "" {
		f, err := os.Create(opts.trace)
		if err != nil {
			return nil, err
		}
		if err := trace.Start(f); err != nil {
			f.Close()
			return nil, err
		}
		defer func() {
			trace.Stop()
			f.Close()
		}()
	}
	if opts.blockprofile != "" {
		runtime.SetBlockProfileRate(int(10 * time.Microsecond))
		defer func() {
			if err := writeProfile("block", opts.blockprofile); err != nil {
				b.note("block profile: %v", err)
			}
		}()
	}
	b.info.rlimit = raiseFileLimit(uint64(opts.listeners) + 4096)
	b.note("%s", b.info.rlimit)

	var err error
	if b.dir, err = os.MkdirTemp("", "botbridge-bench-*"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(b.dir)
	if b.emu, err = startEmulator(ctx, protoHTTP1, stderr); err != nil {
		return nil, err
	}
	defer b.emu.close()
	var copts []chat.Option
	if opts.chatIdle > 0 {
		copts = append(copts, chat.WithHTTPClient(chatHTTPClient(opts.chatIdle)))
	}
	if b.client, err = chat.NewClient(b.emu.API, copts...); err != nil {
		return nil, err
	}
	if b.signer, err = chat.NewSigner(benchKey); err != nil {
		return nil, err
	}
	b.note("emulator child at %s; Slack post_interval %v, thinking %s", b.emu.API, opts.postInterval, opts.thinking)

	type phase struct {
		name string
		run  func(context.Context) error
	}
	phases := []phase{
		{phaseLatency, b.latency},
		{phaseThroughput, func(ctx context.Context) error {
			out := []*float64{&b.res.PerSec1, &b.res.PerSec100, &b.res.PerSec1000}
			for i, rooms := range opts.rooms {
				rate, cost, err := b.throughput(ctx, rooms)
				if err != nil {
					return fmt.Errorf("%d rooms: %w", rooms, err)
				}
				*out[i], b.info.perMsg[i] = rate, cost
			}
			return nil
		}},
		{phaseMemory, b.memory},
		{phaseDrain, b.drain},
		{phaseLate, b.late},
		{phaseReplicas, b.replicas},
	}
	busy0, busyErr := machineBusy()
	cpu0 := b.cpuNow()
	labelled("people", func() {
		for _, p := range phases {
			if !opts.phases[p.name] {
				continue
			}
			t, cpu, reqs := time.Now(), b.cpuNow(), b.requests(ctx)
			b.note("%s: starting", p.name)
			if err = p.run(ctx); err != nil {
				err = fmt.Errorf("%s: %w", p.name, err)
				return
			}
			b.info.phases[p.name] = phaseStats{wall: time.Since(t), cpu: b.cpuNow().sub(cpu), requests: b.requests(ctx) - reqs}
			b.note("%s: done in %v", p.name, time.Since(t).Round(time.Millisecond))
		}
	})
	if err != nil {
		return nil, err
	}
	b.info.others = -1
	if busy1, err := machineBusy(); err == nil && busyErr == nil {
		ours := b.cpuNow().sub(cpu0)
		b.info.others = max(0, busy1-busy0-ours.self-ours.child)
		b.note("other processes used %.0f CPU seconds meanwhile", b.info.others.Seconds())
	}
	if opts.memprofile != "" && !opts.phases[phaseMemory] && !opts.phases[phaseLate] {
		if err := writeProfile("heap", opts.memprofile); err != nil {
			return nil, err
		}
	}
	b.info.wall = time.Since(started)
	b.note("wall time %v", b.info.wall.Round(time.Millisecond))
	return b, nil
}

// raiseFileLimit raises the soft limit of open files to the hard limit (the
// emulator child inherits it) and says what it did. Go raises the soft limit
// of its own process at start, but children get the original one back unless
// the program sets it itself.
func raiseFileLimit(need uint64) string {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Sprintf("open files limit unknown (%v); the memory phase needs about %d", err, need)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Sprintf("cannot raise the open files limit to %d (%v); the memory phase needs about %d", lim.Max, err, need)
	}
	if lim.Cur < need {
		return fmt.Sprintf("open files limit %d (the hard limit) is below the %d the memory phase needs; raise it (ulimit -Hn) or lower -listeners", lim.Cur, need)
	}
	return fmt.Sprintf("open files limit raised to %d", lim.Cur)
}

// chatHTTPClient is the chat client's default HTTP client (chat's
// newHTTPClient) with idle connections per host changed, to measure that
// setting.
func chatHTTPClient(idlePerHost int) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          max(100, idlePerHost),
		MaxIdleConnsPerHost:   idlePerHost,
		IdleConnTimeout:       90 * time.Second,
		ReadBufferSize:        1 << 10,
		WriteBufferSize:       1 << 10,
	}}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pct is used as a percentage of over.
func pct(used, over time.Duration) float64 {
	if over <= 0 {
		return 0
	}
	return 100 * used.Seconds() / over.Seconds()
}

// rounded returns the figures with the precision they have.
func (r results) rounded() results {
	round := func(v float64, digits int) float64 {
		p := math.Pow10(digits)
		return math.Round(v*p) / p
	}
	return results{
		DirectP50:     round(r.DirectP50, 3),
		DirectP99:     round(r.DirectP99, 3),
		BridgeP50:     round(r.BridgeP50, 3),
		BridgeP99:     round(r.BridgeP99, 3),
		PerSec1:       round(r.PerSec1, 0),
		PerSec100:     round(r.PerSec100, 0),
		PerSec1000:    round(r.PerSec1000, 0),
		ListenerBytes: round(r.ListenerBytes, 0),
		DrainSeconds:  round(r.DrainSeconds, 2),

		LateP50:         round(r.LateP50, 3),
		LateP99:         round(r.LateP99, 3),
		LateSweepP99:    round(r.LateSweepP99, 2),
		ListenerBytesH2: round(r.ListenerBytesH2, 0),
		LateLost:        r.LateLost,

		PgPerSec100R1:   round(r.PgPerSec100R1, 0),
		PgPerSec100R2:   round(r.PgPerSec100R2, 0),
		PgPerSec100R3:   round(r.PgPerSec100R3, 0),
		FailoverSeconds: round(r.FailoverSeconds, 2),
		ReplicaLost:     r.ReplicaLost,
		ReplicaDoubled:  r.ReplicaDoubled,
	}
}

// Targets of the issue, on a 2-core machine.
const (
	targetAddP50    = 1.0      // ms added to the direct p50
	targetAddP99    = 5.0      // ms added to the direct p99
	targetListener  = 40 << 10 // bytes
	targetDrainSecs = 30.0
	targetLateP99   = 1.0      // s, with webhooks
	targetSweepP99  = 60.0     // s, with sweeps alone
	targetStreamH2  = 25 << 10 // bytes
	// One replica on PostgreSQL makes at least this share of the messages
	// per second of SQLite, in 100 rooms.
	targetPgShare  = 0.5
	targetFailover = 15.0 // s, with the default lease_ttl
)

// targetPerSec are the messages per second of the three throughput runs:
// at least 2,000 in one room, 3,000 in 100 and in 1,000 rooms (the default
// -rooms).
var targetPerSec = [3]float64{2000, 3000, 3000}

// table writes the figures, the targets and whether each is met.
func (b *bench) table(w io.Writer) error {
	o, r, in := b.opts, b.res, b.info
	verdict := func(ran, ok bool) string {
		switch {
		case !ran:
			return "not run"
		case ok:
			return "met"
		}
		return "MISSED"
	}
	fmt.Fprintf(w, "botbridge-bench on %d CPUs, %s %s/%s; wall time %v\n", runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH, in.wall.Round(time.Second))
	fmt.Fprintf(w, "Slack adapter over Socket Mode with post_interval %v (the service's default 1s paces each channel to one post a second), thinking %s;\n", o.postInterval, o.thinking)
	fmt.Fprintf(w, "SQLite store (sync %s) on a temporary directory; emulator (echo bot) in a child process; %s.\n", o.sync, in.rlimit)
	if o.phases[phaseReplicas] {
		fmt.Fprintln(w, "Replicas phase: each replica a child process on one PostgreSQL database; their CPU is not in the phase table.")
	}
	if in.others >= 0 && in.wall > 0 {
		fmt.Fprintf(w, "Other processes used %.0f%% of the machine's CPU meanwhile (%.0f CPU seconds); the figures need it idle.\n",
			100*in.others.Seconds()/(in.wall.Seconds()*float64(runtime.NumCPU())), in.others.Seconds())
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "what\tfigure\ttarget\t")
	lat := o.phases[phaseLatency]
	fmt.Fprintf(tw, "round trip, chat client alone, p50 / p99 (%d)\t%.2f / %.2f ms\t\t\n", o.n, r.DirectP50, r.DirectP99)
	fmt.Fprintf(tw, "round trip through the bridge, p50 / p99 (%d)\t%.2f / %.2f ms\t\t\n", o.n, r.BridgeP50, r.BridgeP99)
	fmt.Fprintf(tw, "  added by the bridge, p50\t%+.2f ms\t< %.0f ms\t%s\n", r.BridgeP50-r.DirectP50, targetAddP50, verdict(lat, r.BridgeP50-r.DirectP50 < targetAddP50))
	fmt.Fprintf(tw, "  added by the bridge, p99\t%+.2f ms\t< %.0f ms\t%s\n", r.BridgeP99-r.DirectP99, targetAddP99, verdict(lat, r.BridgeP99-r.DirectP99 < targetAddP99))
	for i, rate := range []float64{r.PerSec1, r.PerSec100, r.PerSec1000} {
		fmt.Fprintf(tw, "messages per second, %d room(s), %d messages\t%.0f\t≥ %.0f\t%s\n", o.rooms[i], o.msgs, rate, targetPerSec[i], verdict(o.phases[phaseThroughput], rate >= targetPerSec[i]))
	}
	fmt.Fprintf(tw, "memory per open listener, %d open\t%.1f KB\t< %d KB\t%s\n", o.listeners, r.ListenerBytes/1024, targetListener>>10, verdict(o.phases[phaseMemory], r.ListenerBytes < targetListener))
	fmt.Fprintf(tw, "  heap / stack / goroutines / open connections per listener\t%.1f KB / %.1f KB / %.2f / %.4f\t\t\n", in.heapPerListener/1024, in.stackPerListener/1024, in.goroutinesPerListener, in.filesPerListener)
	fmt.Fprintf(tw, "drain %d queued messages in %d rooms after a restart\t%.2f s\t< %.0f s\t%s\n", o.backlog, o.backlogRooms, r.DrainSeconds, targetDrainSecs, verdict(o.phases[phaseDrain], r.DrainSeconds < targetDrainSecs))
	late, lt := o.phases[phaseLate], in.late
	fmt.Fprintf(tw, "late reply by webhook, p50 / p99 (%d of %d idle conversations)\t%.3f / %.3f s\t≤ %.0f s\t%s\n",
		o.lateReplies, o.lateConvs, r.LateP50, r.LateP99, targetLateP99, verdict(late, r.LateP99 <= targetLateP99))
	fmt.Fprintf(tw, "late reply by sweeps alone, p99 (sweep_budget %d a minute)\t%.1f s\t≤ %.0f s\t%s\n",
		b.sweepBudget(), r.LateSweepP99, targetSweepP99, verdict(late, r.LateSweepP99 <= targetSweepP99))
	fmt.Fprintf(tw, "late replies lost, both runs (not posted %v after the bot sent them)\t%d\t0\t%s\n",
		o.lateDeadline, r.LateLost, verdict(late, r.LateLost == 0))
	fmt.Fprintf(tw, "memory per open stream over HTTP/2 (%s), %d open\t%.1f KB\t≤ %d KB\t%s\n",
		o.h2, o.listeners, r.ListenerBytesH2/1024, targetStreamH2>>10, verdict(late, r.ListenerBytesH2 <= targetStreamH2))
	fmt.Fprintf(tw, "  heap / stack / goroutines / open connections per stream\t%.1f KB / %.1f KB / %.2f / %.4f\t\t\n", lt.h2.heap/1024, lt.h2.stack/1024, lt.h2.goroutines, lt.h2.files)
	reps := o.phases[phaseReplicas]
	for i, rate := range []float64{r.PgPerSec100R1, r.PgPerSec100R2, r.PgPerSec100R3}[:o.replicas] {
		if i > 0 || !o.phases[phaseThroughput] {
			fmt.Fprintf(tw, "messages per second, %d replica(s) on PostgreSQL, %d rooms, %d messages\t%.0f\t\t\n", i+1, pgRooms, o.msgs, rate)
			continue
		}
		fmt.Fprintf(tw, "messages per second, %d replica(s) on PostgreSQL, %d rooms, %d messages\t%.0f\t≥ %.0f (half of SQLite's)\t%s\n",
			i+1, pgRooms, o.msgs, rate, targetPgShare*r.PerSec100, verdict(reps, rate >= targetPgShare*r.PerSec100))
	}
	fmt.Fprintf(tw, "failover: kill -9 of the replica owning %d busy rooms → their next reply (lease_ttl %v)\t%.2f s\t≤ %.0f s\t%s\n",
		failoverBusy, o.leaseTTL, r.FailoverSeconds, targetFailover, verdict(reps && o.replicas > 1, r.FailoverSeconds <= targetFailover))
	fmt.Fprintf(tw, "  of which the time its leases had left at the kill (then the others may take them)\t%.2f s\t\t\n", in.failoverLeft.Seconds())
	fmt.Fprintf(tw, "replicas: messages lost / replies doubled\t%d / %d\t0 / 0\t%s\n",
		r.ReplicaLost, r.ReplicaDoubled, verdict(reps, r.ReplicaLost == 0 && r.ReplicaDoubled == 0))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\twall s\tCPU s, this process\tCPU s, emulator\tChat API requests\t")
	for _, p := range allPhases {
		if st, ok := in.phases[p]; ok {
			fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t%d\t\n", p, st.wall.Seconds(), st.cpu.self.Seconds(), st.cpu.child.Seconds(), st.requests)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if o.phases[phaseThroughput] {
		fmt.Fprint(w, "\nper message in the throughput runs: CPU of this process + the emulator's, Chat API requests:\n")
		for i, c := range in.perMsg {
			fmt.Fprintf(w, "  %d rooms: %.2f + %.2f ms, %.1f requests\n", o.rooms[i], ms(c.cpu.self), ms(c.cpu.child), c.requests)
		}
		if o.cpuSplit {
			writeSplit(w, o.rooms, in.perMsg)
		}
	}
	if o.phases[phaseDrain] {
		fmt.Fprintf(w, "drain after the restart: %.1f Chat API requests per queued message\n", in.drainRequests)
	}
	if late {
		h, sw := lt.hook, lt.sweep
		fmt.Fprintf(w, "late replies by webhook: %d streams open while idle; webhooks delivered %d, failed %d, dropped %d, discarded %d; %d posts too many;\n",
			h.streams, h.hooks.delivered, h.hooks.failed, h.hooks.dropped, h.hooks.discarded, h.extra)
		fmt.Fprintf(w, "  from the bot's sends to the last post (%.2f s), %.0f CPU ms in this process and %.0f in the emulator (%.1f ms per reply)\n",
			h.window.Seconds(), ms(h.cpu.self), ms(h.cpu.child), ms(h.cpu.self)/float64(max(1, len(h.delays))))
		fmt.Fprintf(w, "  each late reply, p50 / p99: from the bot's send to its webhook reaching the bridge %.0f / %.0f ms, in the webhook handler (stored) %.0f / %.0f ms, from the handler's answer to the post %.0f / %.0f ms\n",
			percentile(h.toHook, 0.5), percentile(h.toHook, 0.99), percentile(h.inHook, 0.5), percentile(h.inHook, 0.99),
			percentile(h.toPost, 0.5), percentile(h.toPost, 0.99))
		fmt.Fprintf(w, "late replies by sweeps: streams closed after %v idle (bridge.listener_idle); from the bot's sends to the last post (%.1f s), %.0f Chat API requests a minute and %.0f%% + %.0f%% of a core (this process + the emulator); %d posts too many\n",
			sweepListenerIdle, sw.window.Seconds(), sw.perMinute, pct(sw.cpu.self, sw.window), pct(sw.cpu.child, sw.window), sw.extra)
		fmt.Fprintf(w, "HTTP/2 run: the emulator accepted %d connections in all (both bridge runs, %d streams each)\n", lt.h2conns, o.listeners)
		fmt.Fprintln(w, "  (the late phase's CPU of the emulator leaves out the HTTP/2 run's own emulator child)")
	}
	return nil
}
