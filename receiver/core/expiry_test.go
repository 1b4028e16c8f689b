package core_test

import (
	"context"
	"testing"
	"time"

	"github.com/satstream/satstream/receiver/core"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// dueReadCounter counts the subscriptions the due scan reads (and decodes).
type dueReadCounter struct {
	store.ReceiverTx
	reads *int
}

func (c dueReadCounter) SubscriptionsDueBefore(t time.Time,
	fn func(*store.ReceiverSubscription) error) error {

	return c.ReceiverTx.SubscriptionsDueBefore(t,
		func(s *store.ReceiverSubscription) error {
			*c.reads++
			return fn(s)
		})
}

// TestSweepReadEveryPastDueSubscriptionEachSecond reproduces the scale
// profile's expiry loop: every one-second sweep re-read and decoded every
// subscription that was past due but still in grace, and aged none of them
// until grace ended (38-59% of the receiver's CPU with 10,000 of them).
// Driven second by second through a real store, each subscription must be
// read only at the sweep that changes its state, aged at the first sweep at
// or after its paid time and its grace end (never earlier, never a sweep
// later), and the sweep must follow a credit in grace, a PATCH of grace, a
// cancel and a restart.
func TestSweepReadEveryPastDueSubscriptionEachSecond(t *testing.T) {
	t.Parallel()
	// testTerms: 1000 msat buys 100 s, grace 60 s.
	tests := []struct {
		name string
		// at is the second of the action, do the action.
		at int
		do func(t *testing.T, e *sweepEnv, now time.Time)
		// want is the second each state was first seen at.
		want map[store.SubState]int
	}{{
		name: "grace ends",
		want: map[store.SubState]int{store.SubPastDue: 100,
			store.SubExpired: 160},
	}, {
		name: "credit in grace restores",
		at:   130,
		do: func(t *testing.T, e *sweepEnv, now time.Time) {
			require.True(t, e.apply(t, core.Incoming{
				Hash: hashOf(2), Amount: 1000, Now: now,
				Custom: rt.Records(t, e.sub, 2, nil, false),
			}).Credited)
		},
		// Counted from the old end of paid time: 100 + 100.
		want: map[store.SubState]int{store.SubPastDue: 100,
			store.SubActive: 130, store.SubExpired: 260},
	}, {
		name: "shorter grace",
		at:   110,
		do:   setGrace(20 * time.Second),
		want: map[store.SubState]int{store.SubPastDue: 100,
			store.SubExpired: 120},
	}, {
		name: "grace shortened to before now",
		at:   110,
		do:   setGrace(5 * time.Second),
		want: map[store.SubState]int{store.SubPastDue: 100,
			store.SubExpired: 110},
	}, {
		name: "longer grace",
		at:   110,
		do:   setGrace(2 * time.Minute),
		want: map[store.SubState]int{store.SubPastDue: 100,
			store.SubExpired: 220},
	}, {
		name: "grace given while active",
		at:   50,
		do:   setGrace(0),
		want: map[store.SubState]int{store.SubExpired: 100},
	}, {
		name: "cancel in grace",
		at:   110,
		do: func(t *testing.T, e *sweepEnv, now time.Time) {
			require.NoError(t, e.rs.Update(context.Background(),
				func(tx store.ReceiverTx) error {
					_, err := core.Transition(tx, e.sub,
						core.TrigProviderCancel, now)
					return err
				}))
		},
		want: map[store.SubState]int{store.SubPastDue: 100,
			store.SubCancelledByProvider: 110},
	}, {
		name: "restart in grace",
		at:   130,
		do: func(t *testing.T, e *sweepEnv, _ time.Time) {
			e.reopen(t)
		},
		want: map[store.SubState]int{store.SubPastDue: 100,
			store.SubExpired: 160},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newSweepEnv(t)
			require.True(t, e.apply(t, core.Incoming{Hash: hashOf(1),
				Amount: 1000, Now: t0,
				Custom: rt.Records(t, e.sub, 1, nil, false)}).Credited)

			got := map[store.SubState]int{}
			reads, aged := 0, 0
			last := store.SubActive
			for sec := 1; sec <= 400; sec++ {
				now := t0.Add(time.Duration(sec) * time.Second)
				if tc.do != nil && sec == tc.at {
					tc.do(t, e, now)
				}
				aged += e.sweep(t, now, &reads)
				s := e.subscription(t)
				if s.State != last {
					if _, seen := got[s.State]; !seen {
						got[s.State] = sec
					}
					last = s.State
				}
			}
			require.Equal(t, tc.want, got)
			require.Equal(t, aged, reads, "every read must age: "+
				"none while in grace")
		})
	}
}

// setGrace is a PATCH of the subscription's grace period.
func setGrace(g time.Duration) func(*testing.T, *sweepEnv, time.Time) {
	return func(t *testing.T, e *sweepEnv, now time.Time) {
		require.NoError(t, e.rs.Update(context.Background(),
			func(tx store.ReceiverTx) error {
				s, err := tx.Subscription(e.sub)
				if err != nil {
					return err
				}
				s.Terms.Grace = g
				s.UpdatedAt = now
				return tx.PutSubscription(s)
			}))
	}
}

// sweepEnv is a store in a directory it can close and open again.
type sweepEnv struct {
	*env
	dir string
	db  *store.DB
	rs  store.ReceiverStore
}

func newSweepEnv(t *testing.T) *sweepEnv {
	e := &sweepEnv{env: newEnv(t), dir: t.TempDir()}
	// Copy the env's plans and subscription into a store of our own.
	src := e.env.db
	e.open(t)
	require.NoError(t, e.rs.Update(context.Background(),
		func(tx store.ReceiverTx) error {
			return src.View(context.Background(),
				func(src store.ReceiverTx) error {
					err := src.ForEachPlan(func(p *store.Plan) error {
						return tx.PutPlan(p)
					})
					if err != nil {
						return err
					}
					s, err := src.Subscription(e.sub)
					if err != nil {
						return err
					}
					return tx.PutSubscription(s)
				})
		}))
	return e
}

func (e *sweepEnv) open(t *testing.T) {
	t.Helper()
	db, err := store.Open(context.Background(), e.dir,
		store.DefaultOptions())
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	e.db, e.rs = db, db.Receiver()
	if e.env != nil {
		e.env.db = e.rs
	}
}

func (e *sweepEnv) reopen(t *testing.T) {
	t.Helper()
	require.NoError(t, e.db.Close())
	e.open(t)
}

func (e *sweepEnv) subscription(t *testing.T) *store.ReceiverSubscription {
	return e.env.subscription(t, e.sub)
}

// sweep is one pass of the daemon's expiry loop at now; it adds the
// subscriptions the due scan read to reads and returns how many it aged.
func (e *sweepEnv) sweep(t *testing.T, now time.Time, reads *int) int {
	t.Helper()
	var ids []store.SubID
	require.NoError(t, e.rs.View(context.Background(),
		func(tx store.ReceiverTx) error {
			var err error
			ids, err = core.DueSubscriptions(
				dueReadCounter{ReceiverTx: tx, reads: reads}, now, 1000)
			return err
		}))
	aged, err := core.AgeSubscriptions(context.Background(), e.rs, ids,
		now, func(id store.SubID, err error) {
			t.Errorf("ageing %v: %v", id, err)
		})
	require.NoError(t, err)
	return len(aged)
}
