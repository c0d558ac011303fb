//go:build unix

package matrixtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockFile takes an exclusive flock on path, waiting until it is free or ctx
// ends. The kernel drops the lock when its holder exits, so a build killed
// half-way never leaves a stale lock behind.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	// Polling with LOCK_NB, because a blocking flock cannot be cancelled.
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	announced := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		if !announced {
			fmt.Fprintf(os.Stderr, "matrixtest: waiting for a build of dendrite under way elsewhere (%s)…\n", path)
			announced = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}
