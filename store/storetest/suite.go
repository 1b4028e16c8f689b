package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// Open returns a fresh, empty store for one test, closed at t's cleanup.
type Open func(t testing.TB) store.ReceiverStore

// RunReceiverSuite runs every conformance test against the backend open
// returns, each on its own fresh store, as subtests of t.
func RunReceiverSuite(t *testing.T, open Open) {
	tests := []struct {
		name string
		run  func(*testing.T, Open)
	}{
		{"Plans", testReceiverPlans},
		{"SubscriptionIndexes", testReceiverSubscriptionIndexes},
		{"SubscriptionByPublicID", testSubscriptionByPublicID},
		{"Payments", testReceiverPayments},
		{"Indices", testReceiverIndices},
		{"Events", testReceiverEvents},
		{"EventCommittedBelowCursor", testEventCommittedBelowCursor},
		{"EventListAcrossGap", testEventListAcrossGap},
		{"Deliveries", testDeliveries},
		{"RemovedEndpointRowsFoundAndDeleted", testRemovedEndpointRowsFoundAndDeleted},
		{"Held", testHeld},
		{"Refusals", testRefusals},
		{"UpdateSemantics", testUpdateSemantics},
		{"ScanThenWriteInOneStep", testScanThenWrite},
		{"ConcurrentCreditsCountOnce", testConcurrentCredits},
		{"PastDueReadOnlyWhenGraceEnds", testPastDueReadOnlyWhenGraceEnds},
		{"DueTiesAcrossPages", testDueTiesAcrossPages},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, open)
		})
	}
}

// listSubs returns the ids ForEachSubscription yields.
func listSubs(t *testing.T, rs store.ReceiverStore, state store.SubState, page store.Page) []store.SubID {
	t.Helper()
	var ids []store.SubID
	require.NoError(t, rs.View(Ctx(t), func(tx store.ReceiverTx) error {
		return tx.ForEachSubscription(state, page, func(s *store.ReceiverSubscription) error {
			ids = append(ids, s.ID)
			return nil
		})
	}))
	return ids
}

// dueBefore returns the ids SubscriptionsDueBefore yields.
func dueBefore(t *testing.T, rs store.ReceiverStore, before time.Time) []store.SubID {
	t.Helper()
	var ids []store.SubID
	require.NoError(t, rs.View(Ctx(t), func(tx store.ReceiverTx) error {
		return tx.SubscriptionsDueBefore(before, func(s *store.ReceiverSubscription) error {
			ids = append(ids, s.ID)
			return nil
		})
	}))
	return ids
}

func testReceiverPlans(t *testing.T, open Open) {
	rs, ctx := open(t), Ctx(t)

	plans := []*store.Plan{
		{ID: "basic", Label: "Basic", Terms: CreditTerms, CreatedAt: At(1)},
		{ID: "pro", Label: "Pro", OpenEnrolment: true, CreatedAt: At(2)},
	}
	require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
		for _, p := range plans {
			if err := tx.PutPlan(p); err != nil {
				return err
			}
		}
		return nil
	}))

	tests := []struct {
		name string
		id   store.PlanID
		want *store.Plan
		err  error
	}{
		{"basic", "basic", plans[0], nil},
		{"pro", "pro", plans[1], nil},
		{"missing", "gold", nil, store.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
				p, err := tx.Plan(tc.id)
				require.ErrorIs(t, err, tc.err)
				require.Equal(t, tc.want, p)
				return nil
			}))
		})
	}

	t.Run("for each", func(t *testing.T) {
		var got []*store.Plan
		require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
			return tx.ForEachPlan(func(p *store.Plan) error {
				got = append(got, p)
				return nil
			})
		}))
		require.Equal(t, plans, got)
	})

	t.Run("invalid id", func(t *testing.T) {
		err := rs.Update(ctx, func(tx store.ReceiverTx) error {
			return tx.PutPlan(&store.Plan{})
		})
		require.ErrorIs(t, err, store.ErrInvalid)
	})
}

func testReceiverSubscriptionIndexes(t *testing.T, open Open) {
	rs, ctx := open(t), Ctx(t)

	put := func(id uint64, state store.SubState, paid int64) {
		require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
			return tx.PutSubscription(&store.ReceiverSubscription{
				ID: SubID(id), PlanID: "basic", State: state, PaidUntil: At(paid),
			})
		}))
	}
	put(1, store.SubActive, 100)
	put(2, store.SubActive, 50)
	put(3, store.SubPending, 0)
	put(4, store.SubCancelledByPayer, 10)
	put(5, store.SubPastDue, 70)

	t.Run("get", func(t *testing.T) {
		require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
			s, err := tx.Subscription(SubID(2))
			require.NoError(t, err)
			require.Equal(t, store.SubActive, s.State)
			require.True(t, s.PaidUntil.Equal(At(50)))
			_, err = tx.Subscription(SubID(99))
			require.ErrorIs(t, err, store.ErrNotFound)
			return nil
		}))
	})

	// Move 1 to past due at a new time, 2 to cancelled (leaves the expiry
	// index) and 4 back to active (enters it).
	put(1, store.SubPastDue, 120)
	put(2, store.SubCancelledByProvider, 50)
	put(4, store.SubActive, 10)

	tests := []struct {
		name  string
		state store.SubState
		page  store.Page
		want  []store.SubID
	}{
		{"all", 0, store.Page{}, []store.SubID{SubID(1), SubID(2), SubID(3), SubID(4), SubID(5)}},
		{"all after 2 limit 2", 0, store.Page{After: ptr(SubID(2)), Limit: 2},
			[]store.SubID{SubID(3), SubID(4)}},
		{"active", store.SubActive, store.Page{}, []store.SubID{SubID(4)}},
		{"past due", store.SubPastDue, store.Page{}, []store.SubID{SubID(1), SubID(5)}},
		{"past due after 1", store.SubPastDue, store.Page{After: ptr(SubID(1))}, []store.SubID{SubID(5)}},
		{"past due limit 1", store.SubPastDue, store.Page{Limit: 1}, []store.SubID{SubID(1)}},
		{"cancelled", store.SubCancelledByProvider, store.Page{}, []store.SubID{SubID(2)}},
		{"cancelled by payer (moved away)", store.SubCancelledByPayer, store.Page{}, nil},
		{"expired", store.SubExpired, store.Page{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, listSubs(t, rs, tc.state, tc.page))
		})
	}

	dueTests := []struct {
		name   string
		before time.Time
		want   []store.SubID
	}{
		{"nothing before zero", time.Time{}, nil},
		// A pending subscription has no paid time to age: it is
		// never in the index the expiry loop scans.
		{"pending is not indexed", At(1), nil},
		{"by paid-until", At(71), []store.SubID{SubID(4), SubID(5)}},
		{"strictly before", At(120), []store.SubID{SubID(4), SubID(5)}},
		{"all watched", At(1000), []store.SubID{SubID(4), SubID(5), SubID(1)}},
	}
	for _, tc := range dueTests {
		t.Run("due "+tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, dueBefore(t, rs, tc.before))
		})
	}

	t.Run("invalid", func(t *testing.T) {
		for _, s := range []*store.ReceiverSubscription{
			{State: store.SubActive},
			{ID: SubID(1), State: 0},
			{ID: SubID(1), State: 42},
		} {
			err := rs.Update(ctx, func(tx store.ReceiverTx) error {
				return tx.PutSubscription(s)
			})
			require.ErrorIs(t, err, store.ErrInvalid)
		}
	})

	t.Run("update inside expiry scan", func(t *testing.T) {
		require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
			return tx.SubscriptionsDueBefore(At(1000), func(s *store.ReceiverSubscription) error {
				s.State = store.SubExpired
				return tx.PutSubscription(s)
			})
		}))
		require.Empty(t, dueBefore(t, rs, At(1000)))
		require.Len(t, listSubs(t, rs, store.SubExpired, store.Page{}), 3)
		require.Equal(t, []store.SubID{SubID(3)}, listSubs(t, rs, store.SubPending, store.Page{}))
	})
}

func ptr[T any](v T) *T { return &v }

func testReceiverPayments(t *testing.T, open Open) {
	rs, ctx := open(t), Ctx(t)
	a, b := SubID(1), SubID(2)

	pays := []*store.Payment{
		{Hash: HashOf(1), SubID: a, Seq: 1, Amount: 1000, State: store.PaymentCredited},
		{Hash: HashOf(2), SubID: a, Seq: 2, Amount: 2000, State: store.PaymentCredited},
		{Hash: HashOf(3), SubID: b, Seq: 1, Amount: 3000, State: store.PaymentRefused,
			Reason: "below minimum"},
		{Hash: HashOf(4), State: store.PaymentUnclaimed, Amount: 4000},
		{Hash: HashOf(5), SubID: a, Seq: 3, Amount: 5000, State: store.PaymentCredited},
	}
	require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
		for _, p := range pays {
			if err := tx.PutPayment(p); err != nil {
				return err
			}
		}
		return nil
	}))

	t.Run("by hash", func(t *testing.T) {
		require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
			for _, p := range pays {
				got, err := tx.Payment(p.Hash)
				require.NoError(t, err)
				require.Equal(t, p, got)
			}
			_, err := tx.Payment(HashOf(99))
			require.ErrorIs(t, err, store.ErrNotFound)
			return nil
		}))
	})

	seqTests := []struct {
		name string
		sub  store.SubID
		seq  uint64
		want *store.Payment
		err  error
	}{
		{"a/1", a, 1, pays[0], nil},
		{"a/3", a, 3, pays[4], nil},
		{"b/1", b, 1, pays[2], nil},
		{"b/2 missing", b, 2, nil, store.ErrNotFound},
	}
	for _, tc := range seqTests {
		t.Run("by seq "+tc.name, func(t *testing.T) {
			require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
				got, err := tx.PaymentBySeq(tc.sub, tc.seq)
				require.ErrorIs(t, err, tc.err)
				require.Equal(t, tc.want, got)
				return nil
			}))
		})
	}

	listTests := []struct {
		name  string
		sub   store.SubID
		after uint64
		want  []*store.Payment
	}{
		{"a all", a, 0, []*store.Payment{pays[0], pays[1], pays[4]}},
		{"a after 1", a, 1, []*store.Payment{pays[1], pays[4]}},
		{"a after max", a, ^uint64(0), nil},
		{"b", b, 0, []*store.Payment{pays[2]}},
	}
	for _, tc := range listTests {
		t.Run("for each "+tc.name, func(t *testing.T) {
			var got []*store.Payment
			require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
				return tx.ForEachPayment(tc.sub, tc.after, func(p *store.Payment) error {
					got = append(got, p)
					return nil
				})
			}))
			require.Equal(t, tc.want, got)
		})
	}

	t.Run("reindex on move", func(t *testing.T) {
		moved := *pays[3]
		moved.SubID, moved.Seq, moved.State = b, 7, store.PaymentCredited
		require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
			return tx.PutPayment(&moved)
		}))
		moved2 := moved
		moved2.Seq = 8
		require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
			return tx.PutPayment(&moved2)
		}))
		require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
			_, err := tx.PaymentBySeq(b, 7)
			require.ErrorIs(t, err, store.ErrNotFound)
			got, err := tx.PaymentBySeq(b, 8)
			require.NoError(t, err)
			require.Equal(t, &moved2, got)
			return nil
		}))
	})

	t.Run("invalid state", func(t *testing.T) {
		err := rs.Update(ctx, func(tx store.ReceiverTx) error {
			return tx.PutPayment(&store.Payment{Hash: HashOf(9)})
		})
		require.ErrorIs(t, err, store.ErrInvalid)
	})
}

func testReceiverIndices(t *testing.T, open Open) {
	rs, ctx := open(t), Ctx(t)

	require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
		s, err := tx.SettleIndex()
		require.NoError(t, err)
		require.Zero(t, s)
		a, err := tx.AddIndex()
		require.NoError(t, err)
		require.Zero(t, a)
		return nil
	}))
	require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
		if err := tx.SetSettleIndex(41); err != nil {
			return err
		}
		return tx.SetAddIndex(99)
	}))
	require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
		s, err := tx.SettleIndex()
		require.NoError(t, err)
		require.EqualValues(t, 41, s)
		a, err := tx.AddIndex()
		require.NoError(t, err)
		require.EqualValues(t, 99, a)
		return nil
	}))
}

func testReceiverEvents(t *testing.T, open Open) {
	rs, ctx := open(t), Ctx(t)

	var ids []store.EventID
	require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
		for i := 0; i < 4; i++ {
			ev := &store.Event{SubID: SubID(1), Type: store.EventPaymentReceived,
				Payload: []byte{byte(i)}, CreatedAt: At(int64(i + 1))}
			if err := tx.AppendEvent(ev); err != nil {
				return err
			}
			ids = append(ids, ev.ID)
		}
		return nil
	}))
	require.Equal(t, []store.EventID{1, 2, 3, 4}, ids)

	pending := func(after store.EventID) []store.EventID {
		var got []store.EventID
		require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
			return tx.ForEachPendingEvent(after, func(ev *store.Event) error {
				got = append(got, ev.ID)
				return nil
			})
		}))
		return got
	}
	require.Equal(t, []store.EventID{1, 2, 3, 4}, pending(0))
	require.Equal(t, []store.EventID{3, 4}, pending(2))

	require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
		if err := tx.MarkEventDelivered(2, At(50)); err != nil {
			return err
		}
		done, err := tx.Event(2)
		if err != nil {
			return err
		}
		done.FinishedAt = []store.EndpointID{{1}, {0xff, 2}}
		if err := tx.PutEvent(done); err != nil {
			return err
		}
		ev, err := tx.Event(3)
		if err != nil {
			return err
		}
		ev.Attempts++
		ev.NextAttempt = At(60)
		ev.LastError = "HTTP 503"
		return tx.PutEvent(ev)
	}))

	tests := []struct {
		name string
		id   store.EventID
		want func(t *testing.T, ev *store.Event)
		err  error
	}{
		{"delivered", 2, func(t *testing.T, ev *store.Event) {
			require.True(t, ev.Delivered)
			require.True(t, ev.DeliveredAt.Equal(At(50)))
			require.Equal(t, []store.EndpointID{{1}, {0xff, 2}},
				ev.FinishedAt)
		}, nil},
		{"retried", 3, func(t *testing.T, ev *store.Event) {
			require.False(t, ev.Delivered)
			require.EqualValues(t, 1, ev.Attempts)
			require.Equal(t, "HTTP 503", ev.LastError)
			require.Nil(t, ev.FinishedAt, "not kept")
		}, nil},
		{"missing", 9, nil, store.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
				ev, err := tx.Event(tc.id)
				require.ErrorIs(t, err, tc.err)
				if tc.want != nil {
					tc.want(t, ev)
				}
				return nil
			}))
		})
	}
	require.Equal(t, []store.EventID{1, 3, 4}, pending(0))

	t.Run("put unknown", func(t *testing.T) {
		err := rs.Update(ctx, func(tx store.ReceiverTx) error {
			return tx.PutEvent(&store.Event{ID: 77})
		})
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("ids keep growing across reopen", func(t *testing.T) {
		require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
			ev := &store.Event{Type: store.EventSubscriptionCreated}
			require.NoError(t, tx.AppendEvent(ev))
			require.EqualValues(t, 5, ev.ID)
			return nil
		}))
	})

	t.Run("stop early", func(t *testing.T) {
		n := 0
		require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
			return tx.ForEachPendingEvent(0, func(*store.Event) error {
				n++
				return store.ErrStop
			})
		}))
		require.Equal(t, 1, n)
	})
}

// testUpdateSemantics covers what every Update promises: a failing step
// leaves nothing behind, a View cannot write, a cancelled context stops
// the step, and the caller's error comes back as is.
func testUpdateSemantics(t *testing.T, open Open) {
	rs, ctx := open(t), Ctx(t)
	require.NoError(t, PutActiveSub(ctx, rs, SubID(1)))
	errBoom := errors.New("boom")

	tests := []struct {
		name string
		run  func() error
		want error
	}{
		{"rollback on error", func() error {
			return rs.Update(ctx, func(tx store.ReceiverTx) error {
				if err := tx.SetSettleIndex(5); err != nil {
					return err
				}
				return errBoom
			})
		}, errBoom},
		{"view is read-only", func() error {
			return rs.View(ctx, func(tx store.ReceiverTx) error {
				return tx.SetSettleIndex(5)
			})
		}, nil},
		{"cancelled context", func() error {
			c, cancel := context.WithCancel(ctx)
			cancel()
			return rs.Update(c, func(tx store.ReceiverTx) error {
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
	require.NoError(t, rs.View(ctx, func(tx store.ReceiverTx) error {
		idx, err := tx.SettleIndex()
		require.NoError(t, err)
		require.Zero(t, idx, "no failed step may leave a write behind")
		return nil
	}))
}
