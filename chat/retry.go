package chat

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/botbridge/botbridge/bridge/retry"
)

// RetryPolicy says how often and how patiently the client retries a call
// that failed transiently: a network error, 408, 429 or 5xx. Zero fields take
// their defaults.
type RetryPolicy struct {
	// MaxAttempts counts the first try; 1 disables retries. Default 4.
	MaxAttempts int
	// InitialInterval is the first backoff, before jitter. Default 200 ms.
	InitialInterval time.Duration
	// MaxInterval caps every backoff, jitter included. Default 5 s.
	MaxInterval time.Duration
	// MaxRetryAfter caps how long the client waits when the server sends
	// Retry-After; the server's value is honoured up to it. Default 30 s.
	MaxRetryAfter time.Duration
}

// defaultRetryPolicy is the policy of a client built without WithRetry.
var defaultRetryPolicy = RetryPolicy{
	MaxAttempts:     4,
	InitialInterval: 200 * time.Millisecond,
	MaxInterval:     5 * time.Second,
	MaxRetryAfter:   30 * time.Second,
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = defaultRetryPolicy.MaxAttempts
	}
	if p.InitialInterval <= 0 {
		p.InitialInterval = defaultRetryPolicy.InitialInterval
	}
	if p.MaxInterval <= 0 {
		p.MaxInterval = defaultRetryPolicy.MaxInterval
	}
	if p.MaxInterval < p.InitialInterval {
		p.MaxInterval = p.InitialInterval
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = defaultRetryPolicy.MaxRetryAfter
	}
	return p
}

// CallOption adjusts one call.
type CallOption interface {
	applyCall(*callOptions)
}

type callOptions struct {
	retry  bool
	policy *RetryPolicy
}

// RetryOption is returned by WithRetry. It is both an Option and a
// CallOption.
type RetryOption struct {
	policy *RetryPolicy
}

// WithRetry turns on retries. Given to NewClient, it sets the client's
// policy (the default policy when called without argument). Given to a call
// (CreateUser, CreateConversation, CreateMessage, CreateEvent), it allows that
// call to be retried after a transient failure, with the given policy or else
// the client's. The caller decides: a retried create may be applied twice
// when the first answer was lost, so only pass it where a duplicate is
// harmless or detected (for example through message metadata). Only the first
// policy is used.
func WithRetry(policy ...RetryPolicy) RetryOption {
	if len(policy) == 0 {
		return RetryOption{}
	}
	p := policy[0]
	return RetryOption{policy: &p}
}

func (o RetryOption) applyClient(c *Client) {
	if o.policy != nil {
		c.retry = *o.policy
	} else {
		c.retry = defaultRetryPolicy
	}
}

func (o RetryOption) applyCall(co *callOptions) {
	co.retry = true
	co.policy = o.policy
}

// retrying runs try until it succeeds, fails permanently, or the policy's
// attempts are spent, waiting between attempts through the client's clock.
func (c *Client) retrying(ctx context.Context, op string, p RetryPolicy, try func() error) error {
	var b *retry.Backoff
	for attempt := 1; ; attempt++ {
		err := try()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || attempt >= p.MaxAttempts || !transient(err) {
			return err
		}
		if b == nil {
			b = p.backoff()
		}
		d := b.Next(err)
		c.log.DebugContext(ctx, "retrying", logKeyOp, op, logKeyAttempt, attempt, logKeyWait, d, logKeyErr, err)
		if werr := c.clock.Wait(ctx, d); werr != nil {
			return fmt.Errorf("%w (retry abandoned: %w)", err, werr)
		}
	}
}

// backoff returns the policy's waits: from InitialInterval, capped at
// MaxInterval, or the server's Retry-After up to MaxRetryAfter.
func (p RetryPolicy) backoff() *retry.Backoff {
	return retry.Policy{Min: p.InitialInterval, Max: p.MaxInterval, MaxServerWait: p.MaxRetryAfter}.New()
}

// transient reports whether err may go away on its own.
func transient(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Temporary()
	}
	var te *transportError
	return errors.As(err, &te)
}

// retryAfter reads Retry-After as seconds or as an HTTP date; it returns 0
// when the header is absent, malformed or in the past.
func (c *Client) retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		const day = 24 * 60 * 60 // keeps absurd values from overflowing
		return time.Duration(min(max(n, 0), day)) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return max(0, t.Sub(c.clock.Now()))
}
