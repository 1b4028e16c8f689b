package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// testSubscriptionByPublicID: the API names subscriptions by public id;
// the lookup must find exactly that subscription and nothing for others.
func testSubscriptionByPublicID(t *testing.T, open Open) {
	rs, ctx := open(t), Ctx(t)
	a, b := SubID(1), SubID(2)
	require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
		for _, id := range []store.SubID{a, b} {
			err := tx.PutSubscription(&store.ReceiverSubscription{
				ID: id, PlanID: "p", State: store.SubActive,
				CreatedAt: At(1), UpdatedAt: At(1),
			})
			if err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
		for _, id := range []store.SubID{a, b} {
			s, err := tx.SubscriptionByPublicID(id.PublicID())
			require.NoError(t, err)
			require.Equal(t, id, s.ID)
		}
		_, err := tx.SubscriptionByPublicID(SubID(3).PublicID())
		require.ErrorIs(t, err, store.ErrNotFound)
		return nil
	}))
}

// testDeliveries: an event never attempted at an endpoint is a fresh
// pending delivery; a stored one comes back as stored, per endpoint.
func testDeliveries(t *testing.T, open Open) {
	rs, ctx := open(t), Ctx(t)
	ep1, ep2 := store.NewEndpointID("https://a"), store.NewEndpointID("https://b")
	ev := &store.Event{SubID: SubID(1), Type: store.EventPaymentReceived,
		CreatedAt: At(1)}
	require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
		return tx.AppendEvent(ev)
	}))
	require.False(t, ev.UID.IsZero(), "AppendEvent assigns a public id")

	want := &store.Delivery{Endpoint: ep1, Event: ev.ID,
		State: store.DeliveryDead, Attempts: 7, NextAttempt: At(20),
		LastError: "HTTP 500", FinishedAt: At(30), RetrySince: At(10),
		Manual: true}
	require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
		return tx.PutDelivery(want)
	}))
	require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
		got, err := tx.Delivery(ep1, ev.ID)
		require.NoError(t, err)
		require.Equal(t, want, got)

		got, err = tx.Delivery(ep2, ev.ID)
		require.NoError(t, err)
		require.Equal(t, &store.Delivery{Endpoint: ep2, Event: ev.ID,
			State: store.DeliveryPending}, got)

		byUID, err := tx.EventByUID(ev.UID)
		require.NoError(t, err)
		require.Equal(t, ev.ID, byUID.ID)
		_, err = tx.EventByUID(store.EventUID{1})
		require.ErrorIs(t, err, store.ErrNotFound)
		return nil
	}))
}

// testHeld: payments credited while lnd still holds their HTLC are listed
// in hash order until cleared, and marking twice keeps one mark.
func testHeld(t *testing.T, open Open) {
	rs, ctx := open(t), Ctx(t)
	sub := SubID(1)
	require.NoError(t, PutActiveSub(ctx, rs, sub))
	hashes := []store.Hash{HashOf(1), HashOf(2), HashOf(3)}
	require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
		for i, h := range hashes {
			// Marked before the payment row is written, as the
			// receiver does it.
			if err := tx.MarkHeld(h); err != nil {
				return err
			}
			if err := tx.MarkHeld(h); err != nil {
				return err
			}
			err := tx.PutPayment(&store.Payment{Hash: h, SubID: sub,
				Seq: uint64(i + 1), Amount: 1000,
				State: store.PaymentCredited})
			if err != nil {
				return err
			}
		}
		return nil
	}))
	held := func() []store.Hash {
		var got []store.Hash
		require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
			return tx.ForEachHeld(func(h store.Hash) error {
				got = append(got, h)
				return nil
			})
		}))
		return got
	}
	got := held()
	require.Len(t, got, 3)
	for i := 1; i < len(got); i++ {
		require.Less(t, string(got[i-1][:]), string(got[i][:]),
			"hash order")
	}
	require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
		return tx.ClearHeld(hashes[1])
	}))
	require.NotContains(t, held(), hashes[1])
	require.Len(t, held(), 2)

	// HeldAt: this node's marks; one node alone never sees another's.
	require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
		for _, c := range []struct {
			h    store.Hash
			here bool
		}{{hashes[0], true}, {hashes[1], false}, {HashOf(9), false}} {
			here, elsewhere, err := tx.HeldAt(c.h)
			require.NoError(t, err)
			require.Equal(t, c.here, here, "held here %x", c.h[:2])
			require.False(t, elsewhere, "held elsewhere %x", c.h[:2])
		}
		return nil
	}))
}

// testRefusals: counters per reason, the rate-limit marks of
// payment.refused events, and pruning refused rows to the newest few.
func testRefusals(t *testing.T, open Open) {
	rs, ctx := open(t), Ctx(t)
	sub := SubID(1)

	require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
		for _, r := range []string{"b_reason", "a_reason", "b_reason"} {
			if _, err := tx.AddRefusal(r); err != nil {
				return err
			}
		}
		n, err := tx.AddRefusal("b_reason")
		require.NoError(t, err)
		require.EqualValues(t, 3, n)
		_, err = tx.AddRefusal("")
		require.ErrorIs(t, err, store.ErrInvalid)
		return nil
	}))
	type count struct {
		reason string
		n      uint64
	}
	var counts []count
	require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
		return tx.ForEachRefusalCount(func(r string, n uint64) error {
			counts = append(counts, count{r, n})
			return nil
		})
	}))
	require.Equal(t, []count{{"a_reason", 1}, {"b_reason", 3}}, counts)

	t.Run("event marks", func(t *testing.T) {
		require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
			last, err := tx.LastRefusalEvent(sub, "x")
			require.NoError(t, err)
			require.True(t, last.IsZero())
			if err := tx.SetLastRefusalEvent(sub, "x", At(5)); err != nil {
				return err
			}
			return tx.SetLastRefusalEvent(sub, "y", At(6))
		}))
		require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
			last, err := tx.LastRefusalEvent(sub, "x")
			require.NoError(t, err)
			require.True(t, last.Equal(At(5)))
			return nil
		}))
		require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
			return tx.ClearRefusalEvents(sub)
		}))
		require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
			for _, r := range []string{"x", "y"} {
				last, err := tx.LastRefusalEvent(sub, r)
				require.NoError(t, err)
				require.True(t, last.IsZero())
			}
			return nil
		}))
	})

	t.Run("prune keeps the newest", func(t *testing.T) {
		require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
			// A credited payment, never pruned, and five refused.
			err := tx.PutPayment(&store.Payment{Hash: HashOf(100),
				SubID: sub, Seq: 1, Amount: 1000,
				State: store.PaymentCredited, ReceivedAt: At(1)})
			if err != nil {
				return err
			}
			for i := uint64(1); i <= 5; i++ {
				err := tx.PutPayment(&store.Payment{
					Hash: HashOf(i), SubID: sub, Seq: 1,
					Amount: 1, State: store.PaymentRefused,
					Reason:     "duplicate_sequence",
					ReceivedAt: At(int64(10 + i)),
				})
				if err != nil {
					return err
				}
			}
			n, err := tx.PruneRefused(sub, 2)
			require.NoError(t, err)
			require.Equal(t, 3, n)
			return nil
		}))
		require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
			for i := uint64(1); i <= 5; i++ {
				_, err := tx.Payment(HashOf(i))
				if i <= 3 {
					require.ErrorIs(t, err, store.ErrNotFound, i)
				} else {
					require.NoError(t, err, i)
				}
			}
			_, err := tx.Payment(HashOf(100))
			require.NoError(t, err)
			// The credited one and the two newest refused share
			// the sequence.
			states := map[store.PaymentState]int{}
			err = tx.ForEachPayment(sub, 0, func(p *store.Payment) error {
				require.EqualValues(t, 1, p.Seq)
				states[p.State]++
				return nil
			})
			require.NoError(t, err)
			require.Equal(t, map[store.PaymentState]int{
				store.PaymentCredited: 1, store.PaymentRefused: 2,
			}, states)
			return nil
		}))
		err := rs.Update(ctx, func(tx store.ReceiverTx) error {
			return tx.DeletePayment(HashOf(1))
		})
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

// testScanThenWrite: the expiry sweep and the webhook loop write while
// they scan; every row scanned must be seen once and the writes kept.
func testScanThenWrite(t *testing.T, open Open) {
	rs, ctx := open(t), Ctx(t)
	const n = 600 // more than one read chunk of a server backend
	require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
		for i := uint64(1); i <= n; i++ {
			err := tx.PutSubscription(&store.ReceiverSubscription{
				ID: SubID(i), PlanID: "p", State: store.SubActive,
				PaidUntil: At(int64(i)),
			})
			if err != nil {
				return err
			}
			err = tx.AppendEvent(&store.Event{SubID: SubID(i),
				Type: store.EventPaymentReceived})
			if err != nil {
				return err
			}
		}
		return nil
	}))
	seen := 0
	require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
		err := tx.SubscriptionsDueBefore(At(n+1),
			func(s *store.ReceiverSubscription) error {
				seen++
				s.State = store.SubPastDue
				s.PaidUntil = s.PaidUntil.Add(-1)
				return tx.PutSubscription(s)
			})
		if err != nil {
			return err
		}
		return tx.ForEachPendingEvent(0, func(ev *store.Event) error {
			return tx.MarkEventDelivered(ev.ID, At(1))
		})
	}))
	require.Equal(t, n, seen)
	require.Len(t, listSubs(t, rs, store.SubPastDue, store.Page{}), n)
	require.Len(t, listSubs(t, rs, 0, store.Page{After: ptr(SubID(100)),
		Limit: 300}), 300)
	pending := 0
	require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
		return tx.ForEachPendingEvent(0, func(*store.Event) error {
			pending++
			return nil
		})
	}))
	require.Zero(t, pending)
}

// testConcurrentCredits: many goroutines credit one subscription at once,
// each payment reported twice: every credit counts exactly once, no update
// is lost, and the msat remainder adds up.
func testConcurrentCredits(t *testing.T, open Open) {
	const (
		workers = 8
		each    = 15
		amount  = 1234
	)
	rs, ctx := open(t), Ctx(t)
	sub := SubID(1)
	require.NoError(t, PutActiveSub(ctx, rs, sub))
	before, err := Summarize(ctx, rs, sub)
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				n := uint64(w*each + i + 1)
				for r := 0; r < 2; r++ {
					err := Credit(ctx, rs, sub, n, amount)
					if err != nil {
						errs <- err
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	s, err := Summarize(ctx, rs, sub)
	require.NoError(t, err)
	CheckConsistent(t, s)
	total := uint64(workers * each * amount)
	require.Len(t, s.Payments, workers*each)
	require.EqualValues(t, total, s.Sub.TotalPaid)
	require.EqualValues(t, total/1000, s.Sub.TotalSeconds)
	require.EqualValues(t, total%1000, s.Sub.Remainder)
	require.True(t, s.Sub.PaidUntil.Equal(before.Sub.PaidUntil.Add(
		time.Duration(total/1000)*time.Second)), "paid until")
	require.EqualValues(t, workers*each, s.Sub.LastSeq)
	require.Equal(t, s.MaxSettle, s.SettleIndex)
}

// testRemovedEndpointRowsFoundAndDeleted: the webhook dispatcher's tidy
// lists the endpoints that have rows (an endpoint id of all 0xff
// included), deletes one removed endpoint's rows in bounded steps without
// touching another's, and deletes a finished event's row one at a time
// (the pair then reads as never attempted).
func testRemovedEndpointRowsFoundAndDeleted(t *testing.T, open Open) {
	rs, ctx := open(t), Ctx(t)
	a, b := store.NewEndpointID("https://a.example"), store.EndpointID{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	var ids []store.EventID
	require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
		ids = ids[:0]
		for i := 0; i < 5; i++ {
			ev := &store.Event{SubID: SubID(1),
				Type: store.EventPaymentReceived, CreatedAt: At(1)}
			if err := tx.AppendEvent(ev); err != nil {
				return err
			}
			ids = append(ids, ev.ID)
			for _, ep := range []store.EndpointID{a, b} {
				err := tx.PutDelivery(&store.Delivery{Endpoint: ep,
					Event: ev.ID, State: store.DeliveryDelivered})
				if err != nil {
					return err
				}
			}
		}
		return nil
	}))
	endpoints := func() []store.EndpointID {
		var eps []store.EndpointID
		require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
			var err error
			eps, err = tx.DeliveryEndpoints()
			return err
		}))
		return eps
	}
	require.Equal(t, []store.EndpointID{a, b}, endpoints(), "id order")

	for _, want := range []int{3, 2, 0} {
		var n int
		require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
			var err error
			n, err = tx.DeleteDeliveries(b, 3)
			return err
		}))
		require.Equal(t, want, n)
	}
	require.Equal(t, []store.EndpointID{a}, endpoints())

	require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
		if err := tx.DeleteDelivery(a, ids[0]); err != nil {
			return err
		}
		// A pair without a row: nothing to delete, no error.
		return tx.DeleteDelivery(b, ids[0])
	}))
	require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
		dl, err := tx.Delivery(a, ids[0])
		require.NoError(t, err)
		require.Equal(t, &store.Delivery{Endpoint: a, Event: ids[0],
			State: store.DeliveryPending}, dl)
		dl, err = tx.Delivery(a, ids[4])
		require.NoError(t, err)
		require.Equal(t, store.DeliveryDelivered, dl.State)
		return nil
	}))
}
