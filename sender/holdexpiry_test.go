package sender

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lightninglabs/lndclient"
	"github.com/satstream/satstream/sender/sendertest"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

// holdTime is the receiving lnd's --keysend-hold-time the docs recommend.
const holdTime = 30 * time.Second

// holdAll makes the fake network keep every payment in flight.
func holdAll(lndclient.SendPaymentRequest) sendertest.Outcome {
	return sendertest.Outcome{Hold: true}
}

// TestHoldExpiryIsNotARefusal reproduces issue 10 item 9: a receiver daemon
// that is down behind a running lnd lets each keysend expire after the hold
// time, and the payer sees INCORRECT_PAYMENT_DETAILS, the same reason as a
// refusal. A failure that comes that late means "receiver unavailable"
// (back off, retry under a fresh sequence); a quick one is a refusal. The
// time held comes from lnd's HTLC times, or from the engine's clock when
// lnd gives none.
func TestHoldExpiryIsNotARefusal(t *testing.T) {
	tests := []struct {
		name        string
		routerClock bool
		heldFor     time.Duration
		wantState   string
	}{
		{"expiry by lnd's htlc times", true, holdTime, StateWaiting},
		{"expiry by the engine's clock", false, holdTime, StateWaiting},
		{"quick refusal by lnd's htlc times", true, time.Second,
			StateRefused},
		{"quick refusal by the engine's clock", false, time.Second,
			StateRefused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *EngineConfig) {
				c.RefusalLimit = 1
				c.MaxInFlightPerSub = 1
			})
			if tc.routerClock {
				h.router.SetClock(h.clock)
			}
			h.router.SetDecide(holdAll)
			h.run()
			id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
				Increment: dur(time.Minute), Buffer: dur(0),
			})
			h.eventually(func() bool {
				return len(h.router.Held()) == 1 && h.idleHeld()
			}, "one payment in flight")

			h.clock.Advance(tc.heldFor)
			h.router.Resolve(h.router.Held()[0], refusal)
			h.eventually(func() bool {
				v := h.view(id)
				return v.State == tc.wantState && v.InFlight == 0
			}, tc.wantState)
			v := h.view(id)
			require.Zero(t, v.ReservedMsat)
			if tc.wantState == StateRefused {
				require.EqualValues(t, 1, v.RefusalsInARow)
				return
			}
			require.Contains(t, v.Waiting, "receiver unavailable")
			require.Zero(t, v.RefusalsInARow)

			// The receiver is back: the next payment goes out under
			// a fresh sequence and hash, and is credited once.
			h.router.SetDecide(nil)
			h.drive(func() bool { return h.view(id).Payments == 1 },
				"paid after the receiver came back")
			// The booking is on disk before the engine's view leaves
			// the waiting state: judge the state once it is done.
			h.eventually(h.idle, "payment booked")
			require.Equal(t, StateActive, h.view(id).State)
			require.Equal(t, []uint64{1, 2},
				sequences(t, h.router.Payments()))
		})
	}
}

// TestReceiverDownForThreeHoldTimesNeverRefuses: with the default refusal
// limit of 3, three hold expiries in a row must not stop the stream.
func TestReceiverDownForThreeHoldTimesNeverRefuses(t *testing.T) {
	h := newHarness(t, func(c *EngineConfig) { c.MaxInFlightPerSub = 1 })
	h.router.SetClock(h.clock)
	h.router.SetDecide(holdAll)
	h.run()
	id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(0),
	})
	var since string
	for i := 0; i < 4; i++ {
		h.drive(func() bool {
			return len(h.router.Held()) == 1 && h.idleHeld()
		}, "a payment in flight")
		h.clock.Advance(holdTime)
		h.router.Resolve(h.router.Held()[0], refusal)
		h.eventually(func() bool { return h.view(id).InFlight == 0 },
			"expired")
		v := h.view(id)
		require.Equal(t, StateWaiting, v.State)
		// One outage: the waiting state (and its backoff) goes on
		// from the first expiry, it does not start afresh each time.
		_, s, ok := strings.Cut(v.Waiting, " since ")
		require.True(t, ok, v.Waiting)
		if since == "" {
			since = s
		}
		require.Equal(t, since, s)
	}
	h.router.SetDecide(nil)
	h.drive(func() bool { return h.view(id).Payments == 1 }, "paid")
	h.eventually(h.idle, "payment booked")
	require.Equal(t, StateActive, h.view(id).State)
}

// TestRefusedSubscriptionProbesAgain: refused is not terminal. After a long
// backoff, shown in the view, the engine probes the receiver with one
// payment, and a subscription the receiver credits again streams on.
func TestRefusedSubscriptionProbesAgain(t *testing.T) {
	h := newHarness(t, func(c *EngineConfig) {
		c.RefusalLimit = 2
		c.MaxInFlightPerSub = 1
	})
	h.router.SetDecide(func(lndclient.SendPaymentRequest) sendertest.Outcome {
		return refusal
	})
	h.run()
	id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(0),
	})
	h.drive(func() bool { return h.view(id).State == StateRefused },
		"refused")
	refusedAt := h.clock.Now()
	v := h.view(id)
	require.NotEmpty(t, v.RetryAt, "the view shows the next probe")
	retryAt, err := time.Parse(time.RFC3339, v.RetryAt)
	require.NoError(t, err)
	require.True(t, retryAt.After(refusedAt.Add(5*time.Minute)),
		"a long backoff, not the short one: %v", v.RetryAt)
	require.Empty(t, v.CapResumesAt)
	require.Len(t, h.router.Payments(), 2)

	// Still refused: one probe, refused again, and a longer wait. (The
	// view shows whole seconds.)
	h.clock.Advance(retryAt.Add(time.Second).Sub(h.clock.Now()))
	h.eventually(func() bool {
		v := h.view(id)
		return len(h.router.Payments()) == 3 &&
			v.State == StateRefused && v.RetryAt != "" &&
			v.InFlight == 0
	}, "probed once, refused again")
	next, err := time.Parse(time.RFC3339, h.view(id).RetryAt)
	require.NoError(t, err)
	require.Greater(t, next.Sub(h.clock.Now()), retryAt.Sub(refusedAt),
		"the wait grows")

	// The receiver credits again (say it was misjudged): the next probe
	// succeeds and the subscription streams on.
	h.router.SetDecide(nil)
	h.clock.Advance(next.Add(time.Second).Sub(h.clock.Now()))
	h.drive(func() bool { return h.view(id).Payments >= 1 }, "paid")
	v = h.view(id)
	require.Equal(t, StateActive, v.State)
	require.Zero(t, v.RefusalsInARow)
	require.Empty(t, v.RetryAt)
}

// TestExpiredCancelMessageIsRetried: a cancel message that lnd held until
// the hold time ran out never reached the receiver daemon; it is sent again
// and only a quick refusal counts as the receiver's acknowledgement.
func TestExpiredCancelMessageIsRetried(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.router.SetClock(h.clock)
	h.run()
	id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(0),
	})
	h.eventually(func() bool { return h.view(id).Payments == 1 }, "paid")

	h.router.SetDecide(holdAll)
	_, err := h.eng.Apply(ctx, id, OpCancel, true)
	require.NoError(t, err)
	h.eventually(func() bool {
		return len(h.router.Held()) == 1 && h.idleHeld()
	}, "cancel message in flight")
	h.clock.Advance(holdTime)
	h.router.Resolve(h.router.Held()[0], refusal)
	h.eventually(func() bool { return h.view(id).InFlight == 0 },
		"expired")
	require.True(t, h.view(id).CancelPending, "an expiry is no "+
		"acknowledgement")

	h.router.SetDecide(func(lndclient.SendPaymentRequest) sendertest.Outcome {
		return refusal
	})
	h.drive(func() bool { return !h.view(id).CancelPending }, "acked")
	require.Contains(t, h.view(id).Reason, "receiver acknowledged")
	ps := h.router.Payments()
	require.Len(t, ps, 3)
	for _, p := range ps[1:] {
		recs, err := tlv.Decode(p.Req.CustomRecords)
		require.NoError(t, err)
		require.True(t, recs.Cancel)
	}
}
