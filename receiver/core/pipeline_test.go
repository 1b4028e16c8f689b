package core_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/lightningnetwork/lnd/invoices"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/satstream/satstream/receiver/core"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

var testLog = btclog.NewSLogger(btclog.NewDefaultHandler(os.Stderr))

// runPipeline runs a pipeline until the returned stop is called.
func runPipeline(t *testing.T, e *env, lnd *rt.FakeLnd,
	hook func(string)) (stop func()) {

	ctx, cancel := context.WithCancel(context.Background())
	p := core.NewPipeline(core.PipelineConfig{
		Store: e.db, Source: lnd, Log: testLog,
		Now: func() time.Time { return t0 }, CrashHook: hook,
	})
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("pipeline did not stop")
		}
	}
}

func waitState(t *testing.T, lnd *rt.FakeLnd, h lntypes.Hash,
	want invoices.ContractState) {

	t.Helper()
	require.Eventually(t, func() bool { return lnd.State(h) == want },
		10*time.Second, 5*time.Millisecond, "invoice %v never %v", h, want)
}

func TestPipelineSettlesAndRefuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lnd := rt.NewFakeLnd()
	stop := runPipeline(t, e, lnd, nil)
	defer stop()

	ok := lnd.Keysend(2000, rt.Records(t, e.sub, 1, nil, false))
	low := lnd.Keysend(10, rt.Records(t, e.sub, 2, nil, false))
	tip := lnd.Keysend(10, map[uint64][]byte{7629171: []byte("hi")})
	waitState(t, lnd, ok, invoices.ContractSettled)
	waitState(t, lnd, low, invoices.ContractCanceled)
	waitState(t, lnd, tip, invoices.ContractSettled)

	// lnd re-reports the settled hash: no second credit.
	lnd.KeysendWithPreimage(lntypes.Preimage{}, 1, nil)
	require.Eventually(t, func() bool {
		s := e.subscription(t, e.sub)
		return s.Payments == 1 && s.TotalSeconds == 200
	}, 5*time.Second, 5*time.Millisecond)
}

// TestPipelineCrashPoints stops the pipeline at each crash point (the hook
// panics out of the decision; the fake lnd keeps the HTLC held) and checks
// that a fresh pipeline credits the payment exactly once.
func TestPipelineCrashPoints(t *testing.T) {
	t.Parallel()
	for _, point := range []string{core.CrashBeforeCredit,
		core.CrashAfterCredit, core.CrashAfterSettle} {

		t.Run(point, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			lnd := rt.NewFakeLnd()
			crashed := make(chan struct{})
			block := func(p string) {
				if p == point {
					close(crashed)
					select {} // the "process" is dead
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			p := core.NewPipeline(core.PipelineConfig{
				Store: e.db, Source: lnd, Log: testLog,
				Now: func() time.Time { return t0 }, CrashHook: block,
			})
			go func() { _ = p.Run(ctx) }()

			h := lnd.Keysend(2000, rt.Records(t, e.sub, 1, nil, false))
			select {
			case <-crashed:
			case <-time.After(10 * time.Second):
				t.Fatal("crash point not reached")
			}

			// A new pipeline on the same ledger and lnd.
			stop := runPipeline(t, e, lnd, nil)
			defer stop()
			waitState(t, lnd, h, invoices.ContractSettled)
			require.Eventually(t, func() bool {
				var held int
				_ = e.db.View(context.Background(), func(tx store.ReceiverTx) error {
					return tx.ForEachHeld(func(store.Hash) error {
						held++
						return nil
					})
				})
				return held == 0
			}, 5*time.Second, 5*time.Millisecond)
			s := e.subscription(t, e.sub)
			require.EqualValues(t, 1, s.Payments)
			require.EqualValues(t, 200, s.TotalSeconds)
			require.Equal(t, 1, lnd.Settles(h))
		})
	}
}

// TestPipelineReversesExpiredHold: credited, then lnd cancels the HTLC
// (hold time over while the receiver was away): the credit is reversed.
func TestPipelineReversesExpiredHold(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lnd := rt.NewFakeLnd()
	crashed := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	p := core.NewPipeline(core.PipelineConfig{
		Store: e.db, Source: lnd, Log: testLog,
		Now: func() time.Time { return t0 },
		CrashHook: func(pt string) {
			if pt == core.CrashAfterCredit {
				close(crashed)
				select {}
			}
		},
	})
	go func() { _ = p.Run(ctx) }()
	h := lnd.Keysend(2000, rt.Records(t, e.sub, 1, nil, false))
	<-crashed
	cancel()
	require.EqualValues(t, 1, e.subscription(t, e.sub).Payments)
	lnd.Expire(h)

	stop := runPipeline(t, e, lnd, nil)
	defer stop()
	require.Eventually(t, func() bool {
		return e.subscription(t, e.sub).Payments == 0
	}, 5*time.Second, 5*time.Millisecond)
	s := e.subscription(t, e.sub)
	require.EqualValues(t, 0, s.TotalPaid)
}

// TestPipelineAutoSettle: lnd without hold time settles by itself; credits
// still happen, what can't be credited is unclaimed.
func TestPipelineAutoSettle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lnd := rt.NewFakeLnd()
	lnd.AutoSettle = true
	stop := runPipeline(t, e, lnd, nil)
	defer stop()
	require.Eventually(t, func() bool { return lnd.Subscribers() == 1 },
		5*time.Second, time.Millisecond)
	good := lnd.Keysend(2000, rt.Records(t, e.sub, 1, nil, false))
	bad := lnd.Keysend(10, rt.Records(t, e.sub, 2, nil, false))
	require.Eventually(t, func() bool {
		var n int
		_ = e.db.View(context.Background(), func(tx store.ReceiverTx) error {
			for _, h := range []lntypes.Hash{good, bad} {
				if _, err := tx.Payment(store.Hash(h)); err == nil {
					n++
				}
			}
			return nil
		})
		return n == 2
	}, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, e.db.View(context.Background(), func(tx store.ReceiverTx) error {
		p, err := tx.Payment(store.Hash(good))
		require.NoError(t, err)
		require.Equal(t, store.PaymentCredited, p.State)
		p, err = tx.Payment(store.Hash(bad))
		require.NoError(t, err)
		require.Equal(t, store.PaymentUnclaimed, p.State, fmt.Sprint(p.Reason))
		return nil
	}))
}
