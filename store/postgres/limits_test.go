package postgres_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/store/postgres/pgtest"
	"github.com/satstream/satstream/store/storetest"
	"github.com/stretchr/testify/require"
)

// TestOutOfRangeAmountReadAsUnavailable: a value the schema cannot hold
// (msat above int64) is the caller's error (store.ErrInvalid), not "the
// database is unreachable".
func TestOutOfRangeAmountReadAsUnavailable(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	s := open(t, srv.NewDatabase(t), 1)
	err := s.Update(storetest.Ctx(t), func(tx store.ReceiverTx) error {
		return tx.PutPlan(&store.Plan{ID: "p", Terms: store.Terms{
			RatePerSecond: math.MaxUint64}})
	})
	t.Logf("err: %v", err)
	require.Error(t, err)
	require.NotErrorIs(t, err, store.ErrUnavailable)
	require.ErrorIs(t, err, store.ErrInvalid)
}

// TestSeqMaxUint64RoundTrips: sequences use all of uint64.
func TestSeqMaxUint64RoundTrips(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	s := open(t, srv.NewDatabase(t), 1)
	ctx := storetest.Ctx(t)
	sub := storetest.SubID(1)
	require.NoError(t, storetest.PutActiveSub(ctx, s, sub))
	h := storetest.HashOf(1)
	require.NoError(t, s.Update(ctx, func(tx store.ReceiverTx) error {
		sb, err := tx.Subscription(sub)
		if err != nil {
			return err
		}
		sb.LastSeq = math.MaxUint64
		if err := tx.PutSubscription(sb); err != nil {
			return err
		}
		return tx.PutPayment(&store.Payment{Hash: h, SubID: sub,
			Seq: math.MaxUint64, Amount: 1000,
			State: store.PaymentCredited})
	}))
	require.NoError(t, s.View(ctx, func(tx store.ReceiverTx) error {
		sb, err := tx.Subscription(sub)
		require.NoError(t, err)
		require.Equal(t, uint64(math.MaxUint64), sb.LastSeq)
		p, err := tx.Payment(h)
		require.NoError(t, err)
		require.Equal(t, uint64(math.MaxUint64), p.Seq)
		return nil
	}))
}

// TestIdleInTxHolderStalledCluster: a receiver cut off from the
// database in the middle of an event-appending step (or of a slow-lane
// step) leaves its server session idle in transaction, holding the
// event-order lock (or the exclusive slow-lane lock). Nothing in the
// store's session parameters (idle_in_transaction_session_timeout,
// tcp_keepalives_*, lock_timeout) bounds it, so every other node's steps
// wait until the server's TCP keepalive (2 h by default) ends the
// session. Simulated by a session that simply goes quiet.
func TestIdleInTxHolderStalledCluster(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	a := open(t, dsn, 1)
	b := open(t, dsn, 2)
	ctx := storetest.Ctx(t)
	sub := storetest.SubID(1)
	require.NoError(t, storetest.PutActiveSub(ctx, a, sub))

	// Node A's step appends an event, then A's network goes away before
	// COMMIT: the session stays idle in transaction on the server.
	gone, appended := make(chan struct{}), make(chan struct{})
	go func() {
		_ = a.Update(ctx, func(tx store.ReceiverTx) error {
			if err := tx.AppendEvent(&store.Event{SubID: sub,
				Type: store.EventSubscriptionUpdated}); err != nil {
				return err
			}
			close(appended)
			<-gone // partitioned
			return errors.New("never got here in time")
		})
	}()
	t.Cleanup(func() { close(gone) })
	select {
	case <-appended:
	case <-ctx.Done():
		t.Fatal("node A never appended its event")
	}

	// The idle session must be ended by the server within a bound
	// (here: 15 s), after which node B's event step proceeds.
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err := b.Update(cctx, func(tx store.ReceiverTx) error {
		return tx.AppendEvent(&store.Event{SubID: sub,
			Type: store.EventSubscriptionUpdated})
	})
	require.NoError(t, err, "node B stalled behind node A's idle "+
		"transaction")
}
