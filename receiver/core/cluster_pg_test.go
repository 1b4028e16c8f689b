package core_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/satstream/satstream/receiver/core"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/store/postgres"
	"github.com/satstream/satstream/store/postgres/pgtest"
	"github.com/stretchr/testify/require"
)

func reviewNode(n byte) [33]byte {
	var k [33]byte
	k[0], k[32] = 0x02, n
	return k
}

// TestOtherNodeSettledACreditItsHolderReversed: node A credits hash H, A
// can't settle in time and A's lnd cancels H; the payer fails over to node
// B with the same hash. B found H credited and unsettled and settled it
// (Duplicate, ActionSettle), then A's follower saw CANCELED and reversed
// the shared payment row: money received at B, credit reversed. Now B
// refuses a hash A holds, and a node reverses only a credit its own lnd
// held.
func TestOtherNodeSettledACreditItsHolderReversed(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	open := func(n byte) *postgres.Store {
		s, err := postgres.Open(ctx, postgres.Config{DSN: dsn,
			NodePubkey: reviewNode(n)})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := open(1), open(2)
	sub, planID := store.SubID{1, 2, 3}, [16]byte{8}
	require.NoError(t, a.Update(ctx, func(tx store.ReceiverTx) error {
		return tx.PutPlan(&store.Plan{ID: store.PlanID(
			fmt.Sprintf("%x", planID)), Terms: testTerms,
			OpenEnrolment: true})
	}))
	in := core.Incoming{Hash: hashOf(7), Amount: 5000,
		Custom: rt.Records(t, sub, 1, &planID, false), Now: t0}
	apply := func(s store.ReceiverStore) core.Outcome {
		var out core.Outcome
		require.NoError(t, s.Update(ctx, func(tx store.ReceiverTx) error {
			var err error
			out, err = core.Apply(tx, in, 0)
			return err
		}))
		return out
	}
	reverse := func(s store.ReceiverStore) bool {
		var reversed bool
		require.NoError(t, s.Update(ctx, func(tx store.ReceiverTx) error {
			var err error
			reversed, err = core.Reverse(tx, store.Hash(hashOf(7)), t0)
			return err
		}))
		return reversed
	}

	// Node A credits H (held at A).
	outA := apply(a)
	require.True(t, outA.Credited)

	// A's lnd cancelled H at hold expiry; the payer retries H at B,
	// before A's follower has seen the cancel.
	outB := apply(b)
	require.Equal(t, core.ActionCancel, outB.Action,
		"B settles H on A's unsettled credit")
	require.Equal(t, core.ReasonHeldAtAnotherNode, outB.Reason)

	// B's lnd cancels its copy: B held nothing, so B reverses nothing.
	require.False(t, reverse(b), "B reversed a credit A holds")

	// A's follower sees CANCELED at A's lnd: A's own hold, reversed.
	require.True(t, reverse(a), "A kept the credit of a payment "+
		"nobody settled")
	require.NoError(t, a.View(ctx, func(tx store.ReceiverTx) error {
		p, err := tx.Payment(store.Hash(hashOf(7)))
		require.NoError(t, err)
		require.Equal(t, store.PaymentRefused, p.State)
		return nil
	}))
}

// TestTwoNodesTwoHashesOneSeqCreditedOnce: a hostile payer sends one (sub, seq)
// under two hashes to two nodes at once: exactly one may be credited.
func TestTwoNodesTwoHashesOneSeqCreditedOnce(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	open := func(n byte) *postgres.Store {
		s, err := postgres.Open(ctx, postgres.Config{DSN: dsn,
			NodePubkey: reviewNode(n)})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := open(1), open(2)
	planID := [16]byte{8}
	require.NoError(t, a.Update(ctx, func(tx store.ReceiverTx) error {
		return tx.PutPlan(&store.Plan{ID: store.PlanID(
			fmt.Sprintf("%x", planID)), Terms: testTerms,
			OpenEnrolment: true})
	}))
	for round := 0; round < 30; round++ {
		sub := store.SubID{1, byte(round)}
		outs := make([]core.Outcome, 2)
		errs := make(chan error, 2)
		for i, s := range []*postgres.Store{a, b} {
			go func(i int, s *postgres.Store) {
				in := core.Incoming{Hash: store.Hash{byte(round), byte(i), 9},
					Amount: 5000, Custom: rt.Records(t, sub, 1,
						&planID, false), Now: t0}
				errs <- s.Update(ctx, func(tx store.ReceiverTx) error {
					var err error
					outs[i], err = core.Apply(tx, in, 0)
					return err
				})
			}(i, s)
		}
		require.NoError(t, <-errs)
		require.NoError(t, <-errs)
		n := 0
		for _, o := range outs {
			if o.Action == core.ActionSettle {
				n++
			}
		}
		require.Equal(t, 1, n, "round %d: %+v", round, outs)
	}
}

// TestSecondNodeSettledAHashHeldElsewhere: the same hash held at A
// (credited, A's lnd still ACCEPTED, A about to settle) arrives at B. B
// answers ActionSettle (Duplicate), so both lnds settle: the payer pays
// twice for one credit, and no excess is reported (A's settledHeld finds
// the settle index B recorded).
func TestSecondNodeSettledAHashHeldElsewhere(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	open := func(n byte) *postgres.Store {
		s, err := postgres.Open(ctx, postgres.Config{DSN: dsn,
			NodePubkey: reviewNode(n)})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := open(1), open(2)
	sub, planID := store.SubID{1, 2, 3}, [16]byte{8}
	require.NoError(t, a.Update(ctx, func(tx store.ReceiverTx) error {
		return tx.PutPlan(&store.Plan{ID: store.PlanID(
			fmt.Sprintf("%x", planID)), Terms: testTerms,
			OpenEnrolment: true})
	}))
	in := core.Incoming{Hash: hashOf(7), Amount: 5000,
		Custom: rt.Records(t, sub, 1, &planID, false), Now: t0}
	apply := func(s store.ReceiverStore) core.Outcome {
		var out core.Outcome
		require.NoError(t, s.Update(ctx, func(tx store.ReceiverTx) error {
			var err error
			out, err = core.Apply(tx, in, 0)
			return err
		}))
		return out
	}
	require.True(t, apply(a).Credited)
	require.NotEqual(t, core.ActionSettle, apply(b).Action,
		"B settles a hash node A holds credited and unsettled")
}
