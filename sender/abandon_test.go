package sender

import (
	"context"
	"errors"
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
// as soon as lnd says it never saw it.
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
