// Package retry is botbridge's one mechanism for waiting between attempts:
// capped exponential backoff with jitter (cenkalti/backoff, never giving up
// by itself), stretched to the wait a server asked for (Retry-After, Matrix's
// retry_after_ms, Slack's rate limits). The Chat API client, the bridge's
// workers and the adapters all retry through it.
//
// It imports only the standard library and cenkalti/backoff, so every layer
// may use it.
package retry

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Policy bounds the waits of a Backoff. Zero fields take their defaults.
type Policy struct {
	// Min is the first wait, before jitter. Default 500 ms.
	Min time.Duration
	// Max caps every wait the policy makes itself, jitter included.
	// Default 1 minute.
	Max time.Duration
	// MaxServerWait caps a wait a server asked for. Default the larger of
	// Max and 10 minutes.
	MaxServerWait time.Duration
}

func (p Policy) withDefaults() Policy {
	if p.Min <= 0 {
		p.Min = 500 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = time.Minute
	}
	if p.Max < p.Min {
		p.Max = p.Min
	}
	if p.MaxServerWait <= 0 {
		p.MaxServerWait = max(p.Max, 10*time.Minute)
	}
	return p
}

// Backoff hands out the waits between the attempts of one retry loop. It is
// not safe for concurrent use.
type Backoff struct {
	p        Policy
	b        *backoff.ExponentialBackOff
	attempts int
}

// New returns a Backoff at its first wait.
func (p Policy) New() *Backoff {
	p = p.withDefaults()
	return &Backoff{p: p, b: backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.Min),
		backoff.WithMaxInterval(p.Max),
		backoff.WithMultiplier(2),
		backoff.WithMaxElapsedTime(0),
	)}
}

// Next counts a failed attempt and returns the wait before the next one: the
// backoff's, or the wait the server asked for in err when that is longer
// (capped at MaxServerWait).
func (b *Backoff) Next(err error) time.Duration {
	b.attempts++
	d := min(b.b.NextBackOff(), b.p.Max)
	if s := ServerWait(err); s > d {
		d = min(s, b.p.MaxServerWait)
	}
	return d
}

// Attempts returns how many failures Next has counted since the start or
// the last Reset.
func (b *Backoff) Attempts() int { return b.attempts }

// Reset starts the backoff over, after a success.
func (b *Backoff) Reset() {
	b.b.Reset()
	b.attempts = 0
}

// ServerWaiter is an error that carries how long its server asked the
// client to wait before trying again.
type ServerWaiter interface {
	error
	RetryDelay() time.Duration
}

// ServerWait returns the wait the first ServerWaiter in err's chain asks
// for, or 0.
func ServerWait(err error) time.Duration {
	var w ServerWaiter
	if errors.As(err, &w) {
		return max(w.RetryDelay(), 0)
	}
	return 0
}

// Wait blocks for d or until ctx ends, and returns ctx's error then.
func Wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Until runs fn until it returns nil or ctx ends, waiting the policy's
// backoff between attempts. onRetry, when not nil, sees each failure with
// the attempt number (from 1) and the wait before the next one, for
// logging. It returns nil after a success, else ctx's error.
func Until(ctx context.Context, p Policy, fn func() error, onRetry func(attempt int, err error, wait time.Duration)) error {
	var b *Backoff
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if b == nil {
			b = p.New()
		}
		d := b.Next(err)
		if onRetry != nil {
			onRetry(b.Attempts(), err, d)
		}
		if err := Wait(ctx, d); err != nil {
			return err
		}
	}
}
