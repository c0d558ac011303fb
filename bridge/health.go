package bridge

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// health knows which bots fail to answer. The sender and the receiver report
// what they see; while a bot is down, the engine asks it every
// ProbeInterval whether it answers again (GET /hello/). When it does, or
// when any call to it succeeds, the parts that wait out a backoff for it are
// told to try again at once (onUp), so that a Botpress outage ends for every
// conversation when it ends for one.
type health struct {
	log *slog.Logger

	mu   sync.Mutex
	down map[string]bool
	onUp []func(bot string)
}

func newHealth(log *slog.Logger) *health {
	return &health{log: log, down: make(map[string]bool)}
}

// OnUp registers fn to run (on the caller's goroutine, outside any lock)
// when a bot that was down answers again. Call it before the parts start.
func (h *health) OnUp(fn func(bot string)) { h.onUp = append(h.onUp, fn) }

// Down records that a call to bot failed in a way another call may not.
func (h *health) Down(bot string) {
	h.mu.Lock()
	h.down[bot] = true
	h.mu.Unlock()
}

// Up records that bot answered, and wakes what waits for it if it was down.
func (h *health) Up(bot string) {
	h.mu.Lock()
	was := h.down[bot]
	delete(h.down, bot)
	h.mu.Unlock()
	if was {
		for _, fn := range h.onUp {
			fn(bot)
		}
	}
}

// Downs returns the bots that are down, sorted.
func (h *health) Downs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for b := range h.down {
		out = append(out, b)
	}
	slices.Sort(out)
	return out
}

// probe asks the bots that are down, every interval, whether they answer
// again, until ctx ends.
func (h *health) probe(ctx context.Context, bots map[string]*bot, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, name := range h.Downs() {
			b := bots[name]
			if b == nil {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, interval)
			err := b.API.Hello(pctx)
			cancel()
			if err == nil {
				h.log.Info("Botpress answers again; retrying now", LogBot, name)
				h.Up(name)
			}
		}
	}
}
