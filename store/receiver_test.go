package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// listSubs returns the ids ForEachSubscription yields.
func listSubs(t *testing.T, rs ReceiverStore, state SubState, page Page) []SubID {
	t.Helper()
	var ids []SubID
	require.NoError(t, rs.View(testCtx(t), func(tx ReceiverTx) error {
		return tx.ForEachSubscription(state, page, func(s *ReceiverSubscription) error {
			ids = append(ids, s.ID)
			return nil
		})
	}))
	return ids
}

// dueBefore returns the ids SubscriptionsDueBefore yields.
func dueBefore(t *testing.T, rs ReceiverStore, before time.Time) []SubID {
	t.Helper()
	var ids []SubID
	require.NoError(t, rs.View(testCtx(t), func(tx ReceiverTx) error {
		return tx.SubscriptionsDueBefore(before, func(s *ReceiverSubscription) error {
			ids = append(ids, s.ID)
			return nil
		})
	}))
	return ids
}

func TestReceiverPlans(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	rs, ctx := db.Receiver(), testCtx(t)

	plans := []*Plan{
		{ID: "basic", Label: "Basic", Terms: creditTerms, CreatedAt: at(1)},
		{ID: "pro", Label: "Pro", OpenEnrolment: true, CreatedAt: at(2)},
	}
	require.NoError(t, rs.Update(ctx, func(tx ReceiverTx) error {
		for _, p := range plans {
			if err := tx.PutPlan(p); err != nil {
				return err
			}
		}
		return nil
	}))

	tests := []struct {
		name string
		id   PlanID
		want *Plan
		err  error
	}{
		{"basic", "basic", plans[0], nil},
		{"pro", "pro", plans[1], nil},
		{"missing", "gold", nil, ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, rs.View(ctx, func(tx ReceiverTx) error {
				p, err := tx.Plan(tc.id)
				require.ErrorIs(t, err, tc.err)
				require.Equal(t, tc.want, p)
				return nil
			}))
		})
	}

	t.Run("for each", func(t *testing.T) {
		var got []*Plan
		require.NoError(t, rs.View(ctx, func(tx ReceiverTx) error {
			return tx.ForEachPlan(func(p *Plan) error {
				got = append(got, p)
				return nil
			})
		}))
		require.Equal(t, plans, got)
	})

	t.Run("invalid id", func(t *testing.T) {
		err := rs.Update(ctx, func(tx ReceiverTx) error {
			return tx.PutPlan(&Plan{})
		})
		require.ErrorIs(t, err, ErrInvalid)
	})
}

func TestReceiverSubscriptionIndexes(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	rs, ctx := db.Receiver(), testCtx(t)

	put := func(id uint64, state SubState, paid int64) {
		require.NoError(t, rs.Update(ctx, func(tx ReceiverTx) error {
			return tx.PutSubscription(&ReceiverSubscription{
				ID: subID(id), PlanID: "basic", State: state, PaidUntil: at(paid),
			})
		}))
	}
	put(1, SubActive, 100)
	put(2, SubActive, 50)
	put(3, SubPending, 0)
	put(4, SubCancelledByPayer, 10)
	put(5, SubPastDue, 70)

	t.Run("get", func(t *testing.T) {
		require.NoError(t, rs.View(ctx, func(tx ReceiverTx) error {
			s, err := tx.Subscription(subID(2))
			require.NoError(t, err)
			require.Equal(t, SubActive, s.State)
			require.True(t, s.PaidUntil.Equal(at(50)))
			_, err = tx.Subscription(subID(99))
			require.ErrorIs(t, err, ErrNotFound)
			return nil
		}))
	})

	// Move 1 to past due at a new time, 2 to cancelled (leaves the expiry
	// index) and 4 back to active (enters it).
	put(1, SubPastDue, 120)
	put(2, SubCancelledByProvider, 50)
	put(4, SubActive, 10)

	tests := []struct {
		name  string
		state SubState
		page  Page
		want  []SubID
	}{
		{"all", 0, Page{}, []SubID{subID(1), subID(2), subID(3), subID(4), subID(5)}},
		{"all after 2 limit 2", 0, Page{After: ptr(subID(2)), Limit: 2},
			[]SubID{subID(3), subID(4)}},
		{"active", SubActive, Page{}, []SubID{subID(4)}},
		{"past due", SubPastDue, Page{}, []SubID{subID(1), subID(5)}},
		{"past due after 1", SubPastDue, Page{After: ptr(subID(1))}, []SubID{subID(5)}},
		{"past due limit 1", SubPastDue, Page{Limit: 1}, []SubID{subID(1)}},
		{"cancelled", SubCancelledByProvider, Page{}, []SubID{subID(2)}},
		{"cancelled by payer (moved away)", SubCancelledByPayer, Page{}, nil},
		{"expired", SubExpired, Page{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, listSubs(t, rs, tc.state, tc.page))
		})
	}

	dueTests := []struct {
		name   string
		before time.Time
		want   []SubID
	}{
		{"nothing before zero", time.Time{}, nil},
		// A pending subscription has no paid time to age: it is
		// never in the index the expiry loop scans.
		{"pending is not indexed", at(1), nil},
		{"by paid-until", at(71), []SubID{subID(4), subID(5)}},
		{"strictly before", at(120), []SubID{subID(4), subID(5)}},
		{"all watched", at(1000), []SubID{subID(4), subID(5), subID(1)}},
	}
	for _, tc := range dueTests {
		t.Run("due "+tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, dueBefore(t, rs, tc.before))
		})
	}

	t.Run("invalid", func(t *testing.T) {
		for _, s := range []*ReceiverSubscription{
			{State: SubActive},
			{ID: subID(1), State: 0},
			{ID: subID(1), State: 42},
		} {
			err := rs.Update(ctx, func(tx ReceiverTx) error {
				return tx.PutSubscription(s)
			})
			require.ErrorIs(t, err, ErrInvalid)
		}
	})

	t.Run("update inside expiry scan", func(t *testing.T) {
		require.NoError(t, rs.Update(ctx, func(tx ReceiverTx) error {
			return tx.SubscriptionsDueBefore(at(1000), func(s *ReceiverSubscription) error {
				s.State = SubExpired
				return tx.PutSubscription(s)
			})
		}))
		require.Empty(t, dueBefore(t, rs, at(1000)))
		require.Len(t, listSubs(t, rs, SubExpired, Page{}), 3)
		require.Equal(t, []SubID{subID(3)}, listSubs(t, rs, SubPending, Page{}))
	})
}

func ptr[T any](v T) *T { return &v }

func TestReceiverPayments(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	rs, ctx := db.Receiver(), testCtx(t)
	a, b := subID(1), subID(2)

	pays := []*Payment{
		{Hash: hashOf(1), SubID: a, Seq: 1, Amount: 1000, State: PaymentCredited},
		{Hash: hashOf(2), SubID: a, Seq: 2, Amount: 2000, State: PaymentCredited},
		{Hash: hashOf(3), SubID: b, Seq: 1, Amount: 3000, State: PaymentRefused,
			Reason: "below minimum"},
		{Hash: hashOf(4), State: PaymentUnclaimed, Amount: 4000},
		{Hash: hashOf(5), SubID: a, Seq: 3, Amount: 5000, State: PaymentCredited},
	}
	require.NoError(t, rs.Update(ctx, func(tx ReceiverTx) error {
		for _, p := range pays {
			if err := tx.PutPayment(p); err != nil {
				return err
			}
		}
		return nil
	}))

	t.Run("by hash", func(t *testing.T) {
		require.NoError(t, rs.View(ctx, func(tx ReceiverTx) error {
			for _, p := range pays {
				got, err := tx.Payment(p.Hash)
				require.NoError(t, err)
				require.Equal(t, p, got)
			}
			_, err := tx.Payment(hashOf(99))
			require.ErrorIs(t, err, ErrNotFound)
			return nil
		}))
	})

	seqTests := []struct {
		name string
		sub  SubID
		seq  uint64
		want *Payment
		err  error
	}{
		{"a/1", a, 1, pays[0], nil},
		{"a/3", a, 3, pays[4], nil},
		{"b/1", b, 1, pays[2], nil},
		{"b/2 missing", b, 2, nil, ErrNotFound},
	}
	for _, tc := range seqTests {
		t.Run("by seq "+tc.name, func(t *testing.T) {
			require.NoError(t, rs.View(ctx, func(tx ReceiverTx) error {
				got, err := tx.PaymentBySeq(tc.sub, tc.seq)
				require.ErrorIs(t, err, tc.err)
				require.Equal(t, tc.want, got)
				return nil
			}))
		})
	}

	listTests := []struct {
		name  string
		sub   SubID
		after uint64
		want  []*Payment
	}{
		{"a all", a, 0, []*Payment{pays[0], pays[1], pays[4]}},
		{"a after 1", a, 1, []*Payment{pays[1], pays[4]}},
		{"a after max", a, ^uint64(0), nil},
		{"b", b, 0, []*Payment{pays[2]}},
	}
	for _, tc := range listTests {
		t.Run("for each "+tc.name, func(t *testing.T) {
			var got []*Payment
			require.NoError(t, rs.View(ctx, func(tx ReceiverTx) error {
				return tx.ForEachPayment(tc.sub, tc.after, func(p *Payment) error {
					got = append(got, p)
					return nil
				})
			}))
			require.Equal(t, tc.want, got)
		})
	}

	t.Run("reindex on move", func(t *testing.T) {
		moved := *pays[3]
		moved.SubID, moved.Seq, moved.State = b, 7, PaymentCredited
		require.NoError(t, rs.Update(ctx, func(tx ReceiverTx) error {
			return tx.PutPayment(&moved)
		}))
		moved2 := moved
		moved2.Seq = 8
		require.NoError(t, rs.Update(ctx, func(tx ReceiverTx) error {
			return tx.PutPayment(&moved2)
		}))
		require.NoError(t, rs.View(ctx, func(tx ReceiverTx) error {
			_, err := tx.PaymentBySeq(b, 7)
			require.ErrorIs(t, err, ErrNotFound)
			got, err := tx.PaymentBySeq(b, 8)
			require.NoError(t, err)
			require.Equal(t, &moved2, got)
			return nil
		}))
	})

	t.Run("invalid state", func(t *testing.T) {
		err := rs.Update(ctx, func(tx ReceiverTx) error {
			return tx.PutPayment(&Payment{Hash: hashOf(9)})
		})
		require.ErrorIs(t, err, ErrInvalid)
	})
}

func TestReceiverIndices(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	rs, ctx := db.Receiver(), testCtx(t)

	require.NoError(t, rs.View(ctx, func(tx ReceiverTx) error {
		s, err := tx.SettleIndex()
		require.NoError(t, err)
		require.Zero(t, s)
		a, err := tx.AddIndex()
		require.NoError(t, err)
		require.Zero(t, a)
		return nil
	}))
	require.NoError(t, rs.Update(ctx, func(tx ReceiverTx) error {
		if err := tx.SetSettleIndex(41); err != nil {
			return err
		}
		return tx.SetAddIndex(99)
	}))
	require.NoError(t, rs.View(ctx, func(tx ReceiverTx) error {
		s, err := tx.SettleIndex()
		require.NoError(t, err)
		require.EqualValues(t, 41, s)
		a, err := tx.AddIndex()
		require.NoError(t, err)
		require.EqualValues(t, 99, a)
		return nil
	}))
}

func TestReceiverEvents(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	rs, ctx := db.Receiver(), testCtx(t)

	var ids []EventID
	require.NoError(t, rs.Update(ctx, func(tx ReceiverTx) error {
		for i := 0; i < 4; i++ {
			ev := &Event{SubID: subID(1), Type: EventPaymentReceived,
				Payload: []byte{byte(i)}, CreatedAt: at(int64(i + 1))}
			if err := tx.AppendEvent(ev); err != nil {
				return err
			}
			ids = append(ids, ev.ID)
		}
		return nil
	}))
	require.Equal(t, []EventID{1, 2, 3, 4}, ids)

	pending := func(after EventID) []EventID {
		var got []EventID
		require.NoError(t, rs.View(ctx, func(tx ReceiverTx) error {
			return tx.ForEachPendingEvent(after, func(ev *Event) error {
				got = append(got, ev.ID)
				return nil
			})
		}))
		return got
	}
	require.Equal(t, []EventID{1, 2, 3, 4}, pending(0))
	require.Equal(t, []EventID{3, 4}, pending(2))

	require.NoError(t, rs.Update(ctx, func(tx ReceiverTx) error {
		if err := tx.MarkEventDelivered(2, at(50)); err != nil {
			return err
		}
		ev, err := tx.Event(3)
		if err != nil {
			return err
		}
		ev.Attempts++
		ev.NextAttempt = at(60)
		ev.LastError = "HTTP 503"
		return tx.PutEvent(ev)
	}))

	tests := []struct {
		name string
		id   EventID
		want func(t *testing.T, ev *Event)
		err  error
	}{
		{"delivered", 2, func(t *testing.T, ev *Event) {
			require.True(t, ev.Delivered)
			require.True(t, ev.DeliveredAt.Equal(at(50)))
		}, nil},
		{"retried", 3, func(t *testing.T, ev *Event) {
			require.False(t, ev.Delivered)
			require.EqualValues(t, 1, ev.Attempts)
			require.Equal(t, "HTTP 503", ev.LastError)
		}, nil},
		{"missing", 9, nil, ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, rs.View(ctx, func(tx ReceiverTx) error {
				ev, err := tx.Event(tc.id)
				require.ErrorIs(t, err, tc.err)
				if tc.want != nil {
					tc.want(t, ev)
				}
				return nil
			}))
		})
	}
	require.Equal(t, []EventID{1, 3, 4}, pending(0))

	t.Run("put unknown", func(t *testing.T) {
		err := rs.Update(ctx, func(tx ReceiverTx) error {
			return tx.PutEvent(&Event{ID: 77})
		})
		require.ErrorIs(t, err, ErrNotFound)
	})

	t.Run("ids keep growing across reopen", func(t *testing.T) {
		require.NoError(t, rs.Update(ctx, func(tx ReceiverTx) error {
			ev := &Event{Type: EventSubscriptionCreated}
			require.NoError(t, tx.AppendEvent(ev))
			require.EqualValues(t, 5, ev.ID)
			return nil
		}))
	})

	t.Run("stop early", func(t *testing.T) {
		n := 0
		require.NoError(t, rs.View(ctx, func(tx ReceiverTx) error {
			return tx.ForEachPendingEvent(0, func(*Event) error {
				n++
				return ErrStop
			})
		}))
		require.Equal(t, 1, n)
	})
}

// TestUpdateSemantics covers what every Update promises: a failing step
// leaves nothing behind, a View cannot write, nested scans in an Update are
// refused instead of panicking, and the caller's error comes back as is.
func TestUpdateSemantics(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	rs, ctx := db.Receiver(), testCtx(t)
	require.NoError(t, putActiveSub(ctx, rs, subID(1)))
	errBoom := errors.New("boom")

	tests := []struct {
		name string
		run  func() error
		want error
	}{
		{"rollback on error", func() error {
			return rs.Update(ctx, func(tx ReceiverTx) error {
				if err := tx.SetSettleIndex(5); err != nil {
					return err
				}
				return errBoom
			})
		}, errBoom},
		{"view is read-only", func() error {
			return rs.View(ctx, func(tx ReceiverTx) error {
				return tx.SetSettleIndex(5)
			})
		}, nil},
		{"nested scan", func() error {
			return rs.Update(ctx, func(tx ReceiverTx) error {
				return tx.ForEachSubscription(0, Page{}, func(*ReceiverSubscription) error {
					return tx.ForEachPayment(subID(1), 0, func(*Payment) error {
						return nil
					})
				})
			})
		}, ErrInvalid},
		{"cancelled context", func() error {
			c, cancel := context.WithCancel(ctx)
			cancel()
			return rs.Update(c, func(tx ReceiverTx) error {
				return tx.SetSettleIndex(5)
			})
		}, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if tc.want == nil {
				require.Error(t, err)
			} else {
				require.ErrorIs(t, err, tc.want)
			}
		})
	}
	require.NoError(t, rs.View(ctx, func(tx ReceiverTx) error {
		idx, err := tx.SettleIndex()
		require.NoError(t, err)
		require.Zero(t, idx, "no failed step may leave a write behind")
		return nil
	}))
}

// TestPendingIndexedByOldStoreLeavesIndex reproduces a pending subscription
// that a store before schema version 4 put in the paid-until index: it must
// not reach the expiry scan, and its entry must go when it is next written.
func TestPendingIndexedByOldStoreLeavesIndex(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	rs, ctx := db.Receiver(), testCtx(t)

	sub := &ReceiverSubscription{ID: subID(1), PlanID: "basic", State: SubPending}
	require.NoError(t, rs.Update(ctx, func(tx ReceiverTx) error {
		if err := tx.PutSubscription(sub); err != nil {
			return err
		}
		// The entry an older store wrote.
		return tx.(*receiverTx).set(rsubPaidKey(time.Time{}, sub.ID), nil)
	}))
	require.Empty(t, dueBefore(t, rs, at(1000)))

	sub.State, sub.PaidUntil = SubActive, at(100)
	require.NoError(t, rs.Update(ctx, func(tx ReceiverTx) error {
		return tx.PutSubscription(sub)
	}))
	require.Equal(t, []SubID{subID(1)}, dueBefore(t, rs, at(1000)))
	require.Empty(t, dueBefore(t, rs, at(50)), "stale zero entry left behind")
}
