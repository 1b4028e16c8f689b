package sender

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/receiver/core"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/sender/sendertest"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

// TestLatePaymentSenderEstimateDisagreedWithReceiver reproduces issue 10
// item 3 end to end: the engine pays a real receiver ledger (core.Apply,
// with the expiry loop run before each payment) through the fake router,
// with an outage inside and one beyond the grace period. The receiver used
// to extend a past-due subscription from its old paid_until while the sender
// estimated from max(paid_until, now), so after a late payment the two
// disagreed for ever. Both now use tlv.CreditStart with the offer's grace:
// a payment inside grace continues from the old paid_until (the grace used
// is paid for), one beyond it starts at the payment.
func TestLatePaymentSenderEstimateDisagreedWithReceiver(t *testing.T) {
	const grace = time.Minute
	tests := []struct {
		name string
		// outage is how long payments fail once paid time has run out.
		outage time.Duration
	}{
		{"no outage", 0},
		{"outage inside grace", 20 * time.Second},
		{"outage beyond grace", 5 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *EngineConfig) {
				c.MaxInFlightPerSub = 1
				c.BackoffInitial = time.Second
				c.BackoffMax = time.Second
			})
			offer := testOffer(t, 1000, time.Hour, false)
			o, err := tlv.ParseOffer(offer)
			require.NoError(t, err)
			sid := store.SubID(*o.SubscriptionID)

			// The provider's ledger, on the offer's terms.
			rdb := rt.OpenStore(t).Receiver()
			ctx := context.Background()
			require.NoError(t, rdb.Update(ctx, func(tx store.ReceiverTx) error {
				plan := &store.Plan{ID: "p", Terms: store.Terms{
					RatePerSecond: 1000, MinPayment: 1000,
					Grace: grace, MaxPrepay: time.Hour}}
				if err := tx.PutPlan(plan); err != nil {
					return err
				}
				return tx.PutSubscription(core.NewSubscription(sid,
					plan, start))
			}))
			var down atomic.Bool
			var settleIdx atomic.Uint64
			h.router.SetDecide(func(req lndclient.SendPaymentRequest) sendertest.Outcome {
				if down.Load() {
					return noRoute
				}
				now := h.clock.Now()
				var out core.Outcome
				err := rdb.Update(ctx, func(tx store.ReceiverTx) error {
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
					out, err = core.Apply(tx, core.Incoming{
						Hash:        store.Hash(*req.PaymentHash),
						Amount:      lnwire.NewMSatFromSatoshis(req.Amount),
						Custom:      req.CustomRecords,
						Settled:     true,
						SettleIndex: settleIdx.Add(1),
						Now:         now,
					}, 0)
					return err
				})
				if err != nil || !out.Credited {
					t.Errorf("receiver did not credit: %v %+v", err, out)
					return refusal
				}
				return sendertest.Succeed(0)
			})

			h.run()
			h.add(offer, TermsRequest{Increment: dur(time.Minute),
				Buffer: dur(0)})

			agree := func(payments uint64) time.Time {
				t.Helper()
				h.eventually(func() bool {
					return h.view(sid).Payments == payments && h.idle()
				}, "payment made")
				var sent, recv time.Time
				require.NoError(t, h.db.Sender().View(ctx, func(tx store.SenderTx) error {
					s, err := tx.Subscription(sid)
					if err == nil {
						sent = s.PaidUntil
					}
					return err
				}))
				require.NoError(t, rdb.View(ctx, func(tx store.ReceiverTx) error {
					s, err := tx.Subscription(sid)
					if err == nil {
						recv = s.PaidUntil
					}
					return err
				}))
				require.True(t, sent.Equal(recv), "payment %d: sender "+
					"estimates %v, receiver says %v", payments, sent, recv)
				return recv
			}
			first := agree(1)

			if tc.outage > 0 {
				down.Store(true)
				h.clock.Advance(time.Minute)
				h.eventually(func() bool {
					return len(h.router.Payments()) == 2 && h.idle()
				}, "a payment failed in the outage")
				down.Store(false)
				h.clock.Advance(tc.outage)
			} else {
				h.clock.Advance(time.Minute)
			}
			second := agree(2)
			if tc.outage < grace {
				// Continuous: the grace used is paid for.
				require.Equal(t, first.Add(time.Minute), second)
			} else {
				// Lapsed: the grace was free, time starts anew.
				require.True(t, second.After(first.Add(
					grace+time.Minute)), "second %v", second)
			}

			h.clock.Advance(time.Minute)
			agree(3)
		})
	}
}
