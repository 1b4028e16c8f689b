package postgres_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/satstream/satstream/store"
)

// TestFailNowInStepHangsClose reproduces a step whose fn ends its
// goroutine with runtime.Goexit: what require's t.FailNow does inside
// every storetest callback that asserts in an Update or View. recover()
// returns nil for Goexit, so run's panic guard leaves the transaction open
// and its connection out of the pool; Close then waits for it for ever and
// the failing assertion shows as a suite timeout instead of its message.
func TestFailNowInStepHangsClose(t *testing.T) {
	t.Parallel()
	s := leakCheckedStore(t)

	steps := []func(context.Context, func(store.ReceiverTx) error) error{
		s.Update, s.View, s.RunAlone}
	for _, run := range steps {
		done := make(chan struct{})
		go func() {
			defer close(done)
			ctx, cancel := context.WithTimeout(
				context.Background(), 3*time.Second)
			defer cancel()
			_ = run(ctx,
				func(tx store.ReceiverTx) error {
					_, _ = tx.AddIndex()
					runtime.Goexit()
					return nil
				})
		}()
		<-done
	}
	// leakCheckedStore's cleanup fails the test if Close hangs.
}
