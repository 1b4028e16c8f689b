package sender

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/sender/sendertest"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

// syncGate holds a disk store's group-commit fsyncs while it is closed.
type syncGate struct {
	mu     sync.Mutex
	closed bool
	open   chan struct{}
	// until, when set, ends a hold early once it reports true.
	until func() bool
}

func newSyncGate() *syncGate { return &syncGate{open: make(chan struct{})} }

// hook is the store's FaultHook: a sync waits while the gate is closed, at
// most waitFor (so a test that fails does not hang).
func (g *syncGate) hook(p store.FaultPoint) error {
	if p != store.FaultSync {
		return nil
	}
	g.mu.Lock()
	closed, open, until := g.closed, g.open, g.until
	g.mu.Unlock()
	if !closed {
		return nil
	}
	deadline := time.After(waitFor)
	for until == nil || !until() {
		select {
		case <-open:
			return nil
		case <-deadline:
			return nil
		case <-time.After(pollStep):
		}
	}
	return nil
}

func (g *syncGate) close(until func() bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed, g.until, g.open = true, until, make(chan struct{})
}

func (g *syncGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		g.closed = false
		close(g.open)
	}
}

// newDiskHarness is newHarness over a store on disk (group commit, fsyncs
// through gate), as the daemon runs it.
func newDiskHarness(t *testing.T, gate *syncGate,
	mutate func(*EngineConfig)) *harness {

	t.Helper()
	opts := store.DefaultOptions()
	opts.GCInterval = 0
	opts.MinFreeBytes = 0
	opts.FaultHook = gate.hook
	db, err := store.Open(context.Background(), t.TempDir(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	cfg := DefaultEngineConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	h := &harness{t: t, db: db, clock: sendertest.NewClock(start),
		router: sendertest.NewRouter(), cfg: cfg}
	h.load()
	return h
}

// loadWith makes a fresh engine over st, as a restart does.
func (h *harness) loadWith(st store.SenderStore) {
	h.eng = NewEngine(h.cfg, st, h.clock, btclog.Disabled,
		btclog.Disabled, nil)
	require.NoError(h.t, h.eng.Load(context.Background()))
}

// TestAttemptsOfDueSubscriptionsWaitForAnFsyncEach: the scheduler wrote the
// attempts of due subscriptions one after another, each waiting for its
// own fsync before the next began, so with N due every payment waited for
// up to N fsyncs before lnd saw it. They must be created concurrently and
// share one group commit.
func TestAttemptsOfDueSubscriptionsWaitForAnFsyncEach(t *testing.T) {
	const subs = 4
	gate := newSyncGate()
	h := newDiskHarness(t, gate, nil)
	h.router.SetDecide(func(lndclient.SendPaymentRequest) sendertest.Outcome {
		return sendertest.Outcome{Hold: true}
	})
	for range subs {
		h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
			Increment: dur(time.Minute), Buffer: dur(time.Minute),
		})
	}
	base := h.db.Stats()

	// The first fsync after start waits until every subscription's
	// attempt has committed (or, if they come one at a time, until the
	// deadline): how many it covers is what the test measures.
	var covered atomic.Uint64
	gate.close(func() bool {
		n := h.db.Stats().Commits - base.Commits
		covered.Store(n)
		return n >= subs
	})
	h.run()
	// Each subscription's first payment; a second one each (the buffer
	// is not yet more than paid) may follow in the next group commit, so
	// this counts subscriptions with a payment at lnd, not payments.
	h.eventually(func() bool {
		paying := map[tlv.SubscriptionID]bool{}
		for _, p := range h.router.Payments() {
			recs, err := tlv.Decode(p.Req.CustomRecords)
			if err != nil {
				return false
			}
			paying[recs.SubscriptionID] = true
		}
		return len(paying) == subs
	}, "every subscription's payment handed to lnd")
	gate.release()
	require.GreaterOrEqual(t, covered.Load(), uint64(subs),
		"attempts committed before the first fsync returned")
}

// TestCrashBetweenGroupedCommitAndSend: attempts that share a group commit
// are on disk, and the process stops before any was handed to lnd. Nothing
// is sent by the stopping process; the next start finds them open, learns
// that lnd never saw them and sends each exactly once, under its stored
// hash.
func TestCrashBetweenGroupedCommitAndSend(t *testing.T) {
	const subs = 3
	gate := newSyncGate()
	h := newDiskHarness(t, gate, nil)
	for range subs {
		h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
			Increment: dur(time.Minute), Buffer: dur(time.Minute),
		})
	}
	base := h.db.Stats()
	gate.close(nil)
	h.run()
	h.eventually(func() bool {
		return h.db.Stats().Commits-base.Commits >= subs
	}, "attempts committed, their fsync held")

	// Stop while the fsync is under way: the creations are acknowledged
	// only after it, and then find the engine stopping.
	h.cancel()
	gate.release()
	<-h.done
	h.cancel = nil
	require.Empty(t, h.router.Payments(), "sent by a stopping engine")

	var stored []*store.Attempt
	require.NoError(t, h.db.Sender().View(context.Background(),
		func(tx store.SenderTx) error {
			stored = nil
			return tx.ForEachOpenAttempt(func(a *store.Attempt) error {
				stored = append(stored, a)
				return nil
			})
		}))
	require.Len(t, stored, subs)

	h.load()
	h.run()
	sent := func(a *store.Attempt) bool {
		for _, p := range h.router.Payments() {
			if *p.Req.PaymentHash == lntypes.Hash(a.Hash) {
				return p.Status.State == lnrpc.Payment_SUCCEEDED
			}
		}
		return false
	}
	h.drive(func() bool {
		for _, a := range stored {
			if !sent(a) {
				return false
			}
			if s, _ := h.stored(a.SubID, 0); s.Payments == 0 {
				return false
			}
		}
		return true
	}, "open attempts sent and booked after the restart")
	for _, a := range stored {
		var found bool
		for _, p := range h.router.Payments() {
			if *p.Req.PaymentHash != lntypes.Hash(a.Hash) {
				continue
			}
			found = true
			require.Equal(t, 1, p.Sends, "seq %d sent once", a.Seq)
			require.Equal(t, lnrpc.Payment_SUCCEEDED, p.Status.State)
		}
		require.True(t, found, "stored attempt %s/%d sent", a.SubID,
			a.Seq)
		_, got := h.stored(a.SubID, a.Seq)
		require.Equal(t, store.AttemptSucceeded, got.State)
	}
}

// bookingStore delays or fails the step that books an attempt's outcome
// (any PutAttempt of an attempt that is no longer just created).
type bookingStore struct {
	store.SenderStore
	// hold, while open, keeps a booking from returning (it is on disk).
	hold chan struct{}
	// fail makes a booking return err without writing anything, as a
	// failed fsync followed by a crash loses it.
	fail atomic.Bool
	// held counts bookings waiting on hold.
	held atomic.Int32
}

// errBookingLost rolls a failed booking's transaction back.
var errBookingLost = errors.New("booking lost")

type bookingTx struct {
	store.SenderTx
	booking *bool
}

func (t bookingTx) PutAttempt(a *store.Attempt) error {
	if a.State != store.AttemptCreated {
		*t.booking = true
	}
	return t.SenderTx.PutAttempt(a)
}

func (s *bookingStore) Update(ctx context.Context,
	fn func(tx store.SenderTx) error) error {

	var booking bool
	err := s.SenderStore.Update(ctx, func(tx store.SenderTx) error {
		booking = false
		if err := fn(bookingTx{tx, &booking}); err != nil {
			return err
		}
		if booking && s.fail.Load() {
			return errBookingLost
		}
		return nil
	})
	if errors.Is(err, errBookingLost) {
		return fmt.Errorf("%w: test: fsync of the booking failed",
			store.ErrFailed)
	}
	if err == nil && booking && s.hold != nil {
		s.held.Add(1)
		<-s.hold
	}
	return err
}

// TestSlotHeldUntilOutcomeOnDisk: a payment lnd had settled kept its
// in-flight slot until its outcome was on disk, so with the bound reached
// every next payment waited for the previous one's fsync. The slot must go
// to the next payment at lnd's final state, while the booking goes on.
func TestSlotHeldUntilOutcomeOnDisk(t *testing.T) {
	h := newHarness(t, func(c *EngineConfig) { c.MaxInFlight = 1 })
	bs := &bookingStore{SenderStore: h.db.Sender(), hold: make(chan struct{})}
	h.loadWith(bs)
	h.router.SetDecide(func(lndclient.SendPaymentRequest) sendertest.Outcome {
		return sendertest.Outcome{Hold: true}
	})
	h.run()
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(bs.hold) }) })
	var ids []store.SubID
	for range 2 {
		ids = append(ids, h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
			Increment: dur(time.Minute), Buffer: dur(time.Minute),
		}))
	}
	h.eventually(func() bool { return len(h.router.Held()) == 1 },
		"one payment in flight")
	first := h.router.Held()[0]
	h.router.Resolve(first, sendertest.Succeed(0))
	h.eventually(func() bool { return bs.held.Load() == 1 },
		"its booking under way")
	h.eventually(func() bool {
		held := h.router.Held()
		return len(held) == 1 && held[0] != first
	}, "the next payment sent while the first is being booked")
	release.Do(func() { close(bs.hold) })
	h.eventually(func() bool {
		return h.view(ids[0]).Payments+h.view(ids[1]).Payments == 1
	}, "first payment booked")
}

// TestBookingFailsAfterSettleThenRestartBooksOnce: lnd settled a payment
// and its booking never reached the disk (the store failed). The attempt
// stays open and its time is not paid again meanwhile; the next start
// tracks it with lnd and books it exactly once, without sending it again.
func TestBookingFailsAfterSettleThenRestartBooksOnce(t *testing.T) {
	h := newHarness(t, func(c *EngineConfig) { c.MaxInFlightPerSub = 1 })
	bs := &bookingStore{SenderStore: h.db.Sender()}
	bs.fail.Store(true)
	h.loadWith(bs)
	h.run()
	id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(time.Minute),
	})
	h.eventually(func() bool {
		ps := h.router.Payments()
		h.eng.mu.Lock()
		inFlight := h.eng.inFlight
		h.eng.mu.Unlock()
		return len(ps) == 1 && ps[0].Status.State ==
			lnrpc.Payment_SUCCEEDED && inFlight == 0
	}, "settled in lnd, booking failed")
	require.Zero(t, h.view(id).Payments)
	require.Equal(t, 1, h.view(id).InFlight, "still open")
	require.Len(t, h.router.Payments(), 1, "its time not paid again")

	h.stop()
	h.load()
	h.run()
	first := h.router.Payments()[0]
	h.eventually(func() bool {
		v := h.view(id)
		return v.Payments >= 1 && v.InFlight == 0 &&
			v.Payments == uint64(len(h.router.Payments()))
	}, "booked after the restart")

	h.stop()

	// The payment whose booking failed was tracked, not sent again, and
	// is counted once: the subscription's totals are exactly the sum of
	// its succeeded attempts, and what is reserved is exactly what its
	// open attempts hold.
	s, a := h.stored(id, 1)
	require.Equal(t, store.AttemptSucceeded, a.State)
	require.Equal(t, lntypes.Hash(a.Hash), *first.Req.PaymentHash)
	for _, p := range h.router.Payments() {
		require.Equal(t, 1, p.Sends, "hash sent once")
	}
	var (
		paid          uint64
		sent, reserve lnwire.MilliSatoshi
	)
	require.NoError(t, h.db.Sender().View(context.Background(),
		func(tx store.SenderTx) error {
			paid, sent, reserve = 0, 0, 0
			return tx.ForEachAttempt(id, 0, func(a *store.Attempt) error {
				switch a.State {
				case store.AttemptSucceeded:
					paid++
					sent += a.Amount
				case store.AttemptCreated:
					reserve += a.Amount + a.MaxFee
				}
				return nil
			})
		}))
	require.Equal(t, paid, s.Payments)
	require.Equal(t, sent, s.TotalSent)
	require.Equal(t, reserve, s.Reserved)
}
