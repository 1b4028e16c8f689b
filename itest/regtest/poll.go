package regtest

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// errFatal marks a poll error that no amount of waiting will fix, such as a
// process that exited.
var errFatal = errors.New("fatal")

// pollInterval is how often poll retries; short because every wait in the
// harness is for a local process.
const pollInterval = 50 * time.Millisecond

// poll calls f until it returns nil, the timeout passes, ctx ends, or f
// returns an error wrapping errFatal. It is the harness's only way to wait:
// no sleeps stand in for synchronisation.
func poll(ctx context.Context, timeout time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		if errors.Is(err, errFatal) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("still failing after %v: %w", timeout,
				err)
		case <-t.C:
		}
	}
}

// Poll is poll for tests and tools built on the harness.
func Poll(ctx context.Context, timeout time.Duration, f func() error) error {
	return poll(ctx, timeout, f)
}
