package core_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/receiver/core"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

// ledgerEnv is a store with one plan (closed) and one pending subscription on
// the given terms.
type ledgerEnv struct {
	*env
	raw *store.DB
}

func newLedgerEnv(t *testing.T, terms store.Terms) *ledgerEnv {
	t.Helper()
	raw := rt.OpenStore(t)
	e := &env{db: raw.Receiver(), sub: store.SubID{1, 2, 3},
		plan: [16]byte{9}, open: [16]byte{8}}
	require.NoError(t, e.db.Update(context.Background(), func(tx store.ReceiverTx) error {
		plan := &store.Plan{ID: store.PlanID(fmt.Sprintf("%x", e.plan)),
			Terms: terms}
		if err := tx.PutPlan(plan); err != nil {
			return err
		}
		if err := tx.PutPlan(&store.Plan{ID: store.PlanID(fmt.Sprintf("%x", e.open)),
			Terms: terms, OpenEnrolment: true}); err != nil {
			return err
		}
		return tx.PutSubscription(core.NewSubscription(e.sub, plan, t0))
	}))
	return &ledgerEnv{env: e, raw: raw}
}

// pay applies a payment of amt with sequence seq at now; settled marks
// its HTLC settled afterwards (held otherwise, so Reverse may undo it).
func (e *ledgerEnv) pay(t *testing.T, h byte, seq uint64,
	amt lnwire.MilliSatoshi, now time.Time, settled bool) core.Outcome {

	t.Helper()
	out := e.apply(t, core.Incoming{Hash: hashOf(h), Amount: amt,
		Custom: rt.Records(t, e.sub, seq, nil, false), Now: now})
	require.True(t, out.Credited, "%s: %s", out.Reason, out.Detail)
	if settled {
		require.NoError(t, e.db.Update(context.Background(), func(tx store.ReceiverTx) error {
			return core.MarkSettled(tx, hashOf(h), uint64(h))
		}))
	}
	return out
}

func (e *ledgerEnv) reverse(t *testing.T, h byte, now time.Time) {
	t.Helper()
	var reversed bool
	require.NoError(t, e.db.Update(context.Background(), func(tx store.ReceiverTx) error {
		var err error
		reversed, err = core.Reverse(tx, hashOf(h), now)
		return err
	}))
	require.True(t, reversed)
}

func (e *ledgerEnv) age(t *testing.T, now time.Time) {
	t.Helper()
	require.NoError(t, e.db.Update(context.Background(), func(tx store.ReceiverTx) error {
		s, err := tx.Subscription(e.sub)
		if err != nil {
			return err
		}
		_, err = core.Age(tx, s, now)
		return err
	}))
}

// events returns every queued event.
func (e *ledgerEnv) events(t *testing.T) []*store.Event {
	t.Helper()
	var evs []*store.Event
	require.NoError(t, e.db.View(context.Background(), func(tx store.ReceiverTx) error {
		return tx.ForEachPendingEvent(0, func(ev *store.Event) error {
			evs = append(evs, ev)
			return nil
		})
	}))
	return evs
}

func (e *ledgerEnv) refusalCounts(t *testing.T) map[string]uint64 {
	t.Helper()
	counts := map[string]uint64{}
	require.NoError(t, e.db.View(context.Background(), func(tx store.ReceiverTx) error {
		return tx.ForEachRefusalCount(func(r string, n uint64) error {
			counts[r] = n
			return nil
		})
	}))
	return counts
}

// requireBalanced checks the ledger identity that a reversal must keep.
func requireBalanced(t *testing.T, s *store.ReceiverSubscription) {
	t.Helper()
	require.Equal(t, uint64(s.TotalPaid),
		s.TotalSeconds*uint64(s.Terms.RatePerSecond)+uint64(s.Remainder),
		"total_seconds*rate + remainder must equal total_paid")
}

// TestLatePaymentReceiverAndSenderDisagreeOnPaidUntil reproduces issue 10
// item 3: the receiver extended a past-due (or not yet aged) subscription
// from its old paid_until while the sender estimated from max(paid_until,
// now), so after any late payment the two sides disagreed for ever. The
// sender's estimate is simulated exactly as sender/engine.go computes it.
func TestLatePaymentReceiverAndSenderDisagreeOnPaidUntil(t *testing.T) {
	t.Parallel()
	const amt = 1005 // 100 s at 10 msat/s, 5 msat carried
	grace := testTerms.Grace
	tests := []struct {
		name string
		// late is when each payment after the first arrives, relative
		// to the end of paid time (negative: early).
		late []time.Duration
		// aged runs the expiry loop before each payment.
		aged bool
	}{
		{"on time", []time.Duration{-30 * time.Second, -time.Second,
			-99 * time.Second}, true},
		{"inside grace, expiry loop ran", []time.Duration{
			20 * time.Second, grace - time.Second, time.Second}, true},
		{"inside grace, expiry loop not run yet", []time.Duration{
			20 * time.Second, grace - time.Second}, false},
		{"beyond grace, expired", []time.Duration{grace + time.Second,
			10 * time.Minute}, true},
		{"beyond grace, expiry loop not run yet", []time.Duration{
			grace + time.Second, 10 * time.Minute}, false},
		{"mixed outages", []time.Duration{-30 * time.Second,
			20 * time.Second, 200 * time.Second, -10 * time.Second,
			59 * time.Second, 61 * time.Second, 0}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newLedgerEnv(t, testTerms)
			rate := testTerms.RatePerSecond

			// The sender's side.
			var sPaid time.Time
			var sRem lnwire.MilliSatoshi
			senderPays := func(now time.Time) {
				secs, rem := tlv.SecondsForAmount(amt, sRem, rate)
				sPaid = tlv.PaidUntilAfter(sPaid, now, testTerms.Grace, secs)
				sRem = rem
			}

			now := t0
			for i := 0; i <= len(tc.late); i++ {
				if i > 0 {
					now = e.subscription(t, e.sub).PaidUntil.Add(
						tc.late[i-1])
					if tc.aged {
						e.age(t, now)
					}
				}
				e.pay(t, byte(i+1), uint64(i+1), amt, now, true)
				senderPays(now)

				s := e.subscription(t, e.sub)
				require.Equal(t, sPaid, s.PaidUntil,
					"payment %d: receiver and sender disagree", i+1)
				require.Equal(t, sRem, s.Remainder)
				require.Equal(t, store.SubActive, s.State)
				require.True(t, core.Paid(s, now))
			}
		})
	}
}

// TestApplyRefusedAmountsOffAStoredIncrement reproduces issue 10 item 7: an
// increment the offer never carried made the receiver refuse every payment
// of such a plan as bad_increment. It is no longer enforced, even when an
// old record still holds one.
func TestApplyRefusedAmountsOffAStoredIncrement(t *testing.T) {
	t.Parallel()
	terms := testTerms
	terms.Increment = 500
	e := newLedgerEnv(t, terms)
	out := e.pay(t, 1, 1, 1234, t0, true)
	require.EqualValues(t, 123, out.Seconds)
}

// TestReverseZeroedTheRemainder reproduces issue 10 item 4: Reverse set the
// remainder to 0 instead of restoring the one from before the payment, and
// left last_sequence at the reversed payment's sequence.
func TestReverseZeroedTheRemainder(t *testing.T) {
	t.Parallel()
	terms := store.Terms{RatePerSecond: 1000, Grace: time.Minute,
		MaxPrepay: time.Hour}
	e := newLedgerEnv(t, terms)

	// 2600 msat: 2 s, 600 msat carried.
	e.pay(t, 1, 1, 2600, t0, true)
	// 1500 msat + 600 carried: 2 s, 100 carried; held.
	e.pay(t, 2, 2, 1500, t0, false)
	s := e.subscription(t, e.sub)
	require.EqualValues(t, 100, s.Remainder)
	require.EqualValues(t, 4, s.TotalSeconds)
	require.EqualValues(t, 2, s.LastSeq)

	e.reverse(t, 2, t0)
	s = e.subscription(t, e.sub)
	require.EqualValues(t, 600, s.Remainder)
	require.EqualValues(t, 2, s.TotalSeconds)
	require.EqualValues(t, 2600, s.TotalPaid)
	require.EqualValues(t, 1, s.Payments)
	require.EqualValues(t, 1, s.LastSeq)
	require.Equal(t, t0.Add(2*time.Second), s.PaidUntil)
	require.Equal(t, store.SubActive, s.State)
	requireBalanced(t, s)

	// The same payment again credits exactly as the first time.
	e.pay(t, 3, 2, 1500, t0, true)
	s = e.subscription(t, e.sub)
	require.EqualValues(t, 100, s.Remainder)
	require.EqualValues(t, 2, s.LastSeq)
	requireBalanced(t, s)
}

// TestReverseAfterLaterCreditUnbalancedTheLedger reproduces issue 10 item 4
// when later credits already used the carry the reversed payment left:
// whole seconds are taken back so total_seconds*rate + remainder ==
// total_paid still holds.
func TestReverseAfterLaterCreditUnbalancedTheLedger(t *testing.T) {
	t.Parallel()
	terms := store.Terms{RatePerSecond: 1000, Grace: time.Minute,
		MaxPrepay: time.Hour}
	tests := []struct {
		name      string
		pays      []lnwire.MilliSatoshi // seq i+1, hash i+1
		reverse   byte
		remainder lnwire.MilliSatoshi
		seconds   uint64
		lastSeq   uint64
		state     store.SubState
	}{
		// 2600 -> 2 s r600; 1500 -> 2 s r100; 1900 -> 2 s r0.
		// Reversing 1500: 0 + 2000 - 1500 = 500 carried back.
		{"carry left", []lnwire.MilliSatoshi{2600, 1500, 1900}, 2,
			500, 4, 3, store.SubActive},
		// 1500 -> 1 s r500; 500 -> 1 s r0. Reversing 1500 leaves
		// 500 alone: 0 s r500, which never activated anything.
		{"carry used by a later credit", []lnwire.MilliSatoshi{1500, 500},
			1, 500, 0, 2, store.SubPending},
		// Reversing the last payment restores the sequence below it.
		// 0 + 2000 - 1900 = 100.
		{"last sequence", []lnwire.MilliSatoshi{2600, 1500, 1900}, 3,
			100, 4, 2, store.SubActive},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newLedgerEnv(t, terms)
			for i, amt := range tc.pays {
				h := byte(i + 1)
				e.pay(t, h, uint64(i+1), amt, t0, h != tc.reverse)
			}
			before := e.subscription(t, e.sub)
			e.reverse(t, tc.reverse, t0)
			s := e.subscription(t, e.sub)
			require.Equal(t, tc.remainder, s.Remainder)
			require.Equal(t, tc.seconds, s.TotalSeconds)
			require.Equal(t, tc.lastSeq, s.LastSeq)
			require.Equal(t, tc.state, s.State)
			require.Equal(t, before.Payments-1, s.Payments)
			wantPaidUntil := before.PaidUntil.Add(-time.Duration(
				before.TotalSeconds-s.TotalSeconds) * time.Second)
			if tc.seconds == 0 {
				// No whole second left: never paid, no paid time.
				wantPaidUntil = time.Time{}
			}
			require.Equal(t, wantPaidUntil, s.PaidUntil)
			requireBalanced(t, s)
		})
	}
}

// TestReverseLeftAnUnpaidSubscriptionActive reproduces issue 10 item 4: a
// reversal of the payment that activated a pending subscription must make
// it pending again, and one that revived a lapsed subscription must not
// leave it active.
func TestReverseLeftAnUnpaidSubscriptionActive(t *testing.T) {
	t.Parallel()
	t.Run("activation", func(t *testing.T) {
		t.Parallel()
		e := newLedgerEnv(t, testTerms)
		e.pay(t, 1, 1, 1005, t0, false)
		e.reverse(t, 1, t0.Add(time.Second))
		s := e.subscription(t, e.sub)
		require.Equal(t, store.SubPending, s.State)
		require.True(t, s.PaidUntil.IsZero())
		require.Zero(t, s.LastSeq)
		require.Zero(t, s.Remainder)
		require.False(t, core.Paid(s, t0.Add(time.Second)))
	})
	t.Run("revival", func(t *testing.T) {
		t.Parallel()
		e := newLedgerEnv(t, testTerms)
		e.pay(t, 1, 1, 1000, t0, true) // 100 s
		late := t0.Add(100*time.Second + 2*testTerms.Grace)
		e.age(t, late)
		require.Equal(t, store.SubExpired, e.subscription(t, e.sub).State)
		e.pay(t, 2, 2, 1000, late, false)
		require.Equal(t, store.SubActive, e.subscription(t, e.sub).State)

		// Reversed, the revival never happened: expired, as before
		// it. Subtracting its 100 s from the new paid-until put
		// paid_until at the revival time and the subscription past
		// due, with a grace period nobody paid for.
		e.reverse(t, 2, late.Add(time.Second))
		s := e.subscription(t, e.sub)
		require.Equal(t, store.SubExpired, s.State)
		require.EqualValues(t, 1, s.LastSeq)
		require.Equal(t, t0.Add(100*time.Second), s.PaidUntil)
		require.False(t, core.Paid(s, late.Add(time.Second)))
		requireBalanced(t, s)
	})
}

// TestRefusalsOfUnknownSubscriptionsGrewTheLedger reproduces issue 10 item
// 12: every refused payment stored a row (and an event) for ever, so anyone
// could grow the provider's ledger for free. Refusals that name no known
// subscription now only count.
func TestRefusalsOfUnknownSubscriptionsGrewTheLedger(t *testing.T) {
	t.Parallel()
	e := newLedgerEnv(t, testTerms)
	keysBefore, err := e.raw.KeyCount(nil)
	require.NoError(t, err)

	const n, batch = 10_000, 500
	for done := 0; done < n; done += batch {
		ins := make([]core.Incoming, batch)
		for i := range ins {
			var id store.SubID
			_, err := rand.Read(id[:])
			require.NoError(t, err)
			var h store.Hash
			_, err = rand.Read(h[:])
			require.NoError(t, err)
			ins[i] = core.Incoming{Hash: h, Amount: 1000,
				Custom: rt.Records(t, id, 1, nil, false), Now: t0}
		}
		require.NoError(t, e.db.Update(context.Background(), func(tx store.ReceiverTx) error {
			for _, in := range ins {
				out, err := core.Apply(tx, in, 0)
				if err != nil {
					return err
				}
				if out.Reason != core.ReasonUnknownSubscription ||
					out.Action != core.ActionCancel {

					return fmt.Errorf("not refused: %+v", out)
				}
			}
			return nil
		}))
	}

	keysAfter, err := e.raw.KeyCount(nil)
	require.NoError(t, err)
	// One new key: the unknown_subscription counter.
	require.Equal(t, keysBefore+1, keysAfter)
	require.Empty(t, e.events(t))
	require.Equal(t, map[string]uint64{
		string(core.ReasonUnknownSubscription): n,
	}, e.refusalCounts(t))

	// The other refusals that name no known subscription leave nothing
	// either: unknown and closed plans, a refused open enrolment, a
	// malformed payment.
	unknown := store.SubID{7}
	bad := rt.Records(t, e.sub, 6, nil, false)
	bad[1397948417] = []byte{2}
	for i, in := range []core.Incoming{
		{Amount: 1000, Custom: rt.Records(t, unknown, 1, &[16]byte{3}, false)},
		{Amount: 1000, Custom: rt.Records(t, unknown, 1, &e.plan, false)},
		{Amount: 1, Custom: rt.Records(t, unknown, 1, &e.open, false)},
		{Amount: 1000, Custom: bad},
		{Amount: 1000, Custom: rt.Records(t, unknown, 1, &e.open, true)},
	} {
		in.Hash, in.Now = hashOf(byte(200+i)), t0
		out := e.apply(t, in)
		require.Equal(t, core.ActionCancel, out.Action)
		// Replayed: decided (and refused) again, as there is no row.
		require.Equal(t, out.Reason, e.apply(t, in).Reason)
	}
	keys, err := e.raw.KeyCount(nil)
	require.NoError(t, err)
	require.Equal(t, keysAfter+4, keys, "one counter per new reason")
	require.Empty(t, e.events(t))
	counts := e.refusalCounts(t)
	require.EqualValues(t, 2, counts[string(core.ReasonUnknownPlan)])
	require.EqualValues(t, 2, counts[string(core.ReasonPlanNotOpen)])
	require.EqualValues(t, 2, counts[string(core.ReasonBelowMinimum)])
	require.EqualValues(t, 2, counts[string(core.ReasonMalformed)])
	require.EqualValues(t, n+2, counts[string(core.ReasonUnknownSubscription)])
}

// TestRefusalsOfAKnownSubscriptionGrewTheLedger reproduces issue 10 item 12
// for a known subscription: refused rows are bounded per subscription and
// payment.refused events are sent at most once per reason and episode.
func TestRefusalsOfAKnownSubscriptionGrewTheLedger(t *testing.T) {
	t.Parallel()
	e := newLedgerEnv(t, testTerms)
	const n = 3 * core.MaxRefusedPerSubscription
	refuse := func(i int, amt lnwire.MilliSatoshi, now time.Time) core.Outcome {
		var h store.Hash
		h[0], h[1], h[2] = 0xee, byte(i>>8), byte(i)
		return e.apply(t, core.Incoming{Hash: h, Amount: amt,
			Custom: rt.Records(t, e.sub, uint64(i+1), nil, false),
			Now:    now})
	}
	for i := 0; i < n; i++ {
		out := refuse(i, 999, t0.Add(time.Duration(i)*time.Millisecond))
		require.Equal(t, core.ReasonBelowMinimum, out.Reason)
	}

	var rows int
	require.NoError(t, e.db.View(context.Background(), func(tx store.ReceiverTx) error {
		return tx.ForEachPayment(e.sub, 0, func(p *store.Payment) error {
			require.Equal(t, store.PaymentRefused, p.State)
			// The newest are kept.
			require.Greater(t, p.Seq, uint64(n-core.MaxRefusedPerSubscription))
			rows++
			return nil
		})
	}))
	require.Equal(t, core.MaxRefusedPerSubscription, rows)
	require.Len(t, e.events(t), 1)

	// Another reason is announced at once; the same reason is not
	// announced again in the episode.
	refuse(n, 10*(3600+1), t0.Add(time.Second))
	refuse(n+1, 999, t0.Add(time.Hour))
	evs := e.events(t)
	require.Len(t, evs, 2)
	for _, ev := range evs {
		require.Equal(t, store.EventPaymentRefused, ev.Type)
	}
	counts := e.refusalCounts(t)
	require.EqualValues(t, n+1, counts[string(core.ReasonBelowMinimum)])
	require.EqualValues(t, 1, counts[string(core.ReasonMaxPrepay)])
}

// TestCancelForfeitedPaidTime reproduces issue 10 item 14: a subscription
// with 170 s paid showed paid: false the moment the payer's cancel landed.
// Either side's cancel now ends service at paid_until, without grace.
func TestCancelForfeitedPaidTime(t *testing.T) {
	t.Parallel()
	cancelAt := t0.Add(10 * time.Second)
	paidUntil := t0.Add(170 * time.Second)
	tests := []struct {
		name   string
		state  store.SubState
		cancel func(t *testing.T, e *ledgerEnv)
	}{
		{"payer", store.SubCancelledByPayer, func(t *testing.T, e *ledgerEnv) {
			out := e.apply(t, core.Incoming{Hash: hashOf(50),
				Amount: 1000, Now: cancelAt,
				Custom: rt.Records(t, e.sub, 2, nil, true)})
			require.True(t, out.Cancelled)
			require.Equal(t, core.ActionCancel, out.Action)
		}},
		{"provider", store.SubCancelledByProvider, func(t *testing.T, e *ledgerEnv) {
			require.NoError(t, e.db.Update(context.Background(), func(tx store.ReceiverTx) error {
				_, err := core.Transition(tx, e.sub,
					core.TrigProviderCancel, cancelAt)
				return err
			}))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newLedgerEnv(t, testTerms)
			e.pay(t, 1, 1, 1700, t0, true)
			tc.cancel(t, e)

			s := e.subscription(t, e.sub)
			require.Equal(t, tc.state, s.State)
			require.True(t, core.Paid(s, cancelAt))
			require.True(t, core.Paid(s, paidUntil.Add(-time.Second)))
			require.False(t, core.Paid(s, paidUntil), "no grace")
			require.Equal(t, paidUntil, core.EndsAt(s))

			v := core.NewSubscriptionView(s, cancelAt)
			require.True(t, v.Paid)
			require.NotNil(t, v.EndsAt)
			require.Equal(t, paidUntil, *v.EndsAt)
			require.Nil(t, v.GraceUntil)

			// subscription.cancelled carries the end of service.
			var found bool
			for _, ev := range e.events(t) {
				if ev.Type != store.EventSubscriptionCancelled {
					continue
				}
				found = true
				var body struct {
					EndsAt       time.Time `json:"ends_at"`
					Subscription struct {
						Paid   bool      `json:"paid"`
						EndsAt time.Time `json:"ends_at"`
					} `json:"subscription"`
				}
				require.NoError(t, json.Unmarshal(ev.Payload, &body))
				require.Equal(t, paidUntil, body.EndsAt)
				require.Equal(t, paidUntil, body.Subscription.EndsAt)
				require.True(t, body.Subscription.Paid)
			}
			require.True(t, found)

			// No more payments are accepted.
			out := e.apply(t, core.Incoming{Hash: hashOf(60),
				Amount: 1000, Now: cancelAt.Add(time.Second),
				Custom: rt.Records(t, e.sub, 3, nil, false)})
			require.Equal(t, core.ReasonCancelled, out.Reason)
		})
	}

	t.Run("after paid time ended", func(t *testing.T) {
		t.Parallel()
		e := newLedgerEnv(t, testTerms)
		e.pay(t, 1, 1, 1700, t0, true)
		late := paidUntil.Add(10 * time.Second) // in grace
		require.NoError(t, e.db.Update(context.Background(), func(tx store.ReceiverTx) error {
			_, err := core.Transition(tx, e.sub, core.TrigProviderCancel, late)
			return err
		}))
		s := e.subscription(t, e.sub)
		require.False(t, core.Paid(s, late))
		require.Equal(t, late, core.EndsAt(s))
	})
}

// TestZeroSecondPaymentMovedGrace: with paid time counted from
// max(paid_until, now), a payment too small to buy one second must not move
// a lapsed subscription's paid_until (and so its grace) to now, or a payer
// could be served for ever on 1-msat payments.
func TestZeroSecondPaymentMovedGrace(t *testing.T) {
	t.Parallel()
	terms := store.Terms{RatePerSecond: 1000, Grace: time.Minute,
		MaxPrepay: time.Hour}
	for _, aged := range []bool{true, false} {
		t.Run(fmt.Sprintf("aged=%v", aged), func(t *testing.T) {
			t.Parallel()
			e := newLedgerEnv(t, terms)
			e.pay(t, 1, 1, 10_000, t0, true) // 10 s
			late := t0.Add(40 * time.Second) // 30 s into grace
			if aged {
				e.age(t, late)
			}
			e.pay(t, 2, 2, 999, late, true)
			s := e.subscription(t, e.sub)
			require.Equal(t, t0.Add(10*time.Second), s.PaidUntil)
			require.EqualValues(t, 999, s.Remainder)
			want := store.SubActive // left to the expiry loop
			if aged {
				want = store.SubPastDue
			}
			require.Equal(t, want, s.State)
			require.False(t, core.Paid(s, t0.Add(70*time.Second)))
		})
	}
}

// TestRefusalEventsGrewForEver reproduces the review's finding 5: refusal
// events were rate limited per minute only, so 1,000 refusals of one reason
// spread over 1,000 minutes queued 1,000 payment.refused events (6 reasons
// per cheap open-enrolment subscription, for ever). Each reason is now
// announced once per episode: one event, until a credit re-arms it.
func TestRefusalEventsGrewForEver(t *testing.T) {
	t.Parallel()
	e := newLedgerEnv(t, testTerms)
	e.pay(t, 1, 1, 1000, t0, true) // 100 s
	base := len(e.events(t))

	refused := func() int {
		n := 0
		for _, ev := range e.events(t) {
			if ev.Type == store.EventPaymentRefused {
				n++
			}
		}
		return n
	}
	const n = 1000
	for i := 0; i < n; i++ {
		var h store.Hash
		h[0], h[1], h[2] = 0xdd, byte(i>>8), byte(i)
		out := e.apply(t, core.Incoming{Hash: h, Amount: 999,
			Custom: rt.Records(t, e.sub, uint64(i+10), nil, false),
			Now:    t0.Add(time.Duration(i) * time.Minute)})
		require.Equal(t, core.ReasonBelowMinimum, out.Reason)
	}
	require.Equal(t, 1, refused(), "one event per reason and episode")
	require.EqualValues(t, n, e.refusalCounts(t)[string(core.ReasonBelowMinimum)])

	// A credit starts a new episode: the reason is announced again.
	now := t0.Add(n * time.Minute)
	e.pay(t, 2, 2000, 1000, now, true)
	e.apply(t, core.Incoming{Hash: hashOf(3), Amount: 999,
		Custom: rt.Records(t, e.sub, 2001, nil, false), Now: now})
	require.Equal(t, 2, refused())
	require.Greater(t, len(e.events(t)), base+2)
}

// requireBalancedPerPayment checks the ledger identity with each payment at
// the rate it was credited at: sum(seconds*rate) + remainder == total_paid,
// and the totals are the sums of the credited payments.
func requireBalancedPerPayment(t *testing.T, e *ledgerEnv) {
	t.Helper()
	s := e.subscription(t, e.sub)
	var paid, secs, bought, n uint64
	require.NoError(t, e.db.View(context.Background(), func(tx store.ReceiverTx) error {
		return tx.ForEachPayment(e.sub, 0, func(p *store.Payment) error {
			if p.State != store.PaymentCredited {
				return nil
			}
			n++
			paid += uint64(p.Amount)
			secs += p.Seconds
			bought += p.Seconds * uint64(p.Rate)
			return nil
		})
	}))
	require.Equal(t, paid, uint64(s.TotalPaid))
	require.Equal(t, secs, s.TotalSeconds)
	require.Equal(t, n, s.Payments)
	require.Equal(t, paid, bought+uint64(s.Remainder),
		"sum(seconds*rate) + remainder must equal total_paid")
}

// setRate changes the subscription's price, as a provider's terms change.
func (e *ledgerEnv) setRate(t *testing.T, rate lnwire.MilliSatoshi) {
	t.Helper()
	require.NoError(t, e.db.Update(context.Background(), func(tx store.ReceiverTx) error {
		s, err := tx.Subscription(e.sub)
		if err != nil {
			return err
		}
		s.Terms.RatePerSecond = rate
		return tx.PutSubscription(s)
	}))
}

// TestReverseTookTimeFromALaterPaymentAfterALapse reproduces the review's
// finding 2: A (held, 100 s) lapsed beyond grace, then B (100 s) was
// credited from now; reversing A subtracted 100 s from the current
// paid_until, so B lost its time (paid_until t0+300 s instead of t0+400 s,
// past due at once). Restoring from before A and re-applying B keeps B's
// 100 s.
func TestReverseTookTimeFromALaterPaymentAfterALapse(t *testing.T) {
	t.Parallel()
	e := newLedgerEnv(t, testTerms)
	e.pay(t, 1, 1, 1000, t0, false) // A: 100 s, held
	atB := t0.Add(300 * time.Second)
	e.age(t, atB)
	require.Equal(t, store.SubExpired, e.subscription(t, e.sub).State)
	e.pay(t, 2, 2, 1000, atB, true) // B: 100 s from now
	require.Equal(t, t0.Add(400*time.Second), e.subscription(t, e.sub).PaidUntil)

	now := atB.Add(10 * time.Second)
	e.reverse(t, 1, now)
	s := e.subscription(t, e.sub)
	require.Equal(t, t0.Add(400*time.Second), s.PaidUntil)
	require.Equal(t, store.SubActive, s.State)
	require.EqualValues(t, 100, s.TotalSeconds)
	require.EqualValues(t, 2, s.LastSeq)
	require.True(t, core.Paid(s, now))
	requireBalancedPerPayment(t, e)
}

// TestReverseAfterPriceDropTookBackHundredsOfSeconds reproduces the review's
// finding 3: at 1000 msat/s, C 1000 (1 s), A 1700 held (1 s, 700 carried),
// B 499,600 (500 s, 300 carried); the price then drops to 1 msat/s.
// Reversing A borrowed the 400 msat of A's carry that B used at the new
// price, 400 s, took back 401 of 502 s (101 s and remainder 0 left, the
// ledger off by 400,600 msat). Re-applying B at its own rate leaves C's 1 s
// and B's 499 s: 500 s and remainder 600.
func TestReverseAfterPriceDropTookBackHundredsOfSeconds(t *testing.T) {
	t.Parallel()
	terms := store.Terms{RatePerSecond: 1000, Grace: time.Minute,
		MaxPrepay: time.Hour}
	e := newLedgerEnv(t, terms)
	e.pay(t, 1, 1, 1000, t0, true)    // C
	e.pay(t, 2, 2, 1700, t0, false)   // A, held
	e.pay(t, 3, 3, 499_600, t0, true) // B
	e.setRate(t, 1)
	requireBalancedPerPayment(t, e)

	e.reverse(t, 2, t0.Add(time.Second))
	s := e.subscription(t, e.sub)
	require.EqualValues(t, 500, s.TotalSeconds)
	require.EqualValues(t, 600, s.Remainder)
	require.EqualValues(t, 500_600, s.TotalPaid)
	require.Equal(t, t0.Add(500*time.Second), s.PaidUntil)
	require.EqualValues(t, 3, s.LastSeq)
	var b *store.Payment
	require.NoError(t, e.db.View(context.Background(), func(tx store.ReceiverTx) error {
		var err error
		b, err = tx.Payment(hashOf(3))
		return err
	}))
	require.EqualValues(t, 499, b.Seconds)
	require.Equal(t, t0.Add(time.Second), b.BeforePaidUntil)
	require.EqualValues(t, 0, b.BeforeRemainder)
	requireBalancedPerPayment(t, e)

	// B can itself be reversed exactly afterwards.
	require.NoError(t, e.db.Update(context.Background(), func(tx store.ReceiverTx) error {
		b.SettleIndex = 0
		if err := tx.MarkHeld(hashOf(3)); err != nil {
			return err
		}
		return tx.PutPayment(b)
	}))
	e.reverse(t, 3, t0.Add(2*time.Second))
	s = e.subscription(t, e.sub)
	require.EqualValues(t, 1, s.TotalSeconds)
	require.EqualValues(t, 0, s.Remainder)
	requireBalancedPerPayment(t, e)
}

// TestReverseOldCreditClampedSilently: a credit stored before schema
// version 4 has no starting point to restore, so it is reversed by
// arithmetic; when that would take back more than the subscription holds
// it used to clamp silently: C 1000 (1 s), A 1900 held (1 s, 900 carried),
// B 499,100 (500 s) at 1000 msat/s, then 1 msat/s: reversing A borrowed
// B's use of A's 900 msat carry as 900 s, 901 s of the 502 held, clamped
// to 502 (total_seconds 0 for 500,100 msat paid). Now it fails naming the
// payment and changes nothing.
func TestReverseOldCreditClampedSilently(t *testing.T) {
	t.Parallel()
	terms := store.Terms{RatePerSecond: 1000, Grace: time.Minute,
		MaxPrepay: time.Hour}
	e := newLedgerEnv(t, terms)
	e.pay(t, 1, 1, 1000, t0, true)
	e.pay(t, 2, 2, 1900, t0, false)
	e.pay(t, 3, 3, 499_100, t0, true)
	e.setRate(t, 1)
	// As a store before schema version 4 holds them.
	require.NoError(t, e.db.Update(context.Background(), func(tx store.ReceiverTx) error {
		for h := byte(1); h <= 3; h++ {
			p, err := tx.Payment(hashOf(h))
			if err != nil {
				return err
			}
			p.BeforePaidUntil, p.BeforeRemainder = time.Time{}, 0
			p.BeforeState, p.CreditNo = 0, 0
			if err := tx.PutPayment(p); err != nil {
				return err
			}
		}
		return nil
	}))
	before := e.subscription(t, e.sub)
	err := e.db.Update(context.Background(), func(tx store.ReceiverTx) error {
		_, err := core.Reverse(tx, hashOf(2), t0.Add(time.Second))
		return err
	})
	require.ErrorIs(t, err, core.ErrCannotReverse)
	require.ErrorContains(t, err, hashOf(2).String())
	require.Equal(t, before, e.subscription(t, e.sub))

	// The pipeline then takes out what it can, so the hash is not
	// followed for ever: the amount exactly, the time the subscription
	// still holds, and the payment is no longer credited.
	require.NoError(t, e.db.Update(context.Background(), func(tx store.ReceiverTx) error {
		reversed, err := core.ReverseApprox(tx, hashOf(2), t0.Add(time.Second))
		require.True(t, reversed)
		return err
	}))
	after := e.subscription(t, e.sub)
	require.Equal(t, before.TotalPaid-1900, after.TotalPaid)
	require.LessOrEqual(t, after.TotalSeconds, before.TotalSeconds)
	require.NoError(t, e.db.View(context.Background(), func(tx store.ReceiverTx) error {
		p, err := tx.Payment(hashOf(2))
		require.NoError(t, err)
		require.NotEqual(t, store.PaymentCredited, p.State)
		return nil
	}))
}

// TestOpenEnrolmentBelowOneSecondStayedPendingForEver reproduces the
// review's finding 6: an open-enrolment payment of 9 msat at 10 msat/s
// bought no whole second yet created a subscription (row, index entries,
// events) that stayed pending for ever. It is refused as below_minimum and
// leaves only the counter.
func TestOpenEnrolmentBelowOneSecondStayedPendingForEver(t *testing.T) {
	t.Parallel()
	terms := testTerms
	terms.MinPayment = 0
	e := newLedgerEnv(t, terms)
	keys, err := e.raw.KeyCount(nil)
	require.NoError(t, err)

	id := store.SubID{0x42}
	out := e.apply(t, core.Incoming{Hash: hashOf(1), Amount: 9, Now: t0,
		Custom: rt.Records(t, id, 1, &e.open, false)})
	require.Equal(t, core.ReasonBelowMinimum, out.Reason)
	require.Equal(t, core.ActionCancel, out.Action)
	require.NoError(t, e.db.View(context.Background(), func(tx store.ReceiverTx) error {
		_, err := tx.Subscription(id)
		require.ErrorIs(t, err, store.ErrNotFound)
		return nil
	}))
	after, err := e.raw.KeyCount(nil)
	require.NoError(t, err)
	require.Equal(t, keys+1, after, "only the below_minimum counter")
	require.Empty(t, e.events(t))

	// One whole second is enough.
	out = e.apply(t, core.Incoming{Hash: hashOf(2), Amount: 10, Now: t0,
		Custom: rt.Records(t, id, 1, &e.open, false)})
	require.True(t, out.Credited)
}

// TestGraceGamingBoughtTenMinutesForElevenSeconds reproduces the review's
// finding 1 through the ledger: paying 1 s (10 msat at 10 msat/s) each time
// 59 s after paid_until (grace 60 s), with the credit starting at
// max(paid_until, now), moved paid_until to t0+601 s after 11 payments:
// 10 minutes of service for 11 s paid. Inside grace the credit now
// continues from paid_until: t0+11 s, and service ends at t0+71 s.
func TestGraceGamingBoughtTenMinutesForElevenSeconds(t *testing.T) {
	t.Parallel()
	terms := testTerms
	terms.MinPayment = 10
	e := newLedgerEnv(t, terms)
	now := t0
	for i := 0; i < 11; i++ {
		if i > 0 {
			now = e.subscription(t, e.sub).PaidUntil.Add(59 * time.Second)
			e.age(t, now)
		}
		e.pay(t, byte(i+1), uint64(i+1), 10, now, true)
	}
	s := e.subscription(t, e.sub)
	require.Equal(t, t0.Add(11*time.Second), s.PaidUntil)
	require.EqualValues(t, 11, s.TotalSeconds)
	require.True(t, core.Paid(s, t0.Add(70*time.Second)))
	require.False(t, core.Paid(s, t0.Add(71*time.Second)))
	requireBalancedPerPayment(t, e)
}
