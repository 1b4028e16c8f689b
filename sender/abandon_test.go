package sender

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/lightninglabs/lndclient"
	"github.com/satstream/satstream/sender/sendertest"
	"github.com/stretchr/testify/require"
)

// TestPauseOrCancelKeepsPaymentWhoseStreamBroke reproduces issue 10 item 8:
// the status stream of a payment in flight breaks (lnd restarts), the payer
// pauses or cancels, and lnd settles the payment after all. The payment
// must be booked (amount, fee, daily spend), not closed as failed.
func TestPauseOrCancelKeepsPaymentWhoseStreamBroke(t *testing.T) {
	tests := []struct {
		name string
		op   Op
	}{
		{"pause", OpPause},
		{"cancel", OpCancel},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, func(c *EngineConfig) {
				c.MaxInFlightPerSub = 1
			})
			h.router.SetDecide(func(lndclient.SendPaymentRequest) sendertest.Outcome {
				return sendertest.Outcome{Hold: true}
			})
			h.run()
			id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
				Increment: dur(time.Minute), Buffer: dur(0),
			})
			h.eventually(func() bool {
				return len(h.router.Held()) == 1 && h.idleHeld()
			}, "one payment in flight")
			hash := h.router.Held()[0]

			// lnd's status stream breaks; the HTLC stays in flight.
			h.router.BreakStreams(hash, errors.New("rpc error: "+
				"code = Unavailable desc = transport is closing"))
			h.eventually(func() bool {
				return h.view(id).State == StateWaiting
			}, "waiting after the broken stream")

			_, err := h.eng.Apply(ctx, id, tc.op, false)
			require.NoError(t, err)

			// lnd settles it after all.
			h.router.Resolve(hash, sendertest.Succeed(7))
			h.drive(func() bool {
				v := h.view(id)
				return v.Payments == 1 && v.InFlight == 0
			}, "the settled payment is booked")

			v := h.view(id)
			require.EqualValues(t, 60_000, v.SentMsat)
			require.EqualValues(t, 7, v.FeesMsat)
			require.Zero(t, v.ReservedMsat)
			pv, err := h.eng.Payments(ctx, id, 0, 10)
			require.NoError(t, err)
			require.Len(t, pv.Payments, 1)
			require.Equal(t, "succeeded", pv.Payments[0].State)
			require.Len(t, pv.SpendPerDay, 1)
			require.EqualValues(t, 60_007, pv.SpendPerDay[0].Committed,
				"the daily spend counts it")
			ps := h.router.Payments()
			require.Len(t, ps, 1, "nothing new sent")
			require.Equal(t, 1, ps[0].Sends, "not sent twice")
		})
	}
}

// TestPauseNeverSendsWhatLndNeverSaw: an attempt whose send failed because
// lnd was unreachable is not sent once the payer has paused; it is closed
// once lnd still says, a payment timeout after it first did, that it never
// saw it.
func TestPauseNeverSendsWhatLndNeverSaw(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.router.SetDown(errors.New("connection refused"))
	h.run()
	id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(0),
	})
	h.eventually(func() bool { return h.view(id).State == StateWaiting },
		"waiting")
	_, err := h.eng.Apply(ctx, id, OpPause, false)
	require.NoError(t, err)
	h.router.SetDown(nil)
	h.drive(func() bool {
		v := h.view(id)
		return v.InFlight == 0 && v.ReservedMsat == 0
	}, "attempt closed")
	require.Empty(t, h.router.Payments(), "nothing sent while paused")
	v := h.view(id)
	require.Equal(t, StatePaused, v.State)
	require.Zero(t, v.Payments)
	pv, err := h.eng.Payments(ctx, id, 0, 10)
	require.NoError(t, err)
	require.Len(t, pv.Payments, 1)
	require.Equal(t, "failed", pv.Payments[0].State)
	require.Zero(t, pv.SpendPerDay[0].Committed)
}

// TestPauseKeepsPaymentLndWasStillStarting reproduces the review's first
// finding: SendPayment reaches lnd but the call fails (the connection
// drops), the payer pauses, and the retry's TrackPayment reaches lnd before
// lnd has stored the payment, so lnd says it never saw it. lnd then sends
// it and it settles. The attempt must stay open and reserved until lnd
// still says "never saw it" a payment timeout later, and a payment that
// arrives meanwhile must be booked; after a restart the same holds for
// every attempt that was open. Only a payment lnd really never got is
// closed unpaid, after that grace.
func TestPauseKeepsPaymentLndWasStillStarting(t *testing.T) {
	tests := []struct {
		name    string
		restart bool
		arrives bool
	}{
		{"lnd sends it late", false, true},
		{"lnd sends it late, payer restarted", true, true},
		{"lnd never got it", false, false},
		{"lnd never got it, payer restarted", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, func(c *EngineConfig) {
				c.MaxInFlightPerSub = 1
			})
			var (
				mu   sync.Mutex
				sent []lndclient.SendPaymentRequest
			)
			h.router.SetDecide(func(req lndclient.SendPaymentRequest) sendertest.Outcome {
				mu.Lock()
				defer mu.Unlock()
				sent = append(sent, req)
				return sendertest.Outcome{Err: errors.New("rpc " +
					"error: code = Unavailable desc = " +
					"transport is closing")}
			})
			h.run()
			id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
				Increment: dur(time.Minute), Buffer: dur(0),
			})
			h.eventually(func() bool {
				return h.view(id).State == StateWaiting && h.idle()
			}, "waiting after the failed send")
			mu.Lock()
			require.Len(t, sent, 1)
			req := sent[0]
			mu.Unlock()
			hash := *req.PaymentHash

			_, err := h.eng.Apply(ctx, id, OpPause, false)
			require.NoError(t, err)
			if tc.restart {
				h.stop()
				h.load()
				h.run()
			}

			// The retry tracks the hash; lnd has no record yet.
			h.drive(func() bool {
				return h.router.Tracks(hash) >= 1 && h.idle()
			}, "the retry asked lnd")
			v := h.view(id)
			require.Equal(t, 1, v.InFlight, "attempt kept open")
			require.NotZero(t, v.ReservedMsat, "still reserved")

			if !tc.arrives {
				h.drive(func() bool {
					v := h.view(id)
					return v.InFlight == 0 && v.ReservedMsat == 0
				}, "closed once lnd still never saw it")
				require.GreaterOrEqual(t, h.router.Tracks(hash), 2,
					"asked again before closing")
				v := h.view(id)
				require.Zero(t, v.ReservedMsat)
				require.Zero(t, v.Payments)
				require.Empty(t, h.router.Payments(), "never sent "+
					"while paused")
				pv, err := h.eng.Payments(ctx, id, 0, 10)
				require.NoError(t, err)
				require.Equal(t, "failed", pv.Payments[0].State)
				require.Zero(t, pv.SpendPerDay[0].Committed)
				return
			}

			// lnd's handler goes on: it stores and sends the
			// payment, which settles.
			h.router.Arrive(req, sendertest.Succeed(7))
			h.drive(func() bool {
				v := h.view(id)
				return v.Payments == 1 && v.InFlight == 0
			}, "the settled payment is booked")
			v = h.view(id)
			require.Equal(t, StatePaused, v.State)
			require.EqualValues(t, 60_000, v.SentMsat)
			require.EqualValues(t, 7, v.FeesMsat)
			require.Zero(t, v.ReservedMsat)
			pv, err := h.eng.Payments(ctx, id, 0, 10)
			require.NoError(t, err)
			require.Len(t, pv.Payments, 1)
			require.Equal(t, "succeeded", pv.Payments[0].State)
			require.EqualValues(t, 60_007, pv.SpendPerDay[0].Committed,
				"the daily spend counts it")
			ps := h.router.Payments()
			require.Len(t, ps, 1)
			require.Equal(t, 1, ps[0].Sends, "not sent twice")
		})
	}
}
