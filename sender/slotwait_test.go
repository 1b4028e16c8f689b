package sender

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// createGateStore holds the first armed attempt-creation step (the only step
// that reads a day's spend) after it committed, until wait reports true.
type createGateStore struct {
	store.SenderStore
	armed atomic.Bool
	wait  func() bool
}

type spendSeenTx struct {
	store.SenderTx
	create *bool
}

func (t spendSeenTx) SpendOn(sub store.SubID, day store.Day) (
	lnwire.MilliSatoshi, error) {

	*t.create = true
	return t.SenderTx.SpendOn(sub, day)
}

func (s *createGateStore) Update(ctx context.Context,
	fn func(tx store.SenderTx) error) error {

	var create bool
	err := s.SenderStore.Update(ctx, func(tx store.SenderTx) error {
		create = false
		return fn(spendSeenTx{tx, &create})
	})
	if create && s.armed.CompareAndSwap(true, false) {
		deadline := time.Now().Add(2 * time.Second)
		for !s.wait() && time.Now().Before(deadline) {
			time.Sleep(pollStep)
		}
	}
	return err
}

// TestSlotOfFailedCreateWakesNoSlotWaiter: attempts are now created in their
// own goroutine, so the scheduler decides other subscriptions while a
// creation holds a slot. One that finds no slot parks in slotWait, where
// only freeSlot (a payment reaching lnd's final state) reschedules it. A
// creation that fails (cap reached, paused meanwhile, store error) gives its
// slot back without rescheduling the parked subscriptions: with nothing
// else in flight they never pay again and lapse at the receiver.
func TestSlotOfFailedCreateWakesNoSlotWaiter(t *testing.T) {
	h := newHarness(t, func(c *EngineConfig) {
		c.MaxInFlight = 1
		c.MaxInFlightPerSub = 1
	})
	gs := &createGateStore{SenderStore: h.db.Sender()}
	gs.wait = func() bool {
		h.eng.mu.Lock()
		defer h.eng.mu.Unlock()
		return len(h.eng.slotWait) > 0
	}
	h.loadWith(gs)
	h.run()

	// A: one minute per payment, a total cap that fits exactly one.
	a := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(0),
		MaxTotal: msat(100_000),
	})
	h.eventually(func() bool { return h.view(a).Payments == 1 }, "A paid")
	// B: two minutes per payment, so it falls due after A.
	b := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(2 * time.Minute), Buffer: dur(0),
	})
	h.eventually(func() bool { return h.view(b).Payments == 1 }, "B paid")
	h.eventually(h.idle, "idle")

	// Both fall due in one scheduler pass, A first: A's creation takes
	// the only slot and stops at its cap, B parks in slotWait meanwhile.
	gs.armed.Store(true)
	h.clock.Advance(3 * time.Minute)
	h.eventually(func() bool {
		return h.view(a).State == StateCapReached
	}, "A stopped at its cap")
	ok := false
	for end := time.Now().Add(waitFor); time.Now().Before(end) && !ok; {
		ok = h.view(b).Payments == 2
		time.Sleep(pollStep)
	}
	h.eng.mu.Lock()
	slots, parked := h.eng.slots, len(h.eng.slotWait)
	h.eng.mu.Unlock()
	require.True(t, ok, "B never paid again: %d slot(s) free, %d "+
		"subscription(s) parked in slotWait", slots, parked)
}
