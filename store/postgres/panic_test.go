package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/store/postgres"
	"github.com/satstream/satstream/store/postgres/pgtest"
	"github.com/satstream/satstream/store/storetest"
	"github.com/stretchr/testify/require"
)

// TestPanicInStepLeaksPooledConnection reproduces a step whose fn panics
// (an API handler's bug, recovered by net/http) leaving its transaction
// open on a connection that never goes back to the pool: the server ends
// the session after IdleInTxTimeout, but the pool still counts the
// connection as in use, so after MaxConns such panics every step of the
// receiver waits for a connection until its context ends. A panicking
// step must roll back and give its connection back, then panic on.
func TestPanicInStepLeaksPooledConnection(t *testing.T) {
	t.Parallel()
	s := leakCheckedStore(t)

	steps := []struct {
		name string
		run  func(context.Context, func(store.ReceiverTx) error) error
	}{
		{"update", s.Update},
		{"view", s.View},
		{"slow lane", s.RunAlone},
	}
	for _, st := range steps {
		for i := range 2 {
			ctx, cancel := context.WithTimeout(context.Background(),
				3*time.Second)
			var (
				err       error
				recovered any
			)
			func() {
				defer func() { recovered = recover() }()
				err = st.run(ctx, func(tx store.ReceiverTx) error {
					_, _ = tx.AddIndex()
					panic("handler bug")
				})
			}()
			cancel()
			require.NotNil(t, recovered, "%s %d: no panic, the step "+
				"failed: %v", st.name, i, err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	require.NoError(t, s.Update(ctx, func(tx store.ReceiverTx) error {
		return tx.SetAddIndex(1)
	}), "a step after the panics")
}

// leakCheckedStore opens a store with a pool of two connections whose
// Close, at the end of t, must return: Close waits for every connection
// in use to come back, so a step that leaked one hangs it.
func leakCheckedStore(t *testing.T) *postgres.Store {
	t.Helper()
	srv := pgtest.Start(t)
	s, err := postgres.Open(storetest.Ctx(t), postgres.Config{
		DSN: srv.NewDatabase(t), NodePubkey: nodeKey(2), MaxConns: 2})
	require.NoError(t, err)
	t.Cleanup(func() {
		closed := make(chan struct{})
		go func() { _ = s.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Error("Close hung on connections a step leaked")
		}
	})
	return s
}
