package sender

import (
	"context"
	"sync"
	"testing"

	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/satstream/satstream/sender/sendertest"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
	"time"
)

// slowWriteStore holds every step, once it committed, while gated: a
// ledger whose fsyncs take long. Other work (lnd calls) goes on.
type slowWriteStore struct {
	store.SenderStore

	mu   sync.Mutex
	gate chan struct{} // nil: open
}

func (s *slowWriteStore) close() {
	s.mu.Lock()
	s.gate = make(chan struct{})
	s.mu.Unlock()
}

func (s *slowWriteStore) open() {
	s.mu.Lock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
	s.mu.Unlock()
}

func (s *slowWriteStore) Update(ctx context.Context,
	fn func(tx store.SenderTx) error) error {

	err := s.SenderStore.Update(ctx, fn)
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	return err
}

// attemptsOf counts the stored attempts of sub.
func attemptsOf(t *testing.T, db *store.DB, sub store.SubID) int {
	n := 0
	require.NoError(t, db.Sender().View(context.Background(),
		func(tx store.SenderTx) error {
			n = 0
			return tx.ForEachAttempt(sub, 0, func(*store.Attempt) error {
				n++
				return nil
			})
		}))
	return n
}

// TestFreedSlotWaitsForNextAttemptWrite reproduces a payment slot held
// longer than lnd needs it: with the in-flight bound reached, the next
// payment was only written (one fsync) after a slot freed, so the slot
// stayed empty for the write's whole fsync while lnd could have carried a
// payment. The next attempt is now written ahead while the slot is busy,
// and the freed slot hands it to lnd with no store write in between (here
// every write is held back then): each payment sent once, booked once.
func TestFreedSlotWaitsForNextAttemptWrite(t *testing.T) {
	h := newHarness(t, func(c *EngineConfig) {
		c.MaxInFlight = 1
		c.MaxInFlightPerSub = 2
	})
	slow := &slowWriteStore{SenderStore: h.db.Sender()}
	defer slow.open()
	h.eng = NewEngine(h.cfg, slow, h.clock, h.eng.log, h.eng.payLog, nil)
	require.NoError(t, h.eng.Load(context.Background()))
	h.router.SetDecide(func(lndclient.SendPaymentRequest) sendertest.Outcome {
		return sendertest.Outcome{Hold: true}
	})
	h.run()
	// A minute per payment and 90 s ahead: two payments.
	id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(90 * time.Second),
	})
	h.eventually(func() bool { return len(h.router.Held()) == 1 },
		"first payment in flight")
	h.eventually(func() bool { return attemptsOf(t, h.db, id) == 2 },
		"second payment written while the first is in flight")
	require.Len(t, h.router.Payments(), 1, "the bound of one in flight "+
		"holds")

	// Every write is slow from now on; the first payment settles.
	slow.close()
	first := h.router.Held()[0]
	h.router.Resolve(first, sendertest.Succeed(5))
	h.eventually(func() bool {
		return len(h.router.Held()) == 1 &&
			h.router.Held()[0] != first
	},
		"second payment sent without waiting for a write")

	slow.open()
	h.router.Resolve(h.router.Held()[0], sendertest.Succeed(5))
	h.eventually(func() bool {
		v := h.view(id)
		return v.Payments == 2 && v.InFlight == 0 && h.idle()
	}, "both booked")
	require.Len(t, h.router.Payments(), 2)
	for _, p := range h.router.Payments() {
		require.Equal(t, 1, p.Sends)
	}
	require.Equal(t, []uint64{1, 2}, sequences(t, h.router.Payments()))
}

// TestRestartSendsAttemptWrittenAheadOnce: an attempt written ahead and
// not yet sent when the sender stops is open in the ledger; the next start
// tracks it with lnd, which never saw it, and sends it, once.
func TestRestartSendsAttemptWrittenAheadOnce(t *testing.T) {
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
		return len(h.router.Held()) == 1 && attemptsOf(t, h.db, id) == 2
	}, "one in flight, one written ahead")

	// Crash; lnd settles the one it had meanwhile.
	h.stop()
	held := h.router.Held()
	h.router.Resolve(held[0], sendertest.Succeed(5))
	h.router.SetDecide(func(lndclient.SendPaymentRequest) sendertest.Outcome {
		return sendertest.Succeed(5)
	})
	h.load()
	h.run()

	h.eventually(func() bool {
		v := h.view(id)
		return v.Payments == 2 && v.InFlight == 0 && h.idle()
	}, "both booked")
	ps := h.router.Payments()
	require.Len(t, ps, 2)
	seen := map[lntypes.Hash]bool{}
	for _, p := range ps {
		require.False(t, seen[*p.Req.PaymentHash])
		seen[*p.Req.PaymentHash] = true
		require.Equal(t, 1, p.Sends)
		require.Equal(t, lnrpc.Payment_SUCCEEDED, p.Status.State)
	}
	require.Equal(t, []uint64{1, 2}, sequences(t, ps))
	require.EqualValues(t, 2, h.view(id).Payments)
}
