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

// TestSlowLaneWaitHangsWhilePeerHoldsIt reproduces a step waiting without
// bound for the slow lane: a receiver whose step failed twice takes the
// lane's lock before BEGIN, and while another node's step holds the lane
// that wait lasted as long as the step's context. It must end at the
// store's lock timeout with store.ErrUnavailable naming the wait.
func TestSlowLaneWaitHangsWhilePeerHoldsIt(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	holder := open(t, dsn, 1)
	waiter, err := postgres.Open(storetest.Ctx(t), postgres.Config{DSN: dsn,
		NodePubkey: nodeKey(2), LockTimeout: 300 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = waiter.Close() })

	// The holder's step sits in the lane until the waiter has given up.
	inLane, release := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- holder.RunAlone(storetest.Ctx(t),
			func(tx store.ReceiverTx) error {
				close(inLane)
				<-release
				return tx.SetAddIndex(7)
			})
	}()
	select {
	case <-inLane:
	case <-time.After(30 * time.Second):
		t.Fatal("the holder never entered the slow lane")
	}

	// The context is far longer than the lock timeout: only the
	// store's bound can end the wait in time.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	err = waiter.RunAlone(ctx, func(tx store.ReceiverTx) error {
		return tx.SetAddIndex(8)
	})
	close(release)
	t.Logf("waiter: %v", err)
	require.Error(t, err)
	require.NotErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.Contains(t, err.Error(), "slow lane")
	require.NoError(t, <-held)

	// The lane is free again: the waiter's next step goes through, and
	// the failed wait left no lock timeout behind on the connection.
	require.NoError(t, waiter.RunAlone(storetest.Ctx(t),
		func(tx store.ReceiverTx) error { return tx.SetAddIndex(9) }))
}
