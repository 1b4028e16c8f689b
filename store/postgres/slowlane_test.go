package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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

// TestSlowLaneStepWaitsUnboundedForARowLock reproduces a step in the slow
// lane that waits for a row lock (or the event order's) as long as its
// context: the lane's lock wait is bounded, but the RESET that follows it
// leaves the step's own transaction without lock_timeout, so a session
// holding a row the step writes (an operator's psql, another node's
// migration) hangs the step past lnd's hold time. Config.LockTimeout bounds
// every wait of a step, in the slow lane as in the shared one.
func TestSlowLaneStepWaitsUnboundedForARowLock(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	s, err := postgres.Open(storetest.Ctx(t), postgres.Config{DSN: dsn,
		NodePubkey: nodeKey(2), LockTimeout: 300 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Update(storetest.Ctx(t),
		func(tx store.ReceiverTx) error { return tx.SetAddIndex(1) }))

	lanes := []struct {
		name string
		run  func(context.Context, func(store.ReceiverTx) error) error
	}{
		{"shared lane", s.Update},
		{"slow lane", s.RunAlone},
	}
	for _, lane := range lanes {
		t.Run(lane.name, func(t *testing.T) {
			// Another session holds the node's row.
			conn, err := pgx.Connect(storetest.Ctx(t), dsn)
			require.NoError(t, err)
			defer func() { _ = conn.Close(context.Background()) }()
			lk, err := conn.Begin(storetest.Ctx(t))
			require.NoError(t, err)
			defer func() { _ = lk.Rollback(context.Background()) }()
			_, err = lk.Exec(storetest.Ctx(t),
				"SELECT * FROM node_state FOR UPDATE")
			require.NoError(t, err)

			ctx, cancel := context.WithTimeout(context.Background(),
				5*time.Second)
			defer cancel()
			err = lane.run(ctx, func(tx store.ReceiverTx) error {
				return tx.SetAddIndex(2)
			})
			t.Logf("step: %v", err)
			require.NotErrorIs(t, err, context.DeadlineExceeded,
				"waited for the row lock as long as the context")
			require.ErrorIs(t, err, store.ErrUnavailable)
		})
	}
}

// TestSubMillisecondLockTimeoutWaitsForEver reproduces a lock timeout
// below a millisecond (--db.postgres.locktimeout=500us passes the config's
// "positive" check) truncated to lock_timeout = 0, which PostgreSQL reads
// as no timeout at all: the step waited for a held row as long as its
// context. The bound must round up, never switch the timeout off.
func TestSubMillisecondLockTimeoutWaitsForEver(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	s, err := postgres.Open(storetest.Ctx(t), postgres.Config{DSN: dsn,
		NodePubkey: nodeKey(2), LockTimeout: 500 * time.Microsecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Update(storetest.Ctx(t),
		func(tx store.ReceiverTx) error { return tx.SetAddIndex(1) }))

	conn, err := pgx.Connect(storetest.Ctx(t), dsn)
	require.NoError(t, err)
	defer func() { _ = conn.Close(context.Background()) }()
	lk, err := conn.Begin(storetest.Ctx(t))
	require.NoError(t, err)
	defer func() { _ = lk.Rollback(context.Background()) }()
	_, err = lk.Exec(storetest.Ctx(t), "SELECT * FROM node_state FOR UPDATE")
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err = s.Update(ctx, func(tx store.ReceiverTx) error {
		return tx.SetAddIndex(2)
	})
	require.NotErrorIs(t, err, context.DeadlineExceeded,
		"waited for the row lock as long as the context")
	require.ErrorIs(t, err, store.ErrUnavailable)
}
