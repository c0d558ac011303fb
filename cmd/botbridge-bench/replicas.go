package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/store/postgres"
	"github.com/botbridge/botbridge/store/postgres/pgtest"
)

// The replicas phase (-store postgres) runs botbridge as several replicas
// on one PostgreSQL database, each a child process of the bench (this
// binary again) with an engine, the PostgreSQL store and its own Socket
// Mode connection to the fake Slack, which spreads the events over the
// connections as Slack does. It measures the throughput of 1 to -replicas
// replicas in 100 rooms, and the failover: the replica that owns 50 busy
// rooms is killed (SIGKILL) and the time until each of those rooms has its
// next reply posted is taken. Every message of every run is checked to be
// answered once.

// childReplica is the value of childEnv that makes the binary a replica.
const childReplica = "replica"

// pgRooms is how many rooms the replicas' runs talk in (the 100 of
// pg_msgs_per_sec_100_rN); failoverBusy of them are the killed replica's
// in the failover run.
const (
	pgRooms      = 100
	failoverBusy = 50
)

// failoverPace is how often each busy room of the failover run gets a
// message: 100 rooms at one a second each keep the replicas busy without
// queueing faster than they answer.
const failoverPace = time.Second

// replicaSpec is what the parent tells a replica child, as one JSON line on
// its standard input.
type replicaSpec struct {
	Name         string        `json:"name"`
	DSN          string        `json:"dsn"`
	ChatAPI      string        `json:"chat_api"`
	SlackAPI     string        `json:"slack_api"`
	BotToken     string        `json:"bot_token"`
	AppToken     string        `json:"app_token"`
	PostInterval time.Duration `json:"post_interval"`
	Thinking     string        `json:"thinking"`
	SlackIdle    int           `json:"slack_idle"`
	ChatIdle     int           `json:"chat_idle"`
	LeaseTTL     time.Duration `json:"lease_ttl"`
	LeaseRenew   time.Duration `json:"lease_renew"`
	Verbose      bool          `json:"verbose"`
}

// runReplica runs one replica: it reads its replicaSpec from stdin, runs
// the engine on PostgreSQL, prints "running" on stdout once the engine
// runs, and stops (draining what is in flight, giving its leases up) when
// stdin closes.
func runReplica(stdin io.Reader, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintln(stderr, "botbridge-bench replica:", err)
		return 1
	}
	in := bufio.NewReader(stdin)
	line, err := in.ReadBytes('\n')
	if err != nil {
		return fail(fmt.Errorf("read the spec: %w", err))
	}
	var spec replicaSpec
	if err := json.Unmarshal(line, &spec); err != nil {
		return fail(fmt.Errorf("read the spec: %w", err))
	}
	log := slog.New(slog.DiscardHandler)
	if spec.Verbose {
		log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("replica", spec.Name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, err := postgres.Open(ctx, spec.DSN)
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	var copts []chat.Option
	if spec.ChatIdle > 0 {
		copts = append(copts, chat.WithHTTPClient(chatHTTPClient(spec.ChatIdle)))
	}
	client, err := chat.NewClient(spec.ChatAPI, copts...)
	if err != nil {
		return fail(err)
	}
	signer, err := chat.NewSigner(benchKey)
	if err != nil {
		return fail(err)
	}
	eng, hc, err := newEngine(engineSpec{store: db, slackAPI: spec.SlackAPI, botToken: spec.BotToken, appToken: spec.AppToken,
		postInterval: spec.PostInterval, thinking: spec.Thinking, slackIdle: spec.SlackIdle, client: client, signer: signer,
		log: log, replica: spec.Name, leaseTTL: spec.LeaseTTL, leaseRenew: spec.LeaseRenew}, nil)
	if err != nil {
		return fail(err)
	}
	defer hc.CloseIdleConnections()
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	fmt.Fprintln(stdout, "running")
	stopped := make(chan struct{})
	go func() {
		io.Copy(io.Discard, in)
		close(stopped)
	}()
	select {
	case <-stopped:
		cancel()
		err = <-done
	case err = <-done:
	}
	if err != nil {
		return fail(err)
	}
	return 0
}

// replicaProc is the parent's handle on a replica child.
type replicaProc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.Closer
	exited chan struct{}
}

// startReplica re-executes this binary as a replica of spec and waits until
// its engine runs.
func startReplica(ctx context.Context, spec replicaSpec, stderr io.Writer) (*replicaProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start replica: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+childReplica)
	cmd.Stderr = stderr
	// A replica goes when the bench dies without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start replica: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start replica: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start replica: %w", err)
	}
	p := &replicaProc{name: spec.Name, cmd: cmd, stdin: stdin, exited: make(chan struct{})}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		close(p.exited)
	}()
	b, err := json.Marshal(spec)
	if err == nil {
		_, err = stdin.Write(append(b, '\n'))
	}
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("start replica %s: %w", spec.Name, err)
	}
	select {
	case s := <-line:
		if strings.TrimSpace(s) != "running" {
			p.kill()
			return nil, fmt.Errorf("start replica %s: it said %q", spec.Name, strings.TrimSpace(s))
		}
	case <-ctx.Done():
		p.kill()
		return nil, fmt.Errorf("start replica %s: %w", spec.Name, ctx.Err())
	}
	return p, nil
}

// stop ends the replica as SIGTERM ends the service: it drains what is in
// flight and gives its leases up. It is killed when it takes longer than
// the drain allows.
func (p *replicaProc) stop() {
	p.stdin.Close()
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		p.kill()
	}
}

// kill ends the replica with SIGKILL, as a crash or an OOM kill would, and
// waits until it is gone.
func (p *replicaProc) kill() {
	p.cmd.Process.Kill()
	<-p.exited
	p.stdin.Close()
}

// replicaRun is one run of the phase: a new database, a fake Slack, the
// replicas on them.
type replicaRun struct {
	b     *bench
	db    *postgres.DB
	dsn   string
	drop  func(context.Context) error
	sl    *slackSide
	procs []*replicaProc
	// sent counts the messages said in each channel, by text.
	sent map[string]map[string]int
}

// newReplicaRun makes a database on the server, a fake Slack of opts, and
// n replicas, and waits until they share the shards.
func (b *bench) newReplicaRun(ctx context.Context, srv *pgtest.Server, n int, opts slacktest.Options) (*replicaRun, error) {
	dsn, drop, err := srv.NewDatabase(ctx)
	if err != nil {
		return nil, err
	}
	r := &replicaRun{b: b, dsn: dsn, drop: drop, sent: map[string]map[string]int{}}
	// The parent migrates the database, and reads its leases.
	if r.db, err = postgres.Open(ctx, dsn); err != nil {
		r.close()
		return nil, err
	}
	if r.sl, err = newSlackWith(opts); err != nil {
		r.close()
		return nil, err
	}
	for i := range n {
		if _, err := r.start(ctx, fmt.Sprintf("r%d", i+1)); err != nil {
			r.close()
			return nil, err
		}
	}
	if err := r.settled(ctx, n); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// start starts a replica named name.
func (r *replicaRun) start(ctx context.Context, name string) (*replicaProc, error) {
	o := r.sl.fake.Options()
	b := r.b
	p, err := startReplica(ctx, replicaSpec{Name: name, DSN: r.dsn, ChatAPI: b.emu.API, SlackAPI: r.sl.fake.APIURL(),
		BotToken: o.BotToken, AppToken: o.AppToken, PostInterval: b.opts.postInterval, Thinking: b.opts.thinking,
		SlackIdle: b.opts.slackIdle, ChatIdle: b.opts.chatIdle, LeaseTTL: b.opts.leaseTTL, LeaseRenew: b.opts.leaseTTL / 3,
		Verbose: b.opts.verbose}, b.stderr)
	if err != nil {
		return nil, err
	}
	r.procs = append(r.procs, p)
	return p, nil
}

// close stops the replicas, the fake Slack, and drops the database.
func (r *replicaRun) close() {
	for _, p := range r.procs {
		p.stop()
	}
	if r.sl != nil {
		r.sl.close()
	}
	if r.db != nil {
		r.db.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.drop(ctx); err != nil {
		r.b.note("replicas: %v", err)
	}
}

// shardOwners returns who holds each live shard lease, by the store.
func (r *replicaRun) shardOwners(ctx context.Context) (map[string]string, error) {
	leases, now, err := r.db.Leases(ctx)
	if err != nil {
		return nil, err
	}
	owners := map[string]string{}
	for _, l := range leases {
		if strings.HasPrefix(l.Name, "shard:") && l.Expires.After(now) {
			owners[l.Name] = l.Owner
		}
	}
	return owners, nil
}

// settled waits until n replicas hold every shard between them, as they do
// once the shards have moved to where rendezvous hashing puts them.
func (r *replicaRun) settled(ctx context.Context, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 2*r.b.opts.leaseTTL+30*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		owners, err := r.shardOwners(ctx)
		if err != nil {
			return err
		}
		distinct := map[string]bool{}
		for _, o := range owners {
			distinct[o] = true
		}
		if len(owners) == bridge.Shards && len(distinct) == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d replicas to hold the %d shards (%d held by %d): %w", n, bridge.Shards, len(owners), len(distinct), ctx.Err())
		case <-tick.C:
		}
	}
}

// justRenewed waits until owner renews its shards' leases (their expiry,
// by the store's clock, moves forward), and returns the time they have
// left then.
func (r *replicaRun) justRenewed(ctx context.Context, owner string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*r.b.opts.leaseTTL)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var last time.Time
	for {
		leases, now, err := r.db.Leases(ctx)
		if err != nil {
			return 0, fmt.Errorf("wait for %s to renew its leases: %w", owner, err)
		}
		var until time.Time
		for _, l := range leases {
			if l.Owner == owner && strings.HasPrefix(l.Name, "shard:") && l.Expires.After(until) {
				until = l.Expires
			}
		}
		if !last.IsZero() && until.After(last) {
			return until.Sub(now), nil
		}
		last = until
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("wait for %s to renew its leases: %w", owner, ctx.Err())
		case <-tick.C:
		}
	}
}

// say says text in r's room, and counts it.
func (r *replicaRun) say(ctx context.Context, rm room, text string) error {
	if r.sent[rm.channel] == nil {
		r.sent[rm.channel] = map[string]int{}
	}
	r.sent[rm.channel][text]++
	_, err := r.sl.say(ctx, rm, text)
	return err
}

// sayAll says n messages round robin over rooms, as fast as Socket Mode
// takes them, and counts them; it returns when the last was written.
func (r *replicaRun) sayAll(ctx context.Context, rooms []room, n int, tag string) error {
	for i := range n {
		if err := r.say(ctx, rooms[i%len(rooms)], fmt.Sprintf("%s %d", tag, i)); err != nil {
			return err
		}
	}
	return nil
}

// waitAnswered waits until every room had as many posts as messages said
// in it, or until deadline.
func (r *replicaRun) waitAnswered(ctx context.Context, deadline time.Time) error {
	want := map[string]int{}
	for ch, texts := range r.sent {
		for _, n := range texts {
			want[ch] += n
		}
	}
	o := r.sl.obs
	return o.waitUntil(ctx, deadline, func() bool {
		for ch, n := range want {
			if o.chans[ch].n < n {
				return false
			}
		}
		return true
	}, nil)
}

// tally stops the replicas (they drain what is in flight) and compares what
// the fake Slack was posted with what was said: a message with no reply of
// its text in its room is lost; a reply beyond one per message, or of no
// message, is doubled.
func (r *replicaRun) tally() (lost, doubled int) {
	for _, p := range r.procs {
		p.stop()
	}
	r.procs = nil
	posted := map[string]map[string]int{}
	for _, c := range r.sl.fake.Snapshot().CallsTo("chat.postMessage") {
		if c.Error != "" {
			continue
		}
		ch := c.Args.Get("channel")
		if posted[ch] == nil {
			posted[ch] = map[string]int{}
		}
		posted[ch][c.Args.Get("text")]++
	}
	for ch, texts := range r.sent {
		for text, n := range texts {
			got := posted[ch][text]
			lost += max(0, n-got)
			doubled += max(0, got-n)
		}
	}
	for ch, texts := range posted {
		for text, n := range texts {
			if r.sent[ch][text] == 0 {
				doubled += n
			}
		}
	}
	return lost, doubled
}

// replicas runs the phase: the throughput of 1 to opts.replicas replicas,
// then, with two or more, the failover.
func (b *bench) replicas(ctx context.Context) error {
	srv := &pgtest.Server{Existing: b.opts.pgDSN}
	if err := srv.Open(); err != nil {
		return err
	}
	defer func() {
		if err := srv.Stop(); err != nil {
			b.note("replicas: %v", err)
		}
	}()
	out := []*float64{&b.res.PgPerSec100R1, &b.res.PgPerSec100R2, &b.res.PgPerSec100R3}
	for n := 1; n <= b.opts.replicas; n++ {
		rate, err := b.replicaThroughput(ctx, srv, n)
		if err != nil {
			return fmt.Errorf("%d replicas: %w", n, err)
		}
		*out[n-1] = rate
	}
	if b.opts.replicas < 2 {
		b.note("replicas: no failover with one replica")
		return nil
	}
	return b.failover(ctx, srv, b.opts.replicas)
}

// replicaThroughput is the throughput phase's run for n replicas on
// PostgreSQL in pgRooms rooms.
func (b *bench) replicaThroughput(ctx context.Context, srv *pgtest.Server, n int) (float64, error) {
	r, err := b.newReplicaRun(ctx, srv, n, slacktest.Options{Spread: true})
	if err != nil {
		return 0, err
	}
	defer r.close()
	rs := r.sl.addDMs(fmt.Sprintf("P%d", n), pgRooms)
	if err := r.sayAll(ctx, rs, len(rs), "warm up"); err != nil {
		return 0, err
	}
	if _, err := r.sl.obs.waitPosts(ctx, len(rs), b.note); err != nil {
		return 0, err
	}
	base, _ := r.sl.obs.counts()
	msgs := b.opts.msgs
	start := time.Now()
	if err := r.sayAll(ctx, rs, msgs, "load"); err != nil {
		return 0, err
	}
	end, err := r.sl.obs.waitPosts(ctx, base+msgs, b.note)
	if err != nil {
		return 0, err
	}
	rate := float64(msgs) / end.Sub(start).Seconds()
	lost, doubled := r.tally()
	b.res.ReplicaLost += lost
	b.res.ReplicaDoubled += doubled
	b.note("replicas: %d on PostgreSQL, %d rooms: %d messages in %v: %.0f msgs/s; %d lost, %d doubled",
		n, pgRooms, msgs, end.Sub(start).Round(time.Millisecond), rate, lost, doubled)
	return rate, nil
}

// failover runs n replicas with traffic in 100 rooms, failoverBusy of them
// in shards the first replica holds, kills that replica with SIGKILL just
// after it renewed its leases (the worst moment), and measures how long
// until each of its rooms had a reply posted after the kill. The fake Slack delivers an event not acknowledged within 3 s again,
// as Slack does, so that the events the killed replica had taken and not
// stored reach another.
func (b *bench) failover(ctx context.Context, srv *pgtest.Server, n int) error {
	r, err := b.newReplicaRun(ctx, srv, n, slacktest.Options{Spread: true, RedeliverAfter: 3 * time.Second})
	if err != nil {
		return err
	}
	defer r.close()
	owners, err := r.shardOwners(ctx)
	if err != nil {
		return err
	}
	victim := r.procs[0]
	// Rooms enough that failoverBusy of them fall in the victim's shards,
	// and as many in the others'.
	var theirs, others []room
	for _, rm := range r.sl.addDMs("F", 8*pgRooms*n) {
		switch owners[bridge.LeaseOf(bridge.RoomKey{Platform: bridge.PlatformSlack, Room: rm.channel})] {
		case victim.name:
			if len(theirs) < failoverBusy {
				theirs = append(theirs, rm)
			}
		default:
			if len(others) < pgRooms-failoverBusy {
				others = append(others, rm)
			}
		}
	}
	if len(theirs) < failoverBusy || len(others) < pgRooms-failoverBusy {
		return fmt.Errorf("only %d rooms of %s and %d of the others", len(theirs), victim.name, len(others))
	}
	busy := append(slices.Clone(theirs), others...)
	if err := r.sayAll(ctx, busy, len(busy), "warm up"); err != nil {
		return err
	}
	if _, err := r.sl.obs.waitPosts(ctx, len(busy), b.note); err != nil {
		return err
	}
	var chans []string
	for _, rm := range theirs {
		chans = append(chans, rm.channel)
	}
	r.sl.obs.track(chans)

	// Each busy room gets a message every failoverPace, spread over it.
	tctx, stopTalk := context.WithCancel(ctx)
	defer stopTalk()
	talked := make(chan error, 1)
	go labelled("people", func() {
		tick := time.NewTicker(failoverPace / time.Duration(len(busy)))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-tctx.Done():
				talked <- nil
				return
			case <-tick.C:
			}
			if err := r.say(tctx, busy[i%len(busy)], fmt.Sprintf("busy %d", i)); err != nil && tctx.Err() == nil {
				talked <- err
				return
			}
		}
	})
	wait := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case err := <-talked:
			return fmt.Errorf("talk: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := wait(3 * time.Second); err != nil {
		return err
	}
	// The kill comes just after the victim renewed its leases, when they
	// have the most time left (the others may take them only after that):
	// the failover measured is the longest.
	left, err := r.justRenewed(ctx, victim.name)
	if err != nil {
		return err
	}
	killed := time.Now()
	victim.kill()
	r.procs = slices.DeleteFunc(r.procs, func(p *replicaProc) bool { return p == victim })
	b.note("failover: killed %s (SIGKILL), which held %d of its %d busy rooms; %d replicas left", victim.name, len(theirs), len(busy), len(r.procs))

	// The failover is over when each of the victim's rooms had a reply
	// posted after the kill.
	o := r.sl.obs
	var resumed time.Duration
	var waiting int
	err = o.waitUntil(ctx, killed.Add(4*b.opts.leaseTTL+30*time.Second), func() bool {
		resumed, waiting = 0, 0
		for _, ch := range chans {
			cp := o.chans[ch]
			i, _ := slices.BinarySearchFunc(cp.times, killed, func(t, k time.Time) int { return t.Compare(k) })
			if i == len(cp.times) {
				waiting++
				continue
			}
			resumed = max(resumed, cp.times[i].Sub(killed))
		}
		return waiting == 0
	}, nil)
	if err != nil {
		return err
	}
	if waiting > 0 {
		return fmt.Errorf("%d of %s's %d rooms had no reply %v after the kill", waiting, victim.name, len(chans), time.Since(killed).Round(time.Second))
	}
	b.res.FailoverSeconds = resumed.Seconds()
	b.info.failoverLeft = left
	b.note("failover: every room of %s had its next reply %.2f s after the kill; its leases had %.2f s left then, so %.2f s after they expired",
		victim.name, resumed.Seconds(), left.Seconds(), (resumed - left).Seconds())
	if err := wait(3 * time.Second); err != nil {
		return err
	}
	stopTalk()
	if err := <-talked; err != nil {
		return fmt.Errorf("talk: %w", err)
	}
	if err := r.waitAnswered(ctx, time.Now().Add(stallTimeout)); err != nil {
		return err
	}
	said := 0
	for _, texts := range r.sent {
		for _, k := range texts {
			said += k
		}
	}
	lost, doubled := r.tally()
	b.res.ReplicaLost += lost
	b.res.ReplicaDoubled += doubled
	b.note("failover: %d messages said in %d rooms; %d lost, %d doubled", said, len(busy), lost, doubled)
	return nil
}
