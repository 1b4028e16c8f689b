package core_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/receiver/core"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestLifecycleTable(t *testing.T) {
	t.Parallel()
	S := store.SubPending
	A, P, E := store.SubActive, store.SubPastDue, store.SubExpired
	CP, CY := store.SubCancelledByProvider, store.SubCancelledByPayer
	type row struct {
		from store.SubState
		trig core.Trigger
		to   store.SubState
		ev   store.EventType
		ok   bool
	}
	rows := []row{
		{S, core.TrigPayment, A, store.EventSubscriptionActivated, true},
		{S, core.TrigPaidTimeOver, 0, 0, false},
		{S, core.TrigGraceOver, 0, 0, false},
		{S, core.TrigProviderCancel, CP, store.EventSubscriptionCancelled, true},
		{S, core.TrigPayerCancel, CY, store.EventSubscriptionCancelled, true},
		{A, core.TrigPayment, A, 0, true},
		{A, core.TrigPaidTimeOver, P, store.EventSubscriptionPastDue, true},
		{A, core.TrigGraceOver, E, store.EventSubscriptionExpired, true},
		{A, core.TrigProviderCancel, CP, store.EventSubscriptionCancelled, true},
		{P, core.TrigPayment, A, store.EventSubscriptionReactivated, true},
		{P, core.TrigPaidTimeOver, 0, 0, false},
		{P, core.TrigGraceOver, E, store.EventSubscriptionExpired, true},
		{P, core.TrigPayerCancel, CY, store.EventSubscriptionCancelled, true},
		{E, core.TrigPayment, A, store.EventSubscriptionReactivated, true},
		{E, core.TrigGraceOver, 0, 0, false},
		{E, core.TrigProviderCancel, CP, store.EventSubscriptionCancelled, true},
	}
	for _, final := range []store.SubState{CP, CY} {
		for trig := core.TrigPayment; trig <= core.TrigPayerCancel; trig++ {
			rows = append(rows, row{final, trig, 0, 0, false})
		}
	}
	for _, r := range rows {
		t.Run(fmt.Sprintf("%v on %v", r.from, r.trig), func(t *testing.T) {
			to, ev, err := core.Next(r.from, r.trig)
			if !r.ok {
				require.ErrorIs(t, err, core.ErrTransition)
				return
			}
			require.NoError(t, err)
			require.Equal(t, r.to, to)
			require.Equal(t, r.ev, ev)
		})
	}
}

func TestCreditFor(t *testing.T) {
	t.Parallel()
	terms := store.Terms{RatePerSecond: 7, MaxPrepay: 24 * time.Hour,
		Grace: time.Minute}
	tests := []struct {
		name      string
		state     store.SubState
		paidUntil time.Time
		remainder lnwire.MilliSatoshi
		rate      lnwire.MilliSatoshi
		maxPrepay time.Duration
		amt       lnwire.MilliSatoshi
		ok        bool
		secs      uint64
		rem       lnwire.MilliSatoshi
		until     time.Time
	}{
		{name: "pending starts now", state: store.SubPending,
			amt: 100_000, ok: true, secs: 14285, rem: 5,
			until: t0.Add(14285 * time.Second)},
		{name: "remainder carried", state: store.SubActive,
			paidUntil: t0.Add(time.Hour), remainder: 5, amt: 100_000,
			ok: true, secs: 14286, rem: 3,
			until: t0.Add(time.Hour + 14286*time.Second)},
		{name: "past due inside grace: grace used is paid for",
			state: store.SubPastDue, paidUntil: t0.Add(-30 * time.Second),
			amt: 700, ok: true, secs: 100, rem: 0,
			until: t0.Add(70 * time.Second)},
		{name: "active not yet aged, inside grace",
			state: store.SubActive, paidUntil: t0.Add(-30 * time.Second),
			amt: 700, ok: true, secs: 100, rem: 0,
			until: t0.Add(70 * time.Second)},
		{name: "active not yet aged, beyond grace starts now",
			state: store.SubActive, paidUntil: t0.Add(-time.Minute),
			amt: 700, ok: true, secs: 100, rem: 0,
			until: t0.Add(100 * time.Second)},
		{name: "expired starts now", state: store.SubExpired,
			paidUntil: t0.Add(-time.Hour), amt: 700, ok: true,
			secs: 100, until: t0.Add(100 * time.Second)},
		// No whole second bought: a pending subscription keeps no paid
		// time (it would otherwise start a grace period it never paid).
		{name: "tiny rate below one second", state: store.SubPending,
			amt: 6, ok: true, secs: 0, rem: 6, until: time.Time{}},
		{name: "rate 1 msat, no prepay limit", state: store.SubPending,
			rate: 1, maxPrepay: -1, amt: 86_400_000, ok: true,
			secs: 86_400_000, until: t0.Add(86_400_000 * time.Second)},
		{name: "max prepay exact", state: store.SubPending,
			amt: 7 * 86_400, ok: true, secs: 86_400,
			until: t0.Add(24 * time.Hour)},
		{name: "max prepay exceeded", state: store.SubPending,
			amt: 7*86_400 + 7, ok: false},
		{name: "max prepay counts paid time ahead",
			state: store.SubActive, paidUntil: t0.Add(23 * time.Hour),
			amt: 7 * 3601, ok: false},
		{name: "huge amount", state: store.SubPending,
			amt: math.MaxUint64, remainder: math.MaxUint64, ok: false},
		{name: "huge amount without limit", state: store.SubPending,
			amt: math.MaxUint64, maxPrepay: -1, ok: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tm := terms
			if tc.rate != 0 {
				tm.RatePerSecond = tc.rate
			}
			if tc.maxPrepay < 0 {
				tm.MaxPrepay = 0
			}
			sub := &store.ReceiverSubscription{State: tc.state,
				PaidUntil: tc.paidUntil, Remainder: tc.remainder,
				Terms: tm}
			c, ok := core.CreditFor(sub, tc.amt, t0)
			require.Equal(t, tc.ok, ok)
			if !ok {
				return
			}
			require.Equal(t, tc.secs, c.Seconds)
			require.Equal(t, tc.rem, c.Remainder)
			require.Equal(t, tc.until, c.PaidUntil)
			// Nothing is lost.
			require.Equal(t, uint64(tc.amt+tc.remainder),
				c.Seconds*uint64(tm.RatePerSecond)+uint64(c.Remainder))
		})
	}
}

func TestPaid(t *testing.T) {
	t.Parallel()
	sub := &store.ReceiverSubscription{State: store.SubActive,
		PaidUntil: t0, Terms: store.Terms{Grace: time.Minute}}
	require.True(t, core.Paid(sub, t0.Add(-time.Second)))
	require.True(t, core.Paid(sub, t0.Add(59*time.Second)))
	require.False(t, core.Paid(sub, t0.Add(time.Minute)))
	// A cancelled subscription is served until paid time ends, without
	// grace.
	sub.State = store.SubCancelledByProvider
	require.True(t, core.Paid(sub, t0.Add(-time.Second)))
	require.False(t, core.Paid(sub, t0))
	sub.State = store.SubExpired
	require.False(t, core.Paid(sub, t0.Add(-time.Second)))
}

// env is a ledger with one closed plan, one open plan and one subscription.
type env struct {
	db   store.ReceiverStore
	sub  store.SubID
	plan [16]byte
	open [16]byte
}

var testTerms = store.Terms{RatePerSecond: 10, MinPayment: 1000,
	Grace: time.Minute, MaxPrepay: time.Hour}

func newEnv(t *testing.T) *env {
	db := rt.OpenStore(t).Receiver()
	e := &env{db: db, sub: store.SubID{1, 2, 3}, plan: [16]byte{9},
		open: [16]byte{8}}
	require.NoError(t, db.Update(context.Background(), func(tx store.ReceiverTx) error {
		closed := &store.Plan{ID: store.PlanID(fmt.Sprintf("%x", e.plan)),
			Terms: testTerms}
		if err := tx.PutPlan(closed); err != nil {
			return err
		}
		if err := tx.PutPlan(&store.Plan{ID: store.PlanID(fmt.Sprintf("%x", e.open)),
			Terms: testTerms, OpenEnrolment: true}); err != nil {
			return err
		}
		return tx.PutSubscription(core.NewSubscription(e.sub, closed, t0))
	}))
	return e
}

func (e *env) apply(t *testing.T, in core.Incoming) core.Outcome {
	t.Helper()
	var out core.Outcome
	require.NoError(t, e.db.Update(context.Background(), func(tx store.ReceiverTx) error {
		var err error
		out, err = core.Apply(tx, in, 0)
		return err
	}))
	return out
}

func (e *env) subscription(t *testing.T, id store.SubID) *store.ReceiverSubscription {
	t.Helper()
	var s *store.ReceiverSubscription
	require.NoError(t, e.db.View(context.Background(), func(tx store.ReceiverTx) error {
		var err error
		s, err = tx.Subscription(id)
		return err
	}))
	return s
}

func hashOf(b byte) store.Hash { return store.Hash{b} }

func TestApplyRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Credit sequence 5 first.
	out := e.apply(t, core.Incoming{Hash: hashOf(1), Amount: 5000,
		Custom: rt.Records(t, e.sub, 5, nil, false), Now: t0})
	require.True(t, out.Credited)
	require.Equal(t, core.ActionSettle, out.Action)

	unknown := store.SubID{7}
	badVersion := rt.Records(t, e.sub, 6, nil, false)
	badVersion[1397948417] = []byte{2}
	short := rt.Records(t, e.sub, 6, nil, false)
	short[1397948421] = []byte{1}
	tests := []struct {
		name   string
		amt    lnwire.MilliSatoshi
		custom map[uint64][]byte
		reason core.Reason
	}{
		{"unknown version", 5000, badVersion, core.ReasonMalformed},
		{"short sequence", 5000, short, core.ReasonMalformed},
		{"unknown subscription", 5000, rt.Records(t, unknown, 1, nil, false),
			core.ReasonUnknownSubscription},
		{"unknown plan", 5000, rt.Records(t, unknown, 1, &[16]byte{3}, false),
			core.ReasonUnknownPlan},
		{"closed plan", 5000, rt.Records(t, unknown, 1, &e.plan, false),
			core.ReasonPlanNotOpen},
		{"below minimum", 999, rt.Records(t, e.sub, 6, nil, false),
			core.ReasonBelowMinimum},
		{"duplicate sequence", 5000, rt.Records(t, e.sub, 5, nil, false),
			core.ReasonDuplicateSequence},
		{"max prepay", 10*3600 + 1, rt.Records(t, e.sub, 7, nil, false),
			core.ReasonMaxPrepay},
		{"cancel for unknown subscription", 1000,
			rt.Records(t, unknown, 1, &e.open, true),
			core.ReasonUnknownSubscription},
	}
	before := e.subscription(t, e.sub)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := e.apply(t, core.Incoming{Hash: hashOf(byte(10 + i)),
				Amount: tc.amt, Custom: tc.custom, Now: t0})
			require.Equal(t, core.ActionCancel, out.Action)
			require.Equal(t, tc.reason, out.Reason, out.Detail)
			require.False(t, out.Credited)

			// The same hash again is refused again.
			again := e.apply(t, core.Incoming{Hash: hashOf(byte(10 + i)),
				Amount: tc.amt, Custom: tc.custom, Now: t0})
			require.Equal(t, core.ActionCancel, again.Action)
		})
	}
	after := e.subscription(t, e.sub)
	require.Equal(t, before, after)
}

func TestApplyExactlyOnceAndCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	in := core.Incoming{Hash: hashOf(1), Amount: 1005,
		Custom: rt.Records(t, e.sub, 1, nil, false), Now: t0}
	require.True(t, e.apply(t, in).Credited)
	dup := e.apply(t, in)
	require.True(t, dup.Duplicate)
	require.Equal(t, core.ActionSettle, dup.Action)
	// Same hash, settled by lnd again: still not credited twice.
	in.Settled, in.SettleIndex = true, 4
	require.Equal(t, core.ActionNone, e.apply(t, in).Action)

	s := e.subscription(t, e.sub)
	require.Equal(t, store.SubActive, s.State)
	require.EqualValues(t, 1, s.Payments)
	require.EqualValues(t, 100, s.TotalSeconds)
	require.EqualValues(t, 5, s.Remainder)
	require.Equal(t, t0.Add(100*time.Second), s.PaidUntil)

	// Out-of-order arrival inside the window is fine.
	require.True(t, e.apply(t, core.Incoming{Hash: hashOf(3), Amount: 1000,
		Custom: rt.Records(t, e.sub, 3, nil, false), Now: t0}).Credited)
	require.True(t, e.apply(t, core.Incoming{Hash: hashOf(2), Amount: 1000,
		Custom: rt.Records(t, e.sub, 2, nil, false), Now: t0}).Credited)

	// Payer cancel: recorded, refused, idempotent.
	out := e.apply(t, core.Incoming{Hash: hashOf(4), Amount: 1000,
		Custom: rt.Records(t, e.sub, 4, nil, true), Now: t0})
	require.Equal(t, core.ActionCancel, out.Action)
	require.Equal(t, core.ReasonPayerCancel, out.Reason)
	require.True(t, out.Cancelled)
	require.Equal(t, store.SubCancelledByPayer, e.subscription(t, e.sub).State)
	out = e.apply(t, core.Incoming{Hash: hashOf(5), Amount: 1000,
		Custom: rt.Records(t, e.sub, 5, nil, true), Now: t0})
	require.False(t, out.Cancelled)
	out = e.apply(t, core.Incoming{Hash: hashOf(6), Amount: 1000,
		Custom: rt.Records(t, e.sub, 6, nil, false), Now: t0})
	require.Equal(t, core.ReasonCancelled, out.Reason)
}

func TestApplyStaleSequenceWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	require.True(t, e.apply(t, core.Incoming{Hash: hashOf(1), Amount: 1000,
		Custom: rt.Records(t, e.sub, 2000, nil, false), Now: t0}).Credited)
	out := e.apply(t, core.Incoming{Hash: hashOf(2), Amount: 1000,
		Custom: rt.Records(t, e.sub, 2000-1024, nil, false), Now: t0})
	require.Equal(t, core.ReasonStaleSequence, out.Reason)
	require.True(t, e.apply(t, core.Incoming{Hash: hashOf(3), Amount: 1000,
		Custom: rt.Records(t, e.sub, 2000-1023, nil, false), Now: t0}).Credited)
}

func TestApplyNotOursAndUnclaimed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	out := e.apply(t, core.Incoming{Hash: hashOf(1), Amount: 1000,
		Custom: map[uint64][]byte{7629169: []byte("{}")}, Now: t0})
	require.True(t, out.NotOurs)
	require.Equal(t, core.ActionSettle, out.Action)

	// lnd settled on its own a payment we would refuse: unclaimed.
	out = e.apply(t, core.Incoming{Hash: hashOf(2), Amount: 10,
		Custom: rt.Records(t, e.sub, 1, nil, false), Now: t0,
		Settled: true, SettleIndex: 7})
	require.True(t, out.Unclaimed)
	require.Equal(t, core.ActionNone, out.Action)
	require.NoError(t, e.db.View(context.Background(), func(tx store.ReceiverTx) error {
		p, err := tx.Payment(hashOf(2))
		require.NoError(t, err)
		require.Equal(t, store.PaymentUnclaimed, p.State)
		idx, err := tx.SettleIndex()
		require.EqualValues(t, 7, idx)
		return err
	}))
}

func TestOpenEnrolmentAndReverse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := store.SubID{0xaa}
	out := e.apply(t, core.Incoming{Hash: hashOf(1), Amount: 1234,
		Custom: rt.Records(t, id, 1, &e.open, false), Now: t0})
	require.True(t, out.Credited)
	s := e.subscription(t, id)
	require.Equal(t, store.SubActive, s.State)
	require.EqualValues(t, 123, s.TotalSeconds)

	var reversed bool
	require.NoError(t, e.db.Update(context.Background(), func(tx store.ReceiverTx) error {
		var err error
		reversed, err = core.Reverse(tx, hashOf(1), t0)
		return err
	}))
	require.True(t, reversed)
	s = e.subscription(t, id)
	require.EqualValues(t, 0, s.TotalSeconds)
	require.EqualValues(t, 0, s.TotalPaid)
	require.EqualValues(t, 0, s.Remainder)
	require.True(t, s.PaidUntil.IsZero())
	require.Equal(t, store.SubPending, s.State)
	// The sequence is free again.
	require.True(t, e.apply(t, core.Incoming{Hash: hashOf(2), Amount: 1234,
		Custom: rt.Records(t, id, 1, nil, false), Now: t0}).Credited)
}

func TestAgeing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	require.True(t, e.apply(t, core.Incoming{Hash: hashOf(1), Amount: 1000,
		Custom: rt.Records(t, e.sub, 1, nil, false), Now: t0}).Credited)
	age := func(now time.Time) store.SubState {
		require.NoError(t, e.db.Update(context.Background(), func(tx store.ReceiverTx) error {
			ids, err := core.DueSubscriptions(tx, now, 0)
			if err != nil {
				return err
			}
			for _, id := range ids {
				s, err := tx.Subscription(id)
				if err != nil {
					return err
				}
				if _, err := core.Age(tx, s, now); err != nil {
					return err
				}
			}
			return nil
		}))
		return e.subscription(t, e.sub).State
	}
	require.Equal(t, store.SubActive, age(t0.Add(99*time.Second)))
	require.Equal(t, store.SubPastDue, age(t0.Add(100*time.Second)))
	require.Equal(t, store.SubPastDue, age(t0.Add(159*time.Second)))

	// A payment in grace counts from the old end of paid time: grace
	// the payer used and came back within is paid for.
	out := e.apply(t, core.Incoming{Hash: hashOf(2), Amount: 1000,
		Custom: rt.Records(t, e.sub, 2, nil, false),
		Now:    t0.Add(150 * time.Second)})
	require.True(t, out.Credited)
	s := e.subscription(t, e.sub)
	require.Equal(t, store.SubActive, s.State)
	require.Equal(t, t0.Add(200*time.Second), s.PaidUntil)

	require.Equal(t, store.SubPastDue, age(t0.Add(259*time.Second)))
	require.Equal(t, store.SubExpired, age(t0.Add(260*time.Second)))
	// After expiry a payment counts from the moment of payment.
	now := t0.Add(1000 * time.Second)
	require.True(t, e.apply(t, core.Incoming{Hash: hashOf(3), Amount: 1000,
		Custom: rt.Records(t, e.sub, 3, nil, false), Now: now}).Credited)
	s = e.subscription(t, e.sub)
	require.Equal(t, store.SubActive, s.State)
	require.Equal(t, now.Add(100*time.Second), s.PaidUntil)

	// Events: created? (made by NewSubscription directly: no),
	// activated, payment x3, past_due, reactivated, expired, reactivated.
	var types []store.EventType
	require.NoError(t, e.db.View(context.Background(), func(tx store.ReceiverTx) error {
		return tx.ForEachPendingEvent(0, func(ev *store.Event) error {
			types = append(types, ev.Type)
			return nil
		})
	}))
	require.Equal(t, []store.EventType{
		store.EventSubscriptionActivated, store.EventPaymentReceived,
		store.EventSubscriptionPastDue,
		store.EventSubscriptionReactivated, store.EventPaymentReceived,
		store.EventSubscriptionPastDue, store.EventSubscriptionExpired,
		store.EventSubscriptionReactivated, store.EventPaymentReceived,
	}, types)
}

// TestReplayedUnclaimedRowPutsDetailInReason reproduces a replayed HTLC
// of an earlier unclaimed row: its whole stored "reason: detail" string,
// with the secret an older version wrote into the detail, became the
// outcome's reason, so it went into the log and, as a free-form label,
// into the refusal metric. Only a known reason code may come out.
func TestReplayedUnclaimedRowPutsDetailInReason(t *testing.T) {
	t.Parallel()
	secret := store.SubID{0xee, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
		14, 15}
	tests := []struct {
		name   string
		stored string
		want   core.Reason
	}{
		{"legacy unknown subscription", "unknown_subscription: " +
			"subscription " + secret.Hex() + " is not known",
			core.ReasonUnknownSubscription},
		{"code only", "below_minimum", core.ReasonBelowMinimum},
		{"unknown code", "made_up: " + secret.Hex(),
			core.ReasonPreviouslyRefused},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			h := hashOf(byte(100 + i))
			require.NoError(t, e.db.Update(context.Background(),
				func(tx store.ReceiverTx) error {
					return tx.PutPayment(&store.Payment{
						Hash: h, Seq: 1, Amount: 10,
						State:       store.PaymentUnclaimed,
						SettleIndex: 3, Reason: tc.stored,
						ReceivedAt: t0})
				}))
			out := e.apply(t, core.Incoming{Hash: h, Amount: 10,
				Custom: rt.Records(t, secret, 1, nil, false),
				Now:    t0})
			require.Equal(t, tc.want, out.Reason)
			require.Contains(t, core.Reasons, out.Reason)
			require.Equal(t, core.ActionCancel, out.Action)
		})
	}
}
