// Package logging holds botbridge's one way to keep errors that repeat in a
// loop (a platform down, a flood of bad requests) from flooding the log: a
// Limiter lets the first line of a kind through, then at most one a
// minute, each saying how many it held back.
package logging

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// KeySuppressed is the attribute that counts the lines held back.
const KeySuppressed = "suppressed"

// Limiter rate-limits log lines by kind. The zero value is ready to use,
// with one line a minute per kind and the time package's clock. It is safe
// for concurrent use.
type Limiter struct {
	// Every is the least time between two lines of a kind. Default 1 minute.
	Every time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time

	mu   sync.Mutex
	seen map[string]*state
}

type state struct {
	last       time.Time
	suppressed int
}

// maxKinds is how many kinds the limiter remembers before it forgets those
// whose interval has passed.
const maxKinds = 1000

// Allow reports whether a line of kind may be logged now, and how many
// were held back since the last one.
func (l *Limiter) Allow(kind string) (ok bool, suppressed int) {
	every := l.Every
	if every <= 0 {
		every = time.Minute
	}
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = make(map[string]*state)
	}
	if len(l.seen) > maxKinds {
		for k, s := range l.seen {
			if now.Sub(s.last) >= every {
				delete(l.seen, k)
			}
		}
	}
	s := l.seen[kind]
	if s == nil {
		l.seen[kind] = &state{last: now}
		return true, 0
	}
	if now.Sub(s.last) < every {
		s.suppressed++
		return false, 0
	}
	n := s.suppressed
	s.last, s.suppressed = now, 0
	return true, n
}

// Log logs msg at level on log unless a line of kind was logged within the
// interval; a line that follows held-back ones says how many.
func (l *Limiter) Log(log *slog.Logger, level slog.Level, kind, msg string, args ...any) {
	ok, n := l.Allow(kind)
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, KeySuppressed, n)
	}
	log.Log(context.Background(), level, msg, args...)
}

// Warn is Log at the warning level.
func (l *Limiter) Warn(log *slog.Logger, kind, msg string, args ...any) {
	l.Log(log, slog.LevelWarn, kind, msg, args...)
}
