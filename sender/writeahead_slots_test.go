package sender

import (
	"context"
	"testing"
	"time"

	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/satstream/satstream/sender/sendertest"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

// TestWriteAheadStarvesCancelMessage: with every slot taken and a busy
// subscription writing its next payment ahead again and again, each freed
// slot went to the written-ahead payment, never to a subscription waiting
// in slotWait: a payer's cancel message (and likewise a transiently failed
// attempt's retry, which also needs a free slot) waited forever.
func TestWriteAheadStarvesCancelMessage(t *testing.T) {
	h := newHarness(t, func(c *EngineConfig) {
		c.MaxInFlight = 1
		c.MaxInFlightPerSub = 2
	})
	h.router.SetDecide(func(lndclient.SendPaymentRequest) sendertest.Outcome {
		return sendertest.Outcome{Hold: true}
	})
	h.run()
	ctx := context.Background()

	// B pays once, then is idle.
	b := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(0),
	})
	h.eventually(func() bool { return len(h.router.Held()) == 1 }, "b held")
	h.router.Resolve(h.router.Held()[0], sendertest.Succeed(5))
	h.eventually(func() bool { return h.view(b).Payments == 1 }, "b paid")

	// A wants far more than one slot carries.
	a := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(30 * time.Minute),
	})
	h.eventually(func() bool {
		return len(h.router.Held()) == 1 && attemptsOf(t, h.db, a) == 2
	}, "a: one in flight, one written ahead")

	// The payer cancels B and tells the receiver: B needs one slot.
	_, err := h.eng.Apply(ctx, b, OpCancel, true)
	require.NoError(t, err)

	isCancel := func(hash lntypes.Hash) bool {
		for _, p := range h.router.Payments() {
			if *p.Req.PaymentHash != hash {
				continue
			}
			recs, err := tlv.Decode(p.Req.CustomRecords)
			require.NoError(t, err)
			return recs.Cancel
		}
		return false
	}
	for round := 0; round < 6; round++ {
		held := h.router.Held()
		require.Len(t, held, 1)
		if isCancel(held[0]) {
			return // B got a slot.
		}
		n := attemptsOf(t, h.db, a)
		h.router.Resolve(held[0], sendertest.Succeed(5))
		h.eventually(func() bool {
			hs := h.router.Held()
			if len(hs) != 1 || hs[0] == held[0] {
				return false
			}
			// Let A write its next one ahead, if it gets to.
			return isCancel(hs[0]) || attemptsOf(t, h.db, a) > n
		}, "next payment in flight")
	}
	t.Fatalf("B's cancel message never got a slot in 6 freed slots; "+
		"cancel pending: %v", h.view(b).CancelPending)
}

// TestWrittenAheadNotSentAfterPauseOrCancel: an attempt written ahead
// while the slot was busy is not sent once the payer paused or cancelled
// the subscription; it is closed unpaid and its reservation given back.
func TestWrittenAheadNotSentAfterPauseOrCancel(t *testing.T) {
	for _, op := range []Op{OpPause, OpCancel} {
		t.Run(string(op), func(t *testing.T) {
			h := newHarness(t, func(c *EngineConfig) {
				c.MaxInFlight = 1
				c.MaxInFlightPerSub = 2
			})
			h.router.SetDecide(func(lndclient.SendPaymentRequest) sendertest.Outcome {
				return sendertest.Outcome{Hold: true}
			})
			h.run()
			id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
				Increment: dur(time.Minute), Buffer: dur(90 * time.Second),
			})
			h.eventually(func() bool {
				return len(h.router.Held()) == 1 &&
					attemptsOf(t, h.db, id) == 2
			}, "one in flight, one written ahead")
			_, err := h.eng.Apply(context.Background(), id, op, false)
			require.NoError(t, err)
			h.router.Resolve(h.router.Held()[0], sendertest.Succeed(5))
			h.eventually(func() bool {
				v := h.view(id)
				return v.Payments == 1 && v.InFlight == 0 && h.idle()
			}, "first booked, written-ahead one closed")
			require.Len(t, h.router.Payments(), 1, "nothing sent after "+
				string(op))
			require.Zero(t, h.view(id).ReservedMsat)
		})
	}
}
