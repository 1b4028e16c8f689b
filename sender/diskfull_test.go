package sender

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/lightninglabs/lndclient"
	"github.com/satstream/satstream/sender/sendertest"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// fullStore refuses every write step as the store does below its free-space
// reserve: ErrDiskFull, nothing written.
type fullStore struct {
	store.SenderStore
	full *atomic.Bool
}

func (s fullStore) Update(ctx context.Context,
	fn func(tx store.SenderTx) error) error {

	return s.SenderStore.Update(ctx, func(tx store.SenderTx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if s.full.Load() {
			return fmt.Errorf("%w: test", store.ErrDiskFull)
		}
		return nil
	})
}

// TestBookingRefusedForDiskFullLeavesAttemptsStuck: payments in flight when
// the disk fills settle at lnd; their booking is refused. Once space is
// back each is tracked and booked, nothing stays in flight and new payments
// are sent.
func TestBookingRefusedForDiskFullLeavesAttemptsStuck(t *testing.T) {
	h := newHarness(t, func(c *EngineConfig) { c.MaxInFlightPerSub = 3 })
	var full atomic.Bool
	h.eng = NewEngine(h.cfg, fullStore{h.db.Sender(), &full}, h.clock,
		btclog.Disabled, btclog.Disabled, nil)
	require.NoError(t, h.eng.Load(context.Background()))
	h.router.SetDecide(func(lndclient.SendPaymentRequest) sendertest.Outcome {
		return sendertest.Outcome{Hold: true}
	})
	h.run()
	id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(3 * time.Minute),
	})
	h.eventually(func() bool {
		return len(h.router.Held()) == 3 && h.idleHeld()
	}, "three payments held")

	full.Store(true)
	for _, hash := range h.router.Held() {
		h.router.Resolve(hash, sendertest.Succeed(1000))
	}
	h.eventually(func() bool {
		h.eng.mu.Lock()
		defer h.eng.mu.Unlock()
		return h.eng.inFlight == 0
	}, "bookings refused")
	require.Zero(t, h.view(id).Payments)
	sent := len(h.router.Payments())

	full.Store(false)
	h.router.SetDecide(func(lndclient.SendPaymentRequest) sendertest.Outcome {
		return sendertest.Succeed(0)
	})
	h.drive(func() bool {
		v := h.view(id)
		return v.Payments >= 3 && v.InFlight == 0 &&
			len(h.router.Payments()) > sent
	}, "settled payments booked and new ones sent")
}

// TestDiskFullBacksPaymentsOffForMinutes: while the disk is full every new
// payment is refused by the store; the subscription's backoff must not
// grow to BackoffMax (minutes), so payments resume soon after space is back.
func TestDiskFullBacksPaymentsOffForMinutes(t *testing.T) {
	h := newHarness(t, nil)
	var full atomic.Bool
	h.eng = NewEngine(h.cfg, fullStore{h.db.Sender(), &full}, h.clock,
		btclog.Disabled, btclog.Disabled, nil)
	require.NoError(t, h.eng.Load(context.Background()))
	h.router.SetDecide(func(lndclient.SendPaymentRequest) sendertest.Outcome {
		return sendertest.Succeed(0)
	})
	// Add itself is a write: let it through before the engine runs (a
	// running engine may write the first payment's attempt before the
	// disk is "full" again), then refuse the rest.
	id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(2 * time.Minute),
	})
	full.Store(true)
	h.run()
	for i := 0; i < 20; i++ {
		h.eventually(func() bool {
			return h.idle() && h.view(id).Waiting != ""
		}, "waiting after a refused payment")
		next := h.clock.NextWake()
		require.LessOrEqual(t, next.Sub(h.clock.Now()), diskFullRetry)
		h.clock.Advance(next.Sub(h.clock.Now()))
	}
	require.Empty(t, h.router.Payments())
}
