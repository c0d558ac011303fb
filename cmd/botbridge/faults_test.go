package main_test

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/adapters/slack/slacktest"
)

// Each fault test runs the real botbridge process on its real store file
// against the fake Slack and the Chat API emulator, with people talking in
// several channels at once, breaks something while they talk, and then
// checks the promise of the README: every message acknowledged to Slack
// reaches the bot once, and every answer is posted once, in order per room.
//
// The tests run in parallel with each other: the Botpress outage lasts a
// real minute (the bridge's retry settings are not in its configuration),
// and the others fit beside it.

func TestBotpressDownForAMinuteLosesNothing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	channels := []string{"C0DOWN1", "C0DOWN2", "C0DOWN3"}
	w := newWorld(t, worldOptions{channels: channels, redeliverAfter: time.Second})
	p := w.start(w.writeConfig(config{}))
	p.mustBeReady(ctx)

	tr := w.newTraffic(200*time.Millisecond, 0)
	tr.start(ctx, channels...)
	during(t, ctx, 2*time.Second)
	until := time.Now().Add(time.Minute)
	w.em.FailRequests(http.StatusServiceUnavailable, 0, until)
	before := tr.total()
	t.Run("readiness names the bot while Botpress fails", func(t *testing.T) {
		r, err := p.waitReady(ctx, func(r readiness) bool { return r.Status == http.StatusServiceUnavailable })
		if err != nil || !strings.Contains(r.Checks["bot."+botName], "503") || r.Checks["store"] != "ok" {
			t.Errorf("/readyz: %d %v, %v; want 503 with bot.%s naming the 503 and the store ok", r.Status, r.Checks, err, botName)
		}
		t.Logf("/readyz: %d %v", r.Status, r.Checks)
	})
	during(t, ctx, time.Until(until))
	sentDuring := tr.total() - before
	during(t, ctx, 2*time.Second)
	tr.stop(ctx)
	if sentDuring < 100 {
		t.Errorf("only %d messages were said while Botpress failed", sentDuring)
	}
	end := time.Now()
	w.waitAnswered(ctx, tr.sent)
	t.Logf("%d messages said while Botpress failed; all answered %v after it came back", sentDuring, time.Since(end).Round(time.Millisecond))
	p.mustBeReady(ctx)
	p.stop()
	w.verify(tr.sent)
}

func TestKill9UnderTrafficLosesAndDoublesNothing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	channels := []string{"C0KILL1", "C0KILL2", "C0KILL3", "C0KILL4"}
	w := newWorld(t, worldOptions{channels: channels, redeliverAfter: time.Second})
	// At debug level the log says which run posted which reply, which a
	// failure shows for the replies posted twice.
	cfg := w.writeConfig(config{logLevel: "debug"})
	p := w.start(cfg)
	p.mustBeReady(ctx)

	seed := rand.Uint64()
	rnd := rand.New(rand.NewPCG(seed, seed))
	t.Logf("kill points from seed %d", seed)
	tr := w.newTraffic(25*time.Millisecond, 0)
	tr.start(ctx, channels...)
	const kills = 5
	for i := range kills {
		// Somewhere between a quiet moment and the middle of a burst of
		// sends, posts and store writes.
		wait := time.Duration(100+rnd.IntN(2900)) * time.Millisecond
		during(t, ctx, wait)
		before := tr.total()
		p.kill()
		t.Logf("kill %d after %v, %d messages sent so far", i+1, wait, before)
		// Slack's API takes its time (or rate-limits a burst of restarts);
		// here its first answer to the new process comes a second late.
		w.fake.RateLimit("auth.test", 1, time.Second)
		p = w.start(cfg)
	}
	during(t, ctx, 2*time.Second)
	tr.stop(ctx)
	w.waitAnswered(ctx, tr.sent)
	p.stop()
	w.verify(tr.sent)
	t.Logf("%d messages in %d channels, %d kills; after a restart, %d sends were found at Botpress and %d posts in Slack",
		tr.total(), len(channels), kills,
		len(w.logs.find("message was sent before the restart")), len(w.logs.find("reply was posted before the restart")))
}

func TestStreamsCutEveryFewSecondsLoseAndDoubleNothing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	channels := []string{"C0CUT1", "C0CUT2", "C0CUT3"}
	w := newWorld(t, worldOptions{channels: channels, redeliverAfter: time.Second})
	p := w.start(w.writeConfig(config{}))
	p.mustBeReady(ctx)

	tr := w.newTraffic(25*time.Millisecond, 0)
	tr.start(ctx, channels...)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	cut := 0
	for range 8 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
		cut += w.em.CutStreams()
	}
	tr.stop(ctx)
	if cut < 8 {
		t.Errorf("only %d streams were open to cut in 8 cuts", cut)
	}
	w.waitAnswered(ctx, tr.sent)
	p.stop()
	w.verify(tr.sent)
	t.Logf("%d messages in %d channels, %d streams cut", tr.total(), len(channels), cut)
}

func TestSlackConnectionDroppedAndRefusedLosesNothing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	channels := []string{"C0NET1", "C0NET2", "C0NET3"}
	quiet := []string{"C0QUIET1", "C0QUIET2", "C0QUIET3", "C0QUIET4", "C0QUIET5", "C0QUIET6"}
	w := newWorld(t, worldOptions{channels: append(channels, quiet...), redeliverAfter: time.Second})
	p := w.start(w.writeConfig(config{}))
	p.mustBeReady(ctx)

	tr := w.newTraffic(25*time.Millisecond, 0)
	tr.start(ctx, channels...)
	during(t, ctx, 2*time.Second)
	w.fake.RefuseConnections(true)
	if n := w.fake.DropConnections(); n == 0 {
		t.Fatal("no Socket Mode connection to drop")
	}
	// While Slack refuses the bridge, people in other channels speak up;
	// Slack holds their messages until the app connects again.
	tr.once(ctx, quiet...)
	t.Run("readiness names Slack while it refuses the connection", func(t *testing.T) {
		r, err := p.waitReady(ctx, func(r readiness) bool { return r.Status == http.StatusServiceUnavailable })
		if err != nil || !strings.Contains(r.Checks["adapter.slack"], "slack") || r.Checks["store"] != "ok" {
			t.Errorf("/readyz: %d %v, %v; want 503 with adapter.slack saying why", r.Status, r.Checks, err)
		}
		t.Logf("/readyz: %d %v", r.Status, r.Checks)
	})
	during(t, ctx, 5*time.Second)
	refused := 0
	for _, c := range w.fake.Snapshot().CallsTo("apps.connections.open") {
		if c.Error != "" {
			refused++
		}
	}
	if refused == 0 {
		t.Error("the bridge never tried to connect while Slack refused")
	}
	for _, ch := range quiet {
		if got := w.fake.Snapshot().Messages[ch]; len(got) != 1 {
			t.Errorf("channel %s has %d messages during the outage, want the person's 1", ch, len(got))
		}
	}
	w.fake.RefuseConnections(false)
	back := time.Now()
	p.mustBeReady(ctx)
	t.Logf("connected again %v after Slack stopped refusing", time.Since(back).Round(time.Millisecond))
	during(t, ctx, 2*time.Second)
	tr.stop(ctx)
	w.waitAnswered(ctx, tr.sent)
	p.stop()
	w.verify(tr.sent)
	t.Logf("%d messages, %d refused connection attempts", tr.total(), refused)
}

func TestFullStoreAcknowledgesNothingItCannotStore(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	channels := []string{"C0DISK1", "C0DISK2", "C0DISK3"}
	// Slack retries an unacknowledged event three times; 5 s apart, that
	// leaves 15 s to raise the cap and restart before it gives up.
	w := newWorld(t, worldOptions{channels: channels, redeliverAfter: 5 * time.Second})
	// 1 MB holds a few hundred of these 2 KB messages and their answers.
	p := w.start(w.writeConfig(config{maxSizeMB: 1}))
	p.mustBeReady(ctx)

	tr := w.newTraffic(20*time.Millisecond, 2000)
	tr.start(ctx, channels...)
	var refused []string
	err := w.fake.WaitFor(ctx, func(st *slacktest.State) bool {
		w.acks.scan(st)
		refused = w.acks.refused()
		return len(refused) > 0
	})
	if err != nil {
		t.Fatalf("the store never filled up: %v; %d messages sent", err, tr.total())
	}
	t.Logf("store full after %d messages; Slack delivered %v again, unacknowledged", tr.total(), refused)

	t.Run("the log says the store is full", func(t *testing.T) {
		lines := w.logs.find("database or disk is full")
		if len(lines) == 0 {
			t.Fatal("no log line says the disk is full")
		}
		t.Logf("%d lines, the first: %s", len(lines), lines[0])
	})
	t.Run("readiness names the store and SQLite's error", func(t *testing.T) {
		// /readyz reuses the store's check for 2 s (storeCheckTTL).
		wait, stop := context.WithTimeout(ctx, 5*time.Second)
		defer stop()
		r, err := p.waitReady(wait, func(r readiness) bool { return r.Status == http.StatusServiceUnavailable })
		if err != nil || !strings.Contains(r.Checks["store"], "database or disk is full") {
			t.Errorf("/readyz with the store full: %d %v (%v); want 503 with the store check naming SQLite's error", r.Status, r.Checks, err)
		}
	})
	t.Run("while the store is full, what it refused stays unacknowledged", func(t *testing.T) {
		for _, k := range refused {
			if w.acks.isAcked(k) {
				t.Errorf("message %s was acknowledged while the store was full", k)
			}
		}
	})

	// The operator raises the cap and restarts: Slack's next retries of the
	// refused messages get in, and everything acknowledged is answered
	// (an acknowledged message the store lost would be missing here).
	p.stop()
	p = w.start(w.writeConfig(config{maxSizeMB: 64}))
	p.mustBeReady(ctx)
	during(t, ctx, 2*time.Second)
	tr.stop(ctx)
	w.waitAnswered(ctx, tr.sent)
	p.stop()
	w.verify(tr.sent)
	t.Logf("%d messages", tr.total())

	t.Run("a cap below the store's size stops the start with what to do", func(t *testing.T) {
		code, out := w.runOnce(ctx, "run", "-config", w.writeConfig(config{maxSizeMB: 1}))
		if code != 1 || !strings.Contains(out, "raise store.max_size_mb") {
			t.Errorf("exit %d, output:\n%s\nwant exit 1 saying to raise store.max_size_mb", code, out)
		}
	})
	t.Run("a negative cap is a configuration error", func(t *testing.T) {
		code, out := w.runOnce(ctx, "check-config", "-config", w.writeConfig(config{maxSizeMB: -1}))
		if code != 1 || !strings.Contains(out, "store.max_size_mb: must not be negative") {
			t.Errorf("exit %d, output:\n%s\nwant exit 1 naming store.max_size_mb", code, out)
		}
	})
}
