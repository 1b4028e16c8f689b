package sender

import (
	"context"
	"os"

	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/satstream/satstream/common"

	"github.com/btcsuite/btclog/v2"
	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
	"github.com/satstream/satstream/sender/sendertest"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

var (
	start    = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	noRoute  = sendertest.Fail(lnrpc.PaymentFailureReason_FAILURE_REASON_NO_ROUTE)
	refusal  = sendertest.Fail(lnrpc.PaymentFailureReason_FAILURE_REASON_INCORRECT_PAYMENT_DETAILS)
	waitFor  = 5 * time.Second
	pollStep = 2 * time.Millisecond
)

// testOffer makes an offer to the secp256k1 generator's key at price msat
// per second.
func testOffer(t *testing.T, price lnwire.MilliSatoshi, maxPrepay time.Duration,
	open bool) string {

	t.Helper()
	node, err := hex.DecodeString("0279be667ef9dcbbac55a06295ce870b" +
		"07029bfcdb2dce28d959f2815b16f81798")
	require.NoError(t, err)
	o := &tlv.Offer{
		PriceMsatPerSec:  price,
		MinPayment:       price,
		DefaultIncrement: time.Minute,
		GracePeriod:      time.Minute,
		MaxPrepay:        maxPrepay,
	}
	copy(o.Node[:], node)
	if open {
		p, err := tlv.NewPlanID()
		require.NoError(t, err)
		o.PlanID = &p
	} else {
		s, err := tlv.NewSubscriptionID()
		require.NoError(t, err)
		o.SubscriptionID = &s
	}
	require.NoError(t, o.Validate())
	return o.String()
}

// harness runs an engine over an in-memory store with a manual clock and a
// fake router.
type harness struct {
	t      *testing.T
	db     *store.DB
	clock  *sendertest.Clock
	router *sendertest.Router
	cfg    EngineConfig
	eng    *Engine
	cancel context.CancelFunc
	done   chan struct{}
}

func newHarness(t *testing.T, mutate func(*EngineConfig)) *harness {
	t.Helper()
	opts := store.DefaultOptions()
	opts.InMemory = true
	opts.GCInterval = 0
	db, err := store.Open(context.Background(), "", opts)
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

// load makes a fresh engine over the store, as a restart does.
func (h *harness) load() {
	log := btclog.Disabled
	if os.Getenv("SENDER_TEST_LOG") != "" {
		lm := common.NewLogManager(os.Stderr)
		log = lm.Logger("TEST")
		log.SetLevel(btclog.LevelDebug)
	}
	h.eng = NewEngine(h.cfg, h.db.Sender(), h.clock, log, log, nil)
	require.NoError(h.t, h.eng.Load(context.Background()))
}

func (h *harness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go func() {
		defer close(h.done)
		_ = h.eng.Run(ctx, h.router)
	}()
	h.t.Cleanup(h.stop)
}

// stop ends the engine as a shutdown (or crash) would.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.done
	h.cancel = nil
}

func (h *harness) add(offer string, req TermsRequest) store.SubID {
	v, err := h.eng.Add(context.Background(), offer, req, false)
	require.NoError(h.t, err)
	id, err := tlv.ParseSubscriptionID(v.Secret)
	require.NoError(h.t, err)
	return store.SubID(id)
}

func (h *harness) view(id store.SubID) *View {
	v, err := h.eng.Get(id)
	require.NoError(h.t, err)
	return v
}

// eventually polls cond with a deadline (never a sleep as synchronisation).
func (h *harness) eventually(cond func() bool, msg string) {
	h.t.Helper()
	require.Eventually(h.t, cond, waitFor, pollStep, msg)
}

// idle reports whether the engine is quiescent: no payment in flight, none
// being created or booked (a payment's slot is freed at lnd's final state,
// before its outcome is booked), no wake-up pending, nothing due, and the
// scheduler waiting for the timer of its next due subscription. Only moving
// the clock (or the test) changes anything then. A check of inFlight alone
// saw "idle" while an outcome was still being booked, and the clock was
// moved under it.
func (h *harness) idle() bool {
	e := h.eng
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.waiting || len(e.wakeCh) > 0 || e.inFlight > 0 ||
		e.recovering > 0 {

		return false
	}
	for _, r := range e.subs {
		if r.creating {
			return false
		}
		for _, ar := range r.open {
			if ar.running {
				return false
			}
		}
	}
	if e.queue.Len() == 0 {
		return e.timerDue.IsZero()
	}
	due := e.queue[0].due
	return due.After(h.clock.Now()) && due.Equal(e.timerDue)
}

// idleHeld reports whether every running payment has reached the fake
// router (they are all held there) and none is being created.
func (h *harness) idleHeld() bool {
	h.eng.mu.Lock()
	running := h.eng.inFlight
	creating := false
	for _, r := range h.eng.subs {
		creating = creating || r.creating
	}
	h.eng.mu.Unlock()
	return !creating && running == len(h.router.Held())
}

// drive polls cond, moving the clock to the scheduler's next wake-up
// (a retry or payment time) between polls. The clock moves only while the
// engine is idle, and cond is judged then too, so a payment still being
// created or booked is never overtaken by the next one.
func (h *harness) drive(cond func() bool, msg string) {
	h.t.Helper()
	h.eventually(func() bool {
		if cond() {
			return true
		}
		if !h.idle() {
			return false
		}
		// cond may have come true while the engine settled.
		if cond() {
			return true
		}
		if next := h.clock.NextWake(); !next.IsZero() {
			h.clock.Advance(next.Sub(h.clock.Now()))
		}
		return false
	}, msg)
}

// sequences returns the sequence numbers carried by the router's payments.
func sequences(t *testing.T, ps []sendertest.Payment) []uint64 {
	var out []uint64
	for _, p := range ps {
		recs, err := tlv.Decode(p.Req.CustomRecords)
		require.NoError(t, err)
		out = append(out, recs.Sequence)
	}
	return out
}

func dur(d time.Duration) *time.Duration { return &d }

func TestSchedulerKeepsBufferPaid(t *testing.T) {
	h := newHarness(t, nil)
	h.run()
	// 1 sat/s, one minute per payment, two minutes ahead.
	id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(2 * time.Minute),
	})

	// Paid 0 <= 2m: pay until more than two minutes are paid: 3
	// payments (3 minutes).
	h.eventually(func() bool { return h.view(id).Payments == 3 },
		"three payments fill the buffer")
	require.Equal(t, start.Add(3*time.Minute).Format(time.RFC3339),
		h.view(id).PaidUntil)
	require.Len(t, h.router.Payments(), 3)

	// Idle: the only pending wake-up is when the buffer drops to 2m.
	h.eventually(func() bool {
		return h.clock.NextWake().Equal(start.Add(time.Minute))
	}, "one timer for the next payment")

	h.clock.Advance(time.Minute)
	h.eventually(func() bool { return h.view(id).Payments == 4 },
		"one more payment when remaining time reaches the buffer")
	// Payments run concurrently, so lnd may see them in any order.
	require.ElementsMatch(t, []uint64{1, 2, 3, 4},
		sequences(t, h.router.Payments()))

	// Every payment is a keysend with our hash and preimage record.
	for _, p := range h.router.Payments() {
		pre, err := lntypes.MakePreimage(p.Req.CustomRecords[record.KeySendType])
		require.NoError(t, err)
		require.Equal(t, pre.Hash(), *p.Req.PaymentHash)
		require.False(t, p.Req.KeySend)
		require.EqualValues(t, 60, p.Req.Amount)
		require.NotZero(t, p.Req.MaxFeeMsat)
		require.NotZero(t, p.Req.Timeout)
	}
}

func TestThousandsIdleCostOneTimer(t *testing.T) {
	h := newHarness(t, nil)
	h.run()
	for i := 0; i < 1000; i++ {
		h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
			Increment: dur(10 * time.Minute),
			Buffer:    dur(0),
		})
	}
	h.eventually(func() bool { return len(h.router.Payments()) == 1000 },
		"one payment each")
	// All are paid 10 minutes ahead; the scheduler waits on one timer.
	h.eventually(func() bool {
		return h.clock.NextWake().Equal(start.Add(10 * time.Minute))
	}, "single timer at the earliest due time")
}

func TestCapsNeverPassedWithPaymentsInFlight(t *testing.T) {
	tests := []struct {
		name      string
		perDay    uint64
		total     uint64
		wantPaid  int
		wantState string
	}{
		// Each payment is 60,000 msat + 600 fee limit = 60,600.
		{"total cap", 0, 3*60_600 + 60_599, 3, StateCapReached},
		{"daily cap", 2 * 60_600, 0, 2, StateCapReached},
		{"exact fit", 0, 4 * 60_600, 4, StateCapReached},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *EngineConfig) {
				c.MaxInFlightPerSub = 10
			})
			// Hold every payment: all are in flight at once.
			h.router.SetDecide(func(lndclient.SendPaymentRequest) sendertest.Outcome {
				return sendertest.Outcome{Hold: true}
			})
			h.run()
			req := TermsRequest{
				Increment: dur(time.Minute),
				Buffer:    dur(50 * time.Minute),
				MaxPerDay: msat(tc.perDay), MaxTotal: msat(tc.total),
			}
			if tc.perDay == 0 {
				req.MaxPerDay = msat(0)
			}
			id := h.add(testOffer(t, 1000, time.Hour, false), req)
			h.eventually(func() bool {
				return h.view(id).State == tc.wantState
			}, "cap reached")
			// Every created attempt reaches lnd; no more are made.
			h.eventually(func() bool {
				return len(h.router.Held()) == tc.wantPaid &&
					h.idleHeld()
			}, "attempts in flight")
			held := h.router.Held()
			require.Len(t, held, tc.wantPaid)
			require.EqualValues(t, tc.wantPaid, h.view(id).NextSeq-1)

			// Fees up to the limit: still within the cap.
			for _, hash := range held {
				h.router.Resolve(hash, sendertest.Succeed(600))
			}
			h.eventually(func() bool {
				return h.view(id).Payments == uint64(tc.wantPaid)
			}, "payments booked")
			v := h.view(id)
			spent := v.SentMsat + v.FeesMsat
			if tc.total != 0 {
				require.LessOrEqual(t, spent, tc.total)
			}
			if tc.perDay != 0 {
				require.LessOrEqual(t, spent, tc.perDay)
			}
			require.Zero(t, v.ReservedMsat)
			require.Equal(t, tc.wantState, v.State)
		})
	}
}

func TestDailyCapResumesNextDay(t *testing.T) {
	h := newHarness(t, nil)
	h.run()
	id := h.add(testOffer(t, 1000, 2*time.Hour, false), TermsRequest{
		Increment: dur(time.Hour), Buffer: dur(0),
		MaxPerDay: msat(3_700_000),
	})
	// 3,600,000 + 36,000 fee limit fits once a day.
	h.eventually(func() bool { return h.view(id).Payments == 1 }, "paid")
	h.clock.Advance(time.Hour)
	h.eventually(func() bool {
		return h.view(id).State == StateCapReached
	}, "daily cap")
	require.Contains(t, h.view(id).Reason, "daily cap")
	require.Equal(t, "2030-01-02T00:00:00Z", h.view(id).CapResumesAt)

	h.clock.Advance(11 * time.Hour)
	h.eventually(func() bool { return h.view(id).Payments == 2 },
		"pays again on the new day")
	require.Equal(t, StateActive, h.view(id).State)
}

func TestRestartTracksOpenAttemptsFirst(t *testing.T) {
	h := newHarness(t, func(c *EngineConfig) { c.MaxInFlightPerSub = 3 })
	h.router.SetDecide(func(lndclient.SendPaymentRequest) sendertest.Outcome {
		return sendertest.Outcome{Hold: true}
	})
	h.run()
	id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(10 * time.Minute),
	})
	h.eventually(func() bool { return len(h.router.Held()) == 3 },
		"three in flight")
	held := h.router.Held()

	// Crash. Meanwhile lnd settles one, fails one (no route), and one
	// never reached lnd.
	h.stop()
	h.router.Resolve(held[0], sendertest.Succeed(5))
	h.router.Resolve(held[1], noRoute)
	h.router.Forget(held[2])

	var mu sync.Mutex
	var sentAfterRestart []uint64
	h.router.SetDecide(func(req lndclient.SendPaymentRequest) sendertest.Outcome {
		recs, err := tlv.Decode(req.CustomRecords)
		require.NoError(t, err)
		mu.Lock()
		sentAfterRestart = append(sentAfterRestart, recs.Sequence)
		mu.Unlock()
		return sendertest.Succeed(5)
	})
	h.load()
	h.run()

	// The payment that never reached lnd goes out first, with its own
	// sequence and hash; the settled one is booked without resending.
	h.eventually(func() bool {
		return h.view(id).Payments >= 2 && h.view(id).State == StateWaiting
	}, "recovered")
	// The attempt lnd never saw went out under its stored hash.
	mu.Lock()
	require.NotEmpty(t, sentAfterRestart)
	mu.Unlock()
	var resent bool
	for _, p := range h.router.Payments() {
		resent = resent || *p.Req.PaymentHash == held[2]
	}
	require.True(t, resent, "the forgotten attempt kept its hash")
	require.Equal(t, StateWaiting, h.view(id).State)
	require.Contains(t, h.view(id).Waiting, "receiver offline")

	// After the backoff the failed one is retried with the same hash.
	h.clock.Advance(h.cfg.BackoffInitial * 2)
	h.eventually(func() bool {
		v := h.view(id)
		return v.Payments >= 3 && v.State == StateActive &&
			v.InFlight == 0 && h.idle()
	}, "retry succeeded")

	seen := map[lntypes.Hash]bool{}
	for _, p := range h.router.Payments() {
		require.False(t, seen[*p.Req.PaymentHash])
		seen[*p.Req.PaymentHash] = true
		require.Equal(t, lnrpc.Payment_SUCCEEDED, p.Status.State)
	}
	for _, p := range h.router.Payments() {
		if *p.Req.PaymentHash == held[1] {
			require.GreaterOrEqual(t, p.Sends, 2, "same hash resent")
		}
	}
	seqs := sequences(t, h.router.Payments())
	uniq := map[uint64]bool{}
	for _, s := range seqs {
		require.False(t, uniq[s], "sequence %d paid twice", s)
		uniq[s] = true
	}
	h.eventually(func() bool {
		return h.view(id).Payments == uint64(len(h.router.Payments()))
	}, "ledger matches lnd")
}

func TestRefusedStopsAfterLimit(t *testing.T) {
	h := newHarness(t, func(c *EngineConfig) {
		c.RefusalLimit = 3
		c.MaxInFlightPerSub = 1
	})
	h.router.SetDecide(func(lndclient.SendPaymentRequest) sendertest.Outcome {
		return refusal
	})
	h.run()
	id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(time.Minute),
	})
	h.drive(func() bool { return h.view(id).State == StateRefused },
		"refused")
	require.Len(t, h.router.Payments(), 3)
	require.Contains(t, h.view(id).Reason, "incorrect_payment_details")
	require.Zero(t, h.view(id).ReservedMsat)
	// Sequences are never reused after a refusal.
	require.Equal(t, []uint64{1, 2, 3}, sequences(t, h.router.Payments()))
}

func TestOfflineBackoffRecoversWithoutBurst(t *testing.T) {
	h := newHarness(t, func(c *EngineConfig) {
		c.BackoffInitial = time.Second
		c.BackoffMax = time.Minute
	})
	var mu sync.Mutex
	offline := true
	h.router.SetDecide(func(lndclient.SendPaymentRequest) sendertest.Outcome {
		mu.Lock()
		defer mu.Unlock()
		if offline {
			return noRoute
		}
		return sendertest.Succeed(0)
	})
	h.run()
	id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(2 * time.Minute),
	})
	h.eventually(func() bool { return h.view(id).State == StateWaiting },
		"waiting")
	require.Contains(t, h.view(id).Waiting, "receiver offline (no_route) since")

	// An hour offline: retries back off (at most a minute apart), and
	// only the one attempt is retried.
	for i := 0; i < 60; i++ {
		h.clock.Advance(time.Minute)
		h.eventually(func() bool {
			return !h.clock.NextWake().IsZero()
		}, "scheduler waits")
	}
	// The attempts made to fill the buffer before the first failure
	// are retried with their own hashes; nothing new is created.
	ps := h.router.Payments()
	require.NotEmpty(t, ps)
	require.LessOrEqual(t, len(ps), 3, "at most what the buffer needs")
	for _, p := range ps {
		require.Greater(t, p.Sends, 5)
		require.Less(t, p.Sends, 200, "backoff, not a busy loop")
	}

	h.eventually(h.idle, "idle")
	mu.Lock()
	offline = false
	mu.Unlock()
	// Once nothing runs, one step past the longest backoff (1.5 x max)
	// retries all three together.
	h.eventually(h.idle, "idle")
	h.clock.Advance(2 * time.Minute)
	h.eventually(func() bool {
		v := h.view(id)
		return v.State == StateActive && v.Payments >= 3 &&
			v.InFlight == 0
	}, "recovered")
	// Exactly what the buffer needs (3 minutes ahead), no catch-up for
	// the hour offline.
	require.Len(t, h.router.Payments(), 3)
	require.Equal(t, uint64(len(h.router.Payments())), h.view(id).Payments)
}

func TestOwnLndDownThenUp(t *testing.T) {
	h := newHarness(t, nil)
	h.router.SetDown(errors.New("connection refused"))
	h.run()
	id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(0),
	})
	h.eventually(func() bool { return h.view(id).State == StateWaiting },
		"waiting")
	require.Contains(t, h.view(id).Waiting, "own lnd unreachable")
	h.router.SetDown(nil)
	h.clock.Advance(10 * time.Second)
	h.eventually(func() bool { return h.view(id).Payments == 1 }, "paid")
	require.Equal(t, StateActive, h.view(id).State)
}

func TestPauseResumeCancel(t *testing.T) {
	h := newHarness(t, nil)
	h.router.SetDecide(func(req lndclient.SendPaymentRequest) sendertest.Outcome {
		if _, ok := req.CustomRecords[tlv.TypeCancel]; ok {
			return refusal // the receiver's acknowledgement
		}
		return sendertest.Succeed(1)
	})
	h.run()
	ctx := context.Background()
	id := h.add(testOffer(t, 1000, time.Hour, true), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(0),
	})
	h.eventually(func() bool { return h.view(id).Payments == 1 }, "paid")

	_, err := h.eng.Apply(ctx, id, OpPause, false)
	require.NoError(t, err)
	h.clock.Advance(time.Hour)
	require.Len(t, h.router.Payments(), 1, "paused pays nothing")

	_, err = h.eng.Apply(ctx, id, OpResume, false)
	require.NoError(t, err)
	h.eventually(func() bool { return h.view(id).Payments == 2 }, "resumed")

	_, err = h.eng.Apply(ctx, id, OpCancel, true)
	require.NoError(t, err)
	h.eventually(func() bool { return !h.view(id).CancelPending }, "acked")
	v := h.view(id)
	require.Equal(t, StateCancelled, v.State)
	require.Contains(t, v.Reason, "receiver acknowledged")
	ps := h.router.Payments()
	require.Len(t, ps, 3)
	last, err := tlv.Decode(ps[2].Req.CustomRecords)
	require.NoError(t, err)
	require.True(t, last.Cancel)
	require.NotNil(t, last.PlanID, "open enrolment sends the plan id")
	require.EqualValues(t, 1, ps[2].Req.Amount)

	_, err = h.eng.Apply(ctx, id, OpResume, false)
	require.ErrorIs(t, err, ErrBadState)
	_, err = h.eng.Apply(ctx, store.SubID{1}, OpPause, false)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestFailureClassification(t *testing.T) {
	tests := []struct {
		reason    lnrpc.PaymentFailureReason
		err       error
		transient bool
		waiting   string
	}{
		{lnrpc.PaymentFailureReason_FAILURE_REASON_NO_ROUTE, nil, true,
			"receiver offline (no_route)"},
		{lnrpc.PaymentFailureReason_FAILURE_REASON_TIMEOUT, nil, true,
			"receiver offline (timeout)"},
		{lnrpc.PaymentFailureReason_FAILURE_REASON_INSUFFICIENT_BALANCE,
			nil, true, "insufficient balance"},
		{lnrpc.PaymentFailureReason_FAILURE_REASON_ERROR, nil, true,
			"payment failed (error)"},
		{lnrpc.PaymentFailureReason_FAILURE_REASON_INCORRECT_PAYMENT_DETAILS,
			nil, false, "payment failed (incorrect_payment_details)"},
		{0, errors.New("rpc error: Unavailable"), true,
			"own lnd unreachable: rpc error: Unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.waiting, func(t *testing.T) {
			require.Equal(t, tc.transient, tc.err != nil || transient(tc.reason))
			require.Equal(t, tc.waiting, waitingReason(
				lndclient.PaymentStatus{FailureReason: tc.reason}, tc.err))
		})
	}
}

func TestAddRejectsBadInput(t *testing.T) {
	h := newHarness(t, nil)
	_, err := h.eng.Add(context.Background(), "satoffer1bogus", TermsRequest{}, false)
	require.ErrorIs(t, err, tlv.ErrBadOffer)
	offer := testOffer(t, 1000, time.Hour, false)
	_, err = h.eng.Add(context.Background(), offer, TermsRequest{Preset: "boat"}, false)
	require.ErrorIs(t, err, ErrBadTerms)
	require.Contains(t, err.Error(), `"boat"`)
	_, err = h.eng.Add(context.Background(), offer, TermsRequest{}, false)
	require.NoError(t, err)
	_, err = h.eng.Add(context.Background(), offer, TermsRequest{}, false)
	require.ErrorIs(t, err, ErrExists)
}
