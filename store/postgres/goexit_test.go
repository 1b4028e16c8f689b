package postgres_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/store/postgres"
	"github.com/satstream/satstream/store/postgres/pgtest"
	"github.com/satstream/satstream/store/storetest"
	"github.com/stretchr/testify/require"
)

// TestFailNowInStepHangsClose reproduces a step whose fn ends its
// goroutine with runtime.Goexit: what require's t.FailNow does inside
// every storetest callback that asserts in an Update or View. recover()
// returns nil for Goexit, so run's panic guard leaves the transaction open
// and its connection out of the pool; Close then waits for it for ever and
// the failing assertion shows as a suite timeout instead of its message.
func TestFailNowInStepHangsClose(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	s, err := postgres.Open(storetest.Ctx(t), postgres.Config{
		DSN: srv.NewDatabase(t), NodePubkey: nodeKey(2), MaxConns: 2})
	require.NoError(t, err)

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
	closed := make(chan struct{})
	go func() { _ = s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung on the connections Goexit leaked")
	}
}
