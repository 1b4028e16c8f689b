package core_test

import (
	"context"
	"crypto/rand"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/invoices"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/receiver/core"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// wait is how long a test waits for the pipeline to get somewhere.
const wait = 10 * time.Second

// runWith runs a pipeline on e and lnd, with cfg changed by mod, until
// the returned stop is called (at the latest when the test ends). Sweeps
// are rare unless mod asks for them, so a test sees what followers do on
// their own.
func runWith(t *testing.T, e *env, lnd *rt.FakeLnd,
	mod func(*core.PipelineConfig)) (stop func()) {

	t.Helper()
	cfg := core.PipelineConfig{
		Store: e.db, Source: lnd, Log: testLog,
		Now:           func() time.Time { return t0 },
		SweepInterval: time.Hour,
		RetryInterval: 10 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := core.NewPipeline(cfg)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err, "Run returned an error")
			case <-time.After(wait):
				t.Error("pipeline did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// newPreimage returns a random preimage, so a test knows a payment's hash
// before lnd hands the payment to the pipeline.
func newPreimage(t *testing.T) lntypes.Preimage {
	var pre lntypes.Preimage
	_, err := rand.Read(pre[:])
	require.NoError(t, err)
	return pre
}

// creditThenCrash runs a pipeline that dies right after committing the
// credit of a 2000 msat payment with sequence seq (the process is gone: no
// settle, no cleanup); lnd keeps the HTLC held. It returns the hash.
func creditThenCrash(t *testing.T, e *env, lnd *rt.FakeLnd,
	seq uint64) lntypes.Hash {

	t.Helper()
	crashed := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := core.NewPipeline(core.PipelineConfig{
		Store: e.db, Source: lnd, Log: testLog,
		Now: func() time.Time { return t0 },
		CrashHook: func(pt string) {
			if pt == core.CrashAfterCredit {
				close(crashed)
				// The "process" is dead: it does nothing
				// more. When Run ends the follower goroutine
				// ends here too (runtime.Goexit runs its
				// deferred clean-up): returning could still
				// settle, as Run's own context may not be
				// cancelled yet when ctx's Done fires.
				<-ctx.Done()
				runtime.Goexit()
			}
		},
	})
	subs := lnd.Subscribers()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Run(ctx)
	}()
	require.Eventually(t, func() bool { return lnd.Subscribers() > subs },
		wait, time.Millisecond)
	h := lnd.Keysend(2000, rt.Records(t, e.sub, seq, nil, false))
	select {
	case <-crashed:
	case <-time.After(wait):
		t.Fatal("crash point not reached")
	}
	// The add event was processed, so a restart does not replay it.
	require.Eventually(t, func() bool {
		return storedIndex(t, e, store.ReceiverTx.AddIndex) >= 1
	}, wait, 5*time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("crashed pipeline's Run did not end")
	}
	require.EqualValues(t, 1, e.subscription(t, e.sub).Payments)
	require.Equal(t, invoices.ContractAccepted, lnd.State(h))
	return h
}

// storedIndex reads one of the stored lnd stream positions.
func storedIndex(t *testing.T, e *env,
	get func(store.ReceiverTx) (uint64, error)) uint64 {

	var v uint64
	require.NoError(t, e.db.View(context.Background(), func(tx store.ReceiverTx) error {
		var err error
		v, err = get(tx)
		return err
	}))
	return v
}

// held lists the hashes in the held table.
func held(t *testing.T, e *env) []store.Hash {
	var hs []store.Hash
	require.NoError(t, e.db.View(context.Background(), func(tx store.ReceiverTx) error {
		return tx.ForEachHeld(func(h store.Hash) error {
			hs = append(hs, h)
			return nil
		})
	}))
	return hs
}

// payment returns the ledger entry of h, nil if there is none.
func payment(t *testing.T, e *env, h lntypes.Hash) *store.Payment {
	var p *store.Payment
	_ = e.db.View(context.Background(), func(tx store.ReceiverTx) error {
		p, _ = tx.Payment(store.Hash(h))
		return nil
	})
	return p
}

// pendingEvents counts the queued events of type typ.
func pendingEvents(t *testing.T, e *env, typ store.EventType) int {
	n := 0
	require.NoError(t, e.db.View(context.Background(), func(tx store.ReceiverTx) error {
		return tx.ForEachPendingEvent(0, func(ev *store.Event) error {
			if ev.Type == typ {
				n++
			}
			return nil
		})
	}))
	return n
}

// reversedPayment waits until the credit of h is taken back.
func requireReversed(t *testing.T, e *env, h lntypes.Hash) {
	t.Helper()
	require.Eventually(t, func() bool {
		p := payment(t, e, h)
		return p != nil && p.State == store.PaymentRefused &&
			e.subscription(t, e.sub).Payments == 0
	}, wait, 5*time.Millisecond, "credit of %v never reversed", h)
	s := e.subscription(t, e.sub)
	require.EqualValues(t, 0, s.TotalPaid)
	require.EqualValues(t, 0, s.TotalSeconds)
	require.Empty(t, held(t, e))
	require.Equal(t, 1, pendingEvents(t, e, store.EventPaymentReversed))
}

// requireStillDeciding pays once more and waits for the credit and the
// settle: the pipeline is not wedged.
func requireStillDeciding(t *testing.T, e *env, lnd *rt.FakeLnd, seq uint64) {
	t.Helper()
	h := lnd.Keysend(2000, rt.Records(t, e.sub, seq, nil, false))
	waitState(t, lnd, h, invoices.ContractSettled)
	require.Eventually(t, func() bool {
		p := payment(t, e, h)
		return p != nil && p.State == store.PaymentCredited &&
			p.SettleIndex != 0
	}, wait, 5*time.Millisecond)
}

// TestSettleFailsThenLndCancelsReversesCredit: the decision came so late
// that lnd's hold time ran out between the credit and the settle. The
// settle fails, lnd cancels the HTLC (the payer has its money back), and
// the running receiver must reverse the credit at once, not only after a
// restart.
func TestSettleFailsThenLndCancelsReversesCredit(t *testing.T) {
	t.Parallel()
	for _, errsFirst := range []bool{false, true} {
		name := "final update then channels closed"
		if errsFirst {
			name = "error channel closed before final CANCELED"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			lnd := rt.NewFakeLnd()
			lnd.ErrsCloseFirst = errsFirst
			pre := newPreimage(t)
			var outcomes, reversals atomic.Int32
			runWith(t, e, lnd, func(c *core.PipelineConfig) {
				c.CrashHook = func(pt string) {
					if pt == core.CrashAfterCredit {
						lnd.Expire(pre.Hash())
					}
				}
				c.OnOutcome = func(core.Outcome, time.Duration) {
					outcomes.Add(1)
				}
				c.OnReversed = func(core.Outcome) {
					reversals.Add(1)
				}
			})

			h := lnd.KeysendWithPreimage(pre, 2000,
				rt.Records(t, e.sub, 1, nil, false))
			requireReversed(t, e, h)
			require.Zero(t, lnd.Settles(h))
			requireStillDeciding(t, e, lnd, 2)
			// Callbacks run after the commit: once per decision
			// and reversal.
			require.Eventually(t, func() bool {
				return reversals.Load() == 1 &&
					outcomes.Load() == 2
			}, wait, 5*time.Millisecond)
			require.EqualValues(t, 1, reversals.Load())
			require.EqualValues(t, 2, outcomes.Load())
		})
	}
}

// TestFinalSettledAfterErrorChannelClosed: lndclient closes a single
// invoice stream's channels after the final state, and through the
// adapter's relay the closed error channel can be seen before the final
// update. A follower that stops there never records the settle: the
// payment stays in the held table (the invoice stream's settle events are
// held back so they can't make up for it).
func TestFinalSettledAfterErrorChannelClosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lnd := rt.NewFakeLnd()
	lnd.ErrsCloseFirst = true
	lnd.HoldSettleEvents()
	runWith(t, e, lnd, nil)

	var hashes []lntypes.Hash
	for seq := uint64(1); seq <= 8; seq++ {
		hashes = append(hashes, lnd.Keysend(2000,
			rt.Records(t, e.sub, seq, nil, false)))
	}
	for _, h := range hashes {
		waitState(t, lnd, h, invoices.ContractSettled)
		require.Eventually(t, func() bool {
			return lnd.SingleSubscribers(h) == 0
		}, wait, 5*time.Millisecond)
	}
	require.Eventually(t, func() bool { return len(held(t, e)) == 0 },
		wait, 5*time.Millisecond, "settled payments still held")
	for _, h := range hashes {
		p := payment(t, e, h)
		require.Equal(t, store.PaymentCredited, p.State)
		require.NotZero(t, p.SettleIndex, "settle of %v not recorded", h)
	}
	// Followers don't move the stream position; the stream does.
	require.Zero(t, storedIndex(t, e, store.ReceiverTx.SettleIndex))
	lnd.ReleaseSettleEvents()
	require.Eventually(t, func() bool {
		return storedIndex(t, e, store.ReceiverTx.SettleIndex) == 8
	}, wait, 5*time.Millisecond)
}

// TestHoldExpiresDuringRecoveryIsWatched: after a crash, recovery looks at
// a credited payment whose HTLC lnd still holds, and lnd's hold time runs
// out right after that look. Something must still be watching the hash
// when lnd cancels it, so the credit is reversed.
func TestHoldExpiresDuringRecoveryIsWatched(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lnd := rt.NewFakeLnd()
	h := creditThenCrash(t, e, lnd, 1)

	var once sync.Once
	lnd.SetReadHook(func(read lntypes.Hash) {
		if read == h {
			once.Do(func() { lnd.Expire(h) })
		}
	})
	runWith(t, e, lnd, nil)
	requireReversed(t, e, h)
	requireStillDeciding(t, e, lnd, 2)
}

// TestDeletedInvoiceDoesNotWedgeRun: lnd with gc-canceled-invoices deleted
// a credited payment's invoice after its hold expired while the receiver
// was down. Not found means cancelled: the credit is reversed, and the
// pipeline keeps deciding new payments instead of failing Run on every
// reconnect.
func TestDeletedInvoiceDoesNotWedgeRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lnd := rt.NewFakeLnd()
	h := creditThenCrash(t, e, lnd, 1)
	lnd.Expire(h)
	lnd.Delete(h)
	require.False(t, lnd.Exists(h))

	runWith(t, e, lnd, func(c *core.PipelineConfig) {
		c.SweepInterval = 20 * time.Millisecond
	})
	requireReversed(t, e, h)
	requireStillDeciding(t, e, lnd, 2)
}

// TestSlowSettleDoesNotBlockOtherDecisions: lnd takes its time settling
// payment A (up to --lnd.rpctimeout); payment B, accepted meanwhile, must
// be decided and settled before A's settle returns, or one slow call
// expires every other held HTLC.
func TestSlowSettleDoesNotBlockOtherDecisions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lnd := rt.NewFakeLnd()
	preA := newPreimage(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	lnd.SetSettleHook(func(h lntypes.Hash) error {
		if h == preA.Hash() {
			close(entered)
			<-release
		}
		return nil
	})
	stop := runWith(t, e, lnd, nil)
	var releaseOnce sync.Once
	defer stop()
	defer releaseOnce.Do(func() { close(release) })

	a := lnd.KeysendWithPreimage(preA, 2000, rt.Records(t, e.sub, 1, nil, false))
	select {
	case <-entered:
	case <-time.After(wait):
		t.Fatal("settle of A never started")
	}
	b := lnd.Keysend(2000, rt.Records(t, e.sub, 2, nil, false))
	waitState(t, lnd, b, invoices.ContractSettled)
	require.Equal(t, invoices.ContractAccepted, lnd.State(a))

	releaseOnce.Do(func() { close(release) })
	waitState(t, lnd, a, invoices.ContractSettled)
	require.Eventually(t, func() bool {
		return e.subscription(t, e.sub).Payments == 2
	}, wait, 5*time.Millisecond)
}

// TestSecondHTLCBeforeDecisionIsCredited: a payer paid one hash twice
// before the receiver decided; SettleInvoice settles both HTLCs, so the
// decision is on the invoice's whole accepted amount.
func TestSecondHTLCBeforeDecisionIsCredited(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lnd := rt.NewFakeLnd()
	h := lnd.Keysend(2000, rt.Records(t, e.sub, 1, nil, false))
	lnd.AddHTLC(h, 1000)

	var excess atomic.Int32
	runWith(t, e, lnd, func(c *core.PipelineConfig) {
		c.OnExcess = func(lntypes.Hash, lnwire.MilliSatoshi,
			lnwire.MilliSatoshi) {
			excess.Add(1)
		}
	})
	waitState(t, lnd, h, invoices.ContractSettled)
	require.Eventually(t, func() bool { return len(held(t, e)) == 0 },
		wait, 5*time.Millisecond)
	s := e.subscription(t, e.sub)
	require.EqualValues(t, 3000, s.TotalPaid)
	require.EqualValues(t, 300, s.TotalSeconds)
	require.Zero(t, excess.Load())
}

// TestHTLCAddedAfterDecisionIsReported: a second HTLC with the same hash
// arrives between the decision and the settle (lnd sends no update for
// it) and SettleInvoice settles it too. The receiver keeps more than it
// credited; it must say so, with the amounts, rather than keep it
// silently.
func TestHTLCAddedAfterDecisionIsReported(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lnd := rt.NewFakeLnd()
	pre := newPreimage(t)
	type excess struct {
		hash              lntypes.Hash
		credited, settled lnwire.MilliSatoshi
	}
	got := make(chan excess, 10)
	runWith(t, e, lnd, func(c *core.PipelineConfig) {
		c.CrashHook = func(pt string) {
			if pt == core.CrashAfterCredit {
				lnd.AddHTLC(pre.Hash(), 1000)
			}
		}
		c.OnExcess = func(h lntypes.Hash, credited,
			settled lnwire.MilliSatoshi) {
			got <- excess{h, credited, settled}
		}
	})
	h := lnd.KeysendWithPreimage(pre, 2000, rt.Records(t, e.sub, 1, nil, false))
	select {
	case ex := <-got:
		require.Equal(t, excess{h, 2000, 3000}, ex)
	case <-time.After(wait):
		t.Fatal("excess settled amount not reported")
	}
	require.EqualValues(t, 2000, e.subscription(t, e.sub).TotalPaid)
}

// TestSettleIndexAdvancesOnlyInStreamOrder: without a hold time lnd
// settles keysends itself. A follower that moves the stored settle index
// to its invoice's index, ahead of the stream, makes a restart in that
// window resume past an earlier settle that was never processed: that
// payment is never credited.
func TestSettleIndexAdvancesOnlyInStreamOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lnd := rt.NewFakeLnd()
	lnd.AutoSettle = true
	stop := runWith(t, e, lnd, nil)
	require.Eventually(t, func() bool { return lnd.Subscribers() == 1 },
		wait, time.Millisecond)

	// A first payment goes all the way: settle index 1 is stored.
	lnd.Keysend(2000, rt.Records(t, e.sub, 1, nil, false))
	require.Eventually(t, func() bool {
		return storedIndex(t, e, store.ReceiverTx.SettleIndex) == 1
	}, wait, 5*time.Millisecond)

	// A (settle index 2) and B (3): the stream's settle events lag, A's
	// follower is slow to start, B's follower sees B settled and is done.
	lnd.HoldSettleEvents()
	preA, preB := newPreimage(t), newPreimage(t)
	releaseA := lnd.BlockSubscribe(preA.Hash())
	defer releaseA()
	a := lnd.KeysendWithPreimage(preA, 2000, rt.Records(t, e.sub, 2, nil, false))
	b := lnd.KeysendWithPreimage(preB, 2000, rt.Records(t, e.sub, 3, nil, false))
	require.Eventually(t, func() bool {
		return lnd.SingleSubscribes(b) == 1 && lnd.SingleSubscribers(b) == 0
	}, wait, 5*time.Millisecond)

	// The receiver stops in that window and starts again.
	stop()
	releaseA()
	lnd.ReleaseSettleEvents()
	runWith(t, e, lnd, nil)
	for _, h := range []lntypes.Hash{a, b} {
		require.Eventually(t, func() bool {
			p := payment(t, e, h)
			return p != nil && p.State == store.PaymentCredited
		}, wait, 5*time.Millisecond, "settled payment %v never credited", h)
	}
	require.Eventually(t, func() bool {
		return storedIndex(t, e, store.ReceiverTx.SettleIndex) == 3
	}, wait, 5*time.Millisecond)
	require.EqualValues(t, 3, e.subscription(t, e.sub).Payments)
}

// TestPendingListFailureAtStartIsRetriedSoon: after a restart, a payment
// lnd accepted while the receiver was away is only found by the sweep's
// ListPendingInvoices (its add event is not replayed). Listing failed
// twice at start; Run carries on and tries again with the retry backoff,
// not a whole sweep interval (as long as lnd's hold time) later.
func TestPendingListFailureAtStartIsRetriedSoon(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lnd := rt.NewFakeLnd()
	lnd.FailListPending(2)
	h := lnd.Keysend(2000, rt.Records(t, e.sub, 1, nil, false))
	runWith(t, e, lnd, nil) // SweepInterval: an hour
	waitState(t, lnd, h, invoices.ContractSettled)
	require.Eventually(t, func() bool {
		return e.subscription(t, e.sub).Payments == 1
	}, wait, 5*time.Millisecond)
}

// staleHeld is a store whose held table also lists one hash that is no
// longer held: what a sweep sees when it read the table just before a
// follower settled the hash and cleared its mark.
type staleHeld struct {
	store.ReceiverStore
	hash atomic.Pointer[store.Hash]
}

type staleHeldTx struct {
	store.ReceiverTx
	hash *store.Hash
}

func (s *staleHeld) View(ctx context.Context,
	fn func(store.ReceiverTx) error) error {

	return s.ReceiverStore.View(ctx, func(tx store.ReceiverTx) error {
		return fn(staleHeldTx{tx, s.hash.Load()})
	})
}

func (tx staleHeldTx) ForEachHeld(fn func(store.Hash) error) error {
	if err := tx.ReceiverTx.ForEachHeld(fn); err != nil {
		return err
	}
	if tx.hash != nil {
		return fn(*tx.hash)
	}
	return nil
}

// TestStaleHeldReadDoesNotReportExcessTwice: a payment's settle included
// an HTLC added after the decision, and its follower reported the excess.
// A sweep that read the held table before the follower cleared the mark
// follows the hash again; that follower finds it SETTLED and must not
// report the excess again (the operator would refund it twice).
func TestStaleHeldReadDoesNotReportExcessTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lnd := rt.NewFakeLnd()
	pre := newPreimage(t)
	db := &staleHeld{ReceiverStore: e.db}
	var excess atomic.Int32
	runWith(t, e, lnd, func(c *core.PipelineConfig) {
		c.Store = db
		c.SweepInterval = 5 * time.Millisecond
		c.CrashHook = func(pt string) {
			if pt == core.CrashAfterCredit {
				lnd.AddHTLC(pre.Hash(), 1000)
			}
		}
		c.OnExcess = func(lntypes.Hash, lnwire.MilliSatoshi,
			lnwire.MilliSatoshi) {
			excess.Add(1)
		}
	})
	h := lnd.KeysendWithPreimage(pre, 2000, rt.Records(t, e.sub, 1, nil, false))
	require.Eventually(t, func() bool { return excess.Load() == 1 },
		wait, 5*time.Millisecond, "excess never reported")
	require.Eventually(t, func() bool {
		p := payment(t, e, h)
		return p.SettleIndex != 0 && len(held(t, e)) == 0
	}, wait, 5*time.Millisecond)

	// Sweeps now see the stale mark; two more followers (one after the
	// other: a hash has one follower at a time) find it SETTLED.
	sh := store.Hash(h)
	db.hash.Store(&sh)
	require.Eventually(t, func() bool { return lnd.SingleSubscribes(h) >= 3 },
		wait, 5*time.Millisecond)
	require.EqualValues(t, 1, excess.Load())
	require.EqualValues(t, 2000, e.subscription(t, e.sub).TotalPaid)
}

// TestDecisionInterruptedByRestartIsReported: the receiver committed a
// credit and died before settling it; after the restart, the follower
// that settles it must report the decision (metrics, events), once, as
// the credit it is, not as a duplicate.
func TestDecisionInterruptedByRestartIsReported(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lnd := rt.NewFakeLnd()
	h := creditThenCrash(t, e, lnd, 1)

	var mu sync.Mutex
	var outs []core.Outcome
	var events atomic.Int32
	runWith(t, e, lnd, func(c *core.PipelineConfig) {
		c.OnOutcome = func(o core.Outcome, _ time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			outs = append(outs, o)
		}
		c.OnEvents = func() { events.Add(1) }
	})
	waitState(t, lnd, h, invoices.ContractSettled)
	require.Eventually(t, func() bool { return len(held(t, e)) == 0 },
		wait, 5*time.Millisecond)
	requireStillDeciding(t, e, lnd, 2)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(outs) == 2
	}, wait, 5*time.Millisecond, "interrupted decision not reported")
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, outs, 2)
	require.True(t, outs[0].Credited, "%+v", outs[0])
	require.False(t, outs[0].Duplicate)
	require.EqualValues(t, 2000, outs[0].Amount)
	require.EqualValues(t, 1, outs[0].Seq)
	require.EqualValues(t, 2, events.Load())
}

// TestNotOursKeysendReportedOncePerProcess: a keysend without satstream
// records has no ledger entry, so every follower that sees it ACCEPTED
// decides it anew. Its settle RPC failed although lnd settled, then the
// connection was lost and a new pipeline (sharing the process's Reported
// set) took over: it is counted once.
func TestNotOursKeysendReportedOncePerProcess(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lnd := rt.NewFakeLnd()
	reported := core.NewReported(0)
	var outcomes atomic.Int32
	mod := func(c *core.PipelineConfig) {
		c.Reported = reported
		c.OnOutcome = func(o core.Outcome, _ time.Duration) {
			require.True(t, o.NotOurs)
			outcomes.Add(1)
		}
	}
	lnd.SetAfterSettleHook(func(lntypes.Hash) error {
		return errors.New("rpc timed out")
	})
	stop := runWith(t, e, lnd, mod)
	require.Eventually(t, func() bool { return lnd.Subscribers() == 1 },
		wait, time.Millisecond)
	h := lnd.Keysend(2000, nil)
	waitState(t, lnd, h, invoices.ContractSettled)
	require.Eventually(t, func() bool { return outcomes.Load() == 1 },
		wait, 5*time.Millisecond)
	stop()

	runWith(t, e, lnd, mod)
	lnd.Keysend(1000, nil)
	require.Eventually(t, func() bool { return outcomes.Load() == 2 },
		wait, 5*time.Millisecond)
	require.Nil(t, payment(t, e, h))
	require.EqualValues(t, 2, outcomes.Load())
}

// TestSettleRPCFailsAfterLndSettled: lnd settled the HTLC but the
// SettleInvoice call returned an error (timed out on the way back). The
// follower tries again, finds it SETTLED: the credit stays, the payment
// is recorded settled, nothing is reversed.
func TestSettleRPCFailsAfterLndSettled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lnd := rt.NewFakeLnd()
	var calls atomic.Int32
	lnd.SetAfterSettleHook(func(lntypes.Hash) error {
		calls.Add(1)
		return errors.New("context deadline exceeded")
	})
	var reversals, outcomes atomic.Int32
	runWith(t, e, lnd, func(c *core.PipelineConfig) {
		c.OnReversed = func(core.Outcome) { reversals.Add(1) }
		c.OnOutcome = func(core.Outcome, time.Duration) {
			outcomes.Add(1)
		}
	})
	h := lnd.Keysend(2000, rt.Records(t, e.sub, 1, nil, false))
	waitState(t, lnd, h, invoices.ContractSettled)
	require.Eventually(t, func() bool {
		p := payment(t, e, h)
		return p != nil && p.SettleIndex != 0 && len(held(t, e)) == 0
	}, wait, 5*time.Millisecond)
	require.Eventually(t, func() bool { return outcomes.Load() == 1 },
		wait, 5*time.Millisecond)
	p := payment(t, e, h)
	require.Equal(t, store.PaymentCredited, p.State)
	s := e.subscription(t, e.sub)
	require.EqualValues(t, 1, s.Payments)
	require.EqualValues(t, 2000, s.TotalPaid)
	require.Zero(t, reversals.Load())
	require.Zero(t, pendingEvents(t, e, store.EventPaymentReversed))
	require.GreaterOrEqual(t, calls.Load(), int32(1))
	require.EqualValues(t, 1, outcomes.Load())
}

// TestLndSettlesRefusedPaymentIsUnclaimed: lnd settled a hash the ledger
// refused (or, where the ledger keeps no row for a refusal, one it has
// nothing about). The money is kept, so the payment must end recorded as
// unclaimed with its settle index and counted, not stay refused.
func TestLndSettlesRefusedPaymentIsUnclaimed(t *testing.T) {
	t.Parallel()
	unknown := store.SubID{7, 7, 7}
	for _, tc := range []struct {
		name string
		row  bool
	}{
		{"refused row", true},
		{"no row", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			lnd := rt.NewFakeLnd()
			lnd.AutoSettle = true
			pre := newPreimage(t)
			if tc.row {
				require.NoError(t, e.db.Update(context.Background(),
					func(tx store.ReceiverTx) error {
						return tx.PutPayment(&store.Payment{
							Hash: store.Hash(pre.Hash()),
							Seq:  1, Amount: 2000,
							State:  store.PaymentRefused,
							Reason: "unknown_subscription: no such subscription",
						})
					}))
			}
			var unclaimed atomic.Int32
			runWith(t, e, lnd, func(c *core.PipelineConfig) {
				c.OnOutcome = func(o core.Outcome, _ time.Duration) {
					if o.Unclaimed {
						unclaimed.Add(1)
					}
				}
			})
			require.Eventually(t, func() bool { return lnd.Subscribers() == 1 },
				wait, time.Millisecond)
			h := lnd.KeysendWithPreimage(pre, 2000,
				rt.Records(t, unknown, 1, nil, false))
			require.Eventually(t, func() bool {
				p := payment(t, e, h)
				return p != nil && p.State == store.PaymentUnclaimed &&
					p.SettleIndex != 0
			}, wait, 5*time.Millisecond, "settled refused payment not unclaimed")
			require.Eventually(t, func() bool { return unclaimed.Load() == 1 },
				wait, 5*time.Millisecond)
			require.EqualValues(t, 2000, payment(t, e, h).Amount)
			require.EqualValues(t, 1, storedIndex(t, e, store.ReceiverTx.SettleIndex))
			require.EqualValues(t, 1, unclaimed.Load())
		})
	}
}

// TestFollowerCapBoundsOpenStreams: ten keysends are held when the
// receiver starts. Each follower keeps a SubscribeSingleInvoice stream
// open, so without a cap 10,000 held payments open 10,000 streams at
// once; with a cap of 2 at most 2 are open and every payment is still
// decided.
func TestFollowerCapBoundsOpenStreams(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lnd := rt.NewFakeLnd()
	var hs []lntypes.Hash
	for seq := uint64(1); seq <= 10; seq++ {
		hs = append(hs, lnd.Keysend(2000,
			rt.Records(t, e.sub, seq, nil, false)))
	}
	runWith(t, e, lnd, func(c *core.PipelineConfig) {
		c.MaxFollowers = 2
	})
	for _, h := range hs {
		waitState(t, lnd, h, invoices.ContractSettled)
	}
	require.Eventually(t, func() bool {
		return e.subscription(t, e.sub).Payments == 10 &&
			len(held(t, e)) == 0
	}, wait, 5*time.Millisecond)
	require.LessOrEqual(t, lnd.MaxSingleStreams(), 2)
}

// TestLndSettlesLegacyRefusedRowLogsSecret reproduces lnd settling a
// payment whose refused row an older version wrote with the secret in its
// reason: the unclaimed outcome carried that detail into the UNCLAIMED
// warning. Its detail must name the public id, its reason the code only.
func TestLndSettlesLegacyRefusedRowLogsSecret(t *testing.T) {
	t.Parallel()
	unknown := store.SubID{0xee, 7, 7}
	e := newEnv(t)
	lnd := rt.NewFakeLnd()
	lnd.AutoSettle = true
	pre := newPreimage(t)
	require.NoError(t, e.db.Update(context.Background(),
		func(tx store.ReceiverTx) error {
			return tx.PutPayment(&store.Payment{
				Hash: store.Hash(pre.Hash()), Seq: 1, Amount: 2000,
				State: store.PaymentRefused,
				Reason: "unknown_subscription: subscription " +
					unknown.Hex() + " is not known",
			})
		}))
	outs := make(chan core.Outcome, 4)
	runWith(t, e, lnd, func(c *core.PipelineConfig) {
		c.OnOutcome = func(o core.Outcome, _ time.Duration) {
			if o.Unclaimed {
				outs <- o
			}
		}
	})
	require.Eventually(t, func() bool { return lnd.Subscribers() == 1 },
		wait, time.Millisecond)
	lnd.KeysendWithPreimage(pre, 2000, rt.Records(t, unknown, 1, nil, false))
	select {
	case o := <-outs:
		require.Equal(t, core.ReasonUnknownSubscription, o.Reason)
		require.Equal(t, "subscription "+unknown.PublicID().String()+
			" is not known", o.Detail)
	case <-time.After(wait):
		t.Fatal("no unclaimed outcome")
	}
}
