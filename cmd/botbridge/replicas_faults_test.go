package main_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/store/postgres/pgtest"
)

// The fault test of several replicas runs three botbridge processes on one
// PostgreSQL with the fake Slack, which spreads events over their Socket
// Mode connections as Slack does, and the Chat API emulator; people talk
// in 100 channels while replicas are killed, restarted, stalled, and
// PostgreSQL restarts. The promise is the one of a single process: every
// message acknowledged to Slack reaches the bot once, and every answer is
// posted once, in order per room.

// replicaLease is the replicas' lease time to live in the test: the
// stalled replica stops longer than it.
const replicaLease = 6 * time.Second

// writeReplicaConfig writes the configuration of the replicas on the
// PostgreSQL database of dsn, and returns its path.
func (w *world) writeReplicaConfig(dsn string) string {
	w.t.Helper()
	body := fmt.Sprintf(`log:
  level: info
  format: json
store:
  driver: postgres
  dsn: %s
http:
  admin_addr: 127.0.0.1:0
bridge:
  drain_timeout: 2s
  lease_ttl: %s
  lease_renew: 2s
bots:
  - name: %s
    url: %s
    encryption_key: ${BOTBRIDGE_TEST_KEY}
routes:
  - bot: %s
    platform: slack
    answer: all
    scope: room
slack:
  bot_token: ${SLACK_BOT_TOKEN}
  app_token: ${SLACK_APP_TOKEN}
  api_url: %s
  post_interval: 1ms
`, dsn, replicaLease, botName, w.em.URL(), botName, w.fake.APIURL())
	path := filepath.Join(w.dir, "replica.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return path
}

// shardsByOwner counts the shards each replica holds now.
func shardsByOwner(t *testing.T, dsn string) map[string]int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	rows, err := conn.Query(t.Context(), `SELECT owner, count(*) FROM leases
		WHERE name LIKE 'shard:%' AND expires_ms > (extract(epoch FROM clock_timestamp()) * 1000)::bigint GROUP BY owner`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for rows.Next() {
		var o string
		var n int
		if err := rows.Scan(&o, &n); err != nil {
			t.Fatal(err)
		}
		out[o] = n
	}
	return out
}

// metric returns the value of a metric without labels in the process's
// /metrics.
func (p *proc) metric(ctx context.Context, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := p.w.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /metrics", name)
}

// signal sends sig to the process.
func (p *proc) signal(sig syscall.Signal) {
	p.w.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.w.t.Fatalf("run %d: %v: %v", p.run, sig, err)
	}
	p.w.logs.note(p.run, "sent "+sig.String())
}

func TestReplicasOnPostgresLoseAndDoubleNothing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	pg := pgtest.Start(t)
	dsn := pg.DSN(t)
	var channels []string
	for i := range 100 {
		channels = append(channels, fmt.Sprintf("C0REP%03d", i))
	}
	// Slack gives an unacknowledged event three more tries, 7 s apart: a
	// message said as PostgreSQL goes down is stored at a try after it is
	// back.
	w := newWorld(t, worldOptions{channels: channels, redeliverAfter: 7 * time.Second, spread: true})
	cfg := w.writeReplicaConfig(dsn)
	ps := []*proc{w.start(cfg), w.start(cfg), w.start(cfg)}
	for _, p := range ps {
		p.mustBeReady(ctx)
	}

	tr := w.newTraffic(2*time.Second, 0)
	tr.start(ctx, channels...)
	during(t, ctx, 3*time.Second)
	t.Run("status and metrics show the replicas and their shards", func(t *testing.T) {
		// Shards move while the replicas come up; once they settle, every
		// shard is held.
		var (
			code  int
			out   string
			total int
		)
		for range 30 {
			code, out = w.runOnce(ctx, "status", "-config", cfg)
			total = 0
			for _, p := range ps {
				n, err := p.metric(ctx, "botbridge_leases_held")
				if err != nil {
					t.Fatal(err)
				}
				total += int(n)
			}
			if code == 0 && strings.Contains(out, "replicas alive: 3") && strings.Contains(out, "shards held by no one: none") && total == 64 {
				break
			}
			during(t, ctx, 500*time.Millisecond)
		}
		if code != 0 || !strings.Contains(out, "replicas alive: 3") || !strings.Contains(out, "shards held by no one: none") {
			t.Errorf("botbridge status: exit %d:\n%s\nwant 3 replicas alive, every shard held", code, out)
		}
		if total != 64 {
			t.Errorf("botbridge_leases_held of the replicas sum to %d, want the 64 shards", total)
		}
		t.Logf("botbridge status:\n%s", out)
	})

	// Two replicas die, one after the other; the third has all the rooms
	// within the lease time. Then they come back.
	ps[0].kill()
	during(t, ctx, 4*time.Second)
	ps[1].kill()
	during(t, ctx, replicaLease+2*time.Second)
	ps[0], ps[1] = w.start(cfg), w.start(cfg)
	ps[0].mustBeReady(ctx)
	ps[1].mustBeReady(ctx)
	during(t, ctx, 4*time.Second)

	// One stalls past its lease (a GC pause, a VM frozen): the others take
	// its rooms over; when it wakes it must post nothing stale. Slack is
	// slow to take posts just then (Retry-After 4 s), so that it stalls
	// with posts waiting to be tried again, which it must not make when it
	// wakes. It stalls while they wait, the talk held: a request already
	// handed to the network when a process freezes goes out when it wakes,
	// which no lease can stop (see the README).
	stalled := ps[2]
	t.Logf("shards by replica before the stall: %v", shardsByOwner(t, dsn))
	limited := func(st *slacktest.State) int {
		n := 0
		for _, c := range st.CallsTo("chat.postMessage") {
			if c.Error == "ratelimited" {
				n++
			}
		}
		return n
	}
	already := limited(w.fake.Snapshot())
	w.fake.RateLimit("chat.postMessage", 1000, 4*time.Second)
	// 24 posts of the three replicas refused, each waiting 4 s to try
	// again: the stalled replica's among them, but for a chance of 2/3^24.
	if err := w.fake.WaitFor(ctx, func(st *slacktest.State) bool { return limited(st)-already >= 24 }); err != nil {
		t.Fatal(err)
	}
	tr.hold()
	during(t, ctx, 1500*time.Millisecond) // the posts on their way are refused, and wait
	stalled.signal(syscall.SIGSTOP)
	w.fake.RateLimit("chat.postMessage", 0, 0)
	tr.release()
	during(t, ctx, replicaLease+3*time.Second)
	stalled.signal(syscall.SIGCONT)
	during(t, ctx, 4*time.Second)

	// PostgreSQL restarts, down for 10 s.
	before := tr.total()
	w.logs.note(0, "PostgreSQL stopped")
	pg.Restart(t, 10*time.Second)
	w.logs.note(0, "PostgreSQL started again")
	during(t, ctx, 5*time.Second)

	tr.stop(ctx)
	w.waitAnswered(ctx, tr.sent)
	for _, p := range ps {
		p.stop()
	}
	w.verify(tr.sent)
	t.Logf("%d messages in %d channels (%d said from the PostgreSQL restart on); replicas killed 2, stalled 1",
		tr.total(), len(channels), tr.total()-before)
	if lost := w.logs.find(`"msg":"lease past its deadline`); len(lost) == 0 {
		t.Error("no replica stopped a lease's work at its deadline: the stall did not outlast the lease")
	}
	t.Logf("the stalled run's lease lines: %d", len(w.logs.find("lease")))
}
