package postgres_test

import (
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/store/postgres/pgtest"
	"github.com/satstream/satstream/store/storetest"
	"github.com/stretchr/testify/require"
)

// TestCreditsOfTwoSubscriptionsConflictOnSmallTable reproduces
// serialization failures between steps that touch different rows: on a
// small table the planner reads a subscription by id with a sequential
// scan, and SERIALIZABLE then takes a relation-level predicate lock, so
// two steps that each read one subscription and then write it conflict
// with each other although they share no row. Each step is forced into
// that interleaving (both read, then one writes and commits, then the
// other); with index scans neither is retried.
func TestCreditsOfTwoSubscriptionsConflictOnSmallTable(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	s := open(t, dsn, 1)
	ctx := storetest.Ctx(t)
	a, b := storetest.SubID(1), storetest.SubID(2)
	for i := uint64(1); i <= 8; i++ {
		require.NoError(t, storetest.PutActiveSub(ctx, s,
			storetest.SubID(i)))
	}
	// What autovacuum does to a table once it has grown: with
	// statistics, the planner knows it is small.
	c, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "ANALYZE subscriptions")
	require.NoError(t, err)
	before := s.Stats()

	// read closes its channel once the step's first attempt has read
	// its subscription; the step then waits for write (attempts after
	// the first do not wait).
	type step struct {
		sub         store.SubID
		read, write chan struct{}
		once        sync.Once
		done        chan error
	}
	run := func(st *step) {
		st.done <- s.Update(ctx, func(tx store.ReceiverTx) error {
			sub, err := tx.Subscription(st.sub)
			if err != nil {
				return err
			}
			st.once.Do(func() {
				close(st.read)
				select {
				case <-st.write:
				case <-ctx.Done():
				}
			})
			// Columns outside every index: the update stays on
			// the row (HOT), as a credit's own row change would
			// be apart from its paid-until time.
			sub.Remainder += 7
			sub.TotalPaid += 7
			return tx.PutSubscription(sub)
		})
	}
	newStep := func(id store.SubID) *step {
		return &step{sub: id, read: make(chan struct{}),
			write: make(chan struct{}), done: make(chan error, 1)}
	}
	s1, s2 := newStep(a), newStep(b)
	go run(s1)
	go run(s2)
	wait := func(c <-chan struct{}) {
		select {
		case <-c:
		case <-time.After(storetest.Timeout):
			t.Fatal("a step never got there")
		}
	}
	wait(s1.read)
	wait(s2.read)
	close(s1.write)
	require.NoError(t, <-s1.done)
	close(s2.write)
	require.NoError(t, <-s2.done)

	after := s.Stats()
	t.Logf("stats before %+v after %+v", before, after)
	require.Zero(t, after.Serialization-before.Serialization,
		"serialization failures between steps on different rows")
	require.Equal(t, after.Steps-before.Steps,
		after.Attempts-before.Attempts, "retries")

	// Both steps count once.
	for _, id := range []store.SubID{a, b} {
		require.NoError(t, s.View(ctx, func(tx store.ReceiverTx) error {
			sub, err := tx.Subscription(id)
			require.NoError(t, err)
			require.EqualValues(t, 7, sub.Remainder)
			return nil
		}))
	}
}

// TestHeldDecisionsConflictOnHeldTable reproduces serialization failures
// between two held-HTLC decisions for different payments: HeldAt looks a
// hash up in the held table, whose key starts with the node, so the
// lookup read the whole table (or the whole key index), and the other
// decision's MarkHeld wrote into what it had read. Both decisions are
// forced into that interleaving (both look up, then one marks, records
// its payment and commits, then the other); with an index on the hash
// neither is retried.
func TestHeldDecisionsConflictOnHeldTable(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	s := open(t, dsn, 1)
	ctx := storetest.Ctx(t)

	// A node holding some HTLCs: several pages of index, and hashes at
	// both ends of the key space for the two decisions.
	const heldBefore = 2000
	require.NoError(t, s.Update(ctx, func(tx store.ReceiverTx) error {
		for i := uint64(1); i <= heldBefore; i++ {
			h := storetest.HashOf(i)
			h[0] = byte(16 + i%224)
			err := tx.PutPayment(&store.Payment{Hash: h,
				SubID: storetest.SubID(1), Seq: i, Amount: 1000,
				State: store.PaymentCredited})
			if err != nil {
				return err
			}
			if err := tx.MarkHeld(h); err != nil {
				return err
			}
		}
		return nil
	}))
	c, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "ANALYZE")
	require.NoError(t, err)
	before := s.Stats()

	type step struct {
		hash        store.Hash
		seq         uint64
		read, write chan struct{}
		once        sync.Once
		done        chan error
	}
	run := func(st *step) {
		st.done <- s.Update(ctx, func(tx store.ReceiverTx) error {
			here, elsewhere, err := tx.HeldAt(st.hash)
			if err != nil {
				return err
			}
			if here || elsewhere {
				return nil
			}
			st.once.Do(func() {
				close(st.read)
				select {
				case <-st.write:
				case <-ctx.Done():
				}
			})
			if err := tx.MarkHeld(st.hash); err != nil {
				return err
			}
			return tx.PutPayment(&store.Payment{Hash: st.hash,
				SubID: storetest.SubID(2), Seq: st.seq,
				Amount: 1000, State: store.PaymentCredited})
		})
	}
	newStep := func(first byte, seq uint64) *step {
		h := storetest.HashOf(1 << 50)
		h[0] = first
		return &step{hash: h, seq: seq, read: make(chan struct{}),
			write: make(chan struct{}), done: make(chan error, 1)}
	}
	s1, s2 := newStep(0x01, 1), newStep(0xfe, 2)
	go run(s1)
	go run(s2)
	wait := func(c <-chan struct{}) {
		select {
		case <-c:
		case <-time.After(storetest.Timeout):
			t.Fatal("a step never got there")
		}
	}
	wait(s1.read)
	wait(s2.read)
	close(s1.write)
	require.NoError(t, <-s1.done)
	close(s2.write)
	require.NoError(t, <-s2.done)

	after := s.Stats()
	t.Logf("stats before %+v after %+v", before, after)
	require.Zero(t, after.Serialization-before.Serialization,
		"serialization failures between decisions on different hashes")
	require.Equal(t, after.Steps-before.Steps,
		after.Attempts-before.Attempts, "retries")
	require.NoError(t, s.View(ctx, func(tx store.ReceiverTx) error {
		for _, st := range []*step{s1, s2} {
			here, _, err := tx.HeldAt(st.hash)
			require.NoError(t, err)
			require.True(t, here)
		}
		return nil
	}))
}
