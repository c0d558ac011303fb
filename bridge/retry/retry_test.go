package retry_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/botbridge/botbridge/bridge/retry"
)

type slowDown struct{ d time.Duration }

func (e slowDown) Error() string             { return "slow down" }
func (e slowDown) RetryDelay() time.Duration { return e.d }

func TestBackoffGrowsToItsCapAndStartsOver(t *testing.T) {
	b := retry.Policy{Min: 100 * time.Millisecond, Max: time.Second}.New()
	var last time.Duration
	for i := range 20 {
		d := b.Next(errors.New("down"))
		if d <= 0 || d > time.Second {
			t.Fatalf("wait %d is %v, want in (0, 1s]", i, d)
		}
		last = d
	}
	if last < 500*time.Millisecond {
		t.Errorf("after 20 failures the wait is %v, want near the 1s cap", last)
	}
	if b.Attempts() != 20 {
		t.Errorf("attempts = %d, want 20", b.Attempts())
	}
	b.Reset()
	if d := b.Next(errors.New("down")); d > 150*time.Millisecond {
		t.Errorf("after Reset the wait is %v, want about 100ms", d)
	}
}

func TestBackoffHonoursTheServersWaitUpToItsCap(t *testing.T) {
	p := retry.Policy{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond, MaxServerWait: time.Minute}
	if d := p.New().Next(slowDown{30 * time.Second}); d != 30*time.Second {
		t.Errorf("wait = %v, want the server's 30s", d)
	}
	if d := p.New().Next(slowDown{time.Hour}); d != time.Minute {
		t.Errorf("wait = %v, want the 1m cap", d)
	}
	wrapped := errors.Join(errors.New("post"), slowDown{2 * time.Second})
	if d := retry.ServerWait(wrapped); d != 2*time.Second {
		t.Errorf("ServerWait of a wrapped error = %v, want 2s", d)
	}
}

func TestUntilRetriesUntilSuccessOrTheEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls, retries := 0, 0
		err := retry.Until(t.Context(), retry.Policy{Min: time.Second, Max: 4 * time.Second}, func() error {
			calls++
			if calls < 4 {
				return errors.New("not yet")
			}
			return nil
		}, func(attempt int, err error, wait time.Duration) { retries = attempt })
		if err != nil || calls != 4 || retries != 3 {
			t.Errorf("Until = %v after %d calls and %d retries; want nil, 4, 3", err, calls, retries)
		}

		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		err = retry.Until(ctx, retry.Policy{}, func() error { return errors.New("never") }, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Until = %v, want the context's end", err)
		}
	})
}
