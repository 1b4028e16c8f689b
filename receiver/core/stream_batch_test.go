package core_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/invoices"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/satstream/satstream/receiver/core"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// countingStore counts durable steps (Updates).
type countingStore struct {
	store.ReceiverStore
	updates atomic.Int64
}

func (c *countingStore) Update(ctx context.Context,
	fn func(store.ReceiverTx) error) error {

	c.updates.Add(1)
	return c.ReceiverStore.Update(ctx, fn)
}

// TestStreamWaitsForAnFsyncPerEvent reproduces the stream reader
// serialised behind fsyncs (issue 13, item 6): the one goroutine reading
// lnd's invoice stream committed, and waited for the fsync of, every add
// and every settle event on its own, so at most one stream event per fsync
// got through and followers of later payments started only after earlier
// payments' fsyncs. Events that are already waiting must be recorded
// together, in order, in one step.
func TestStreamWaitsForAnFsyncPerEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cs := &countingStore{ReceiverStore: e.db}
	lnd := rt.NewFakeLnd()
	lnd.HoldSettleEvents()

	ctx, cancel := context.WithCancel(context.Background())
	p := core.NewPipeline(core.PipelineConfig{
		Store: cs, Source: lnd, Log: testLog,
		Now: func() time.Time { return t0 },
	})
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()

	const n = 30 // 100 s each: within the plan's hour of prepayment
	var hashes []lntypes.Hash
	for seq := uint64(1); seq <= n; seq++ {
		hashes = append(hashes, lnd.Keysend(1000,
			rt.Records(t, e.sub, seq, nil, false)))
	}
	for _, h := range hashes {
		waitState(t, lnd, h, invoices.ContractSettled)
	}
	// Every follower has recorded its settle and ended.
	require.Eventually(t, func() bool {
		held := 0
		_ = e.db.View(ctx, func(tx store.ReceiverTx) error {
			return tx.ForEachHeld(func(store.Hash) error {
				held++
				return nil
			})
		})
		return held == 0
	}, 10*time.Second, 5*time.Millisecond)

	before := cs.updates.Load()
	lnd.ReleaseSettleEvents()
	require.Eventually(t, func() bool {
		var idx uint64
		_ = e.db.View(ctx, func(tx store.ReceiverTx) error {
			var err error
			idx, err = tx.SettleIndex()
			return err
		})
		return idx == n
	}, 10*time.Second, 5*time.Millisecond)

	steps := cs.updates.Load() - before
	require.LessOrEqual(t, steps, int64(n/5), "the stream recorded %d "+
		"queued settle events in %d durable steps", n, steps)
}

// smallTxnStore refuses, like badger with a small memtable, a step that
// moves the settle index more than limit times: ErrTooBig, nothing written.
type smallTxnStore struct {
	store.ReceiverStore
	limit int
}

type countingTx struct {
	store.ReceiverTx
	sets *int
}

func (c countingTx) SetSettleIndex(idx uint64) error {
	*c.sets++
	return c.ReceiverTx.SetSettleIndex(idx)
}

func (s *smallTxnStore) Update(ctx context.Context,
	fn func(store.ReceiverTx) error) error {

	return s.ReceiverStore.Update(ctx, func(tx store.ReceiverTx) error {
		sets := 0
		if err := fn(countingTx{ReceiverTx: tx, sets: &sets}); err != nil {
			return err
		}
		if sets > s.limit {
			return store.ErrTooBig
		}
		return nil
	})
}

// TestStreamBatchTooBigStallsForGood reproduces a batch of queued stream
// events too big for one badger transaction (a replay backlog on a small
// memtable): the step was refused, Run ended, and the reconnect replayed
// and refused the same batch for ever. The batch must be split and
// recorded in order.
func TestStreamBatchTooBigStallsForGood(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lnd := rt.NewFakeLnd()
	lnd.HoldSettleEvents()

	ctx, cancel := context.WithCancel(context.Background())
	p := core.NewPipeline(core.PipelineConfig{
		Store:  &smallTxnStore{ReceiverStore: e.db, limit: 3},
		Source: lnd, Log: testLog,
		Now: func() time.Time { return t0 },
	})
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()

	const n = 20
	var hashes []lntypes.Hash
	for seq := uint64(1); seq <= n; seq++ {
		hashes = append(hashes, lnd.Keysend(1000,
			rt.Records(t, e.sub, seq, nil, false)))
	}
	for _, h := range hashes {
		waitState(t, lnd, h, invoices.ContractSettled)
	}
	lnd.ReleaseSettleEvents()
	require.Eventually(t, func() bool {
		var idx uint64
		_ = e.db.View(ctx, func(tx store.ReceiverTx) error {
			var err error
			idx, err = tx.SettleIndex()
			return err
		})
		return idx == n
	}, 10*time.Second, 5*time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Run ended: %v", err)
	default:
	}
}
