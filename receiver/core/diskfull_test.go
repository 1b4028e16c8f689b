package core_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/invoices"
	"github.com/satstream/satstream/receiver/core"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// indexFullStore refuses, as the store does below its free-space reserve
// (ErrDiskFull, nothing written), every step that moves the add index
// (addFull) or the settle index (settleFull).
type indexFullStore struct {
	store.ReceiverStore
	addFull, settleFull *atomic.Bool
	refused             *atomic.Int64
}

type indexTx struct {
	store.ReceiverTx
	s       indexFullStore
	refused *bool
}

func (t indexTx) SetAddIndex(v uint64) error {
	if t.s.addFull.Load() {
		*t.refused = true
	}
	return t.ReceiverTx.SetAddIndex(v)
}

func (t indexTx) SetSettleIndex(v uint64) error {
	if t.s.settleFull.Load() {
		*t.refused = true
	}
	return t.ReceiverTx.SetSettleIndex(v)
}

func (s indexFullStore) Update(ctx context.Context,
	fn func(tx store.ReceiverTx) error) error {

	return s.ReceiverStore.Update(ctx, func(tx store.ReceiverTx) error {
		refused := false
		if err := fn(indexTx{tx, s, &refused}); err != nil {
			return err
		}
		if refused {
			s.refused.Add(1)
			return fmt.Errorf("%w: test", store.ErrDiskFull)
		}
		return nil
	})
}

// runFull runs a pipeline over the refusing store; the returned channel
// gets Run's result.
func runFull(t *testing.T, s indexFullStore, lnd *rt.FakeLnd) <-chan error {
	ctx, cancel := context.WithCancel(context.Background())
	p := core.NewPipeline(core.PipelineConfig{
		Store: s, Source: lnd, Log: testLog,
		Now: func() time.Time { return t0 },
	})
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	require.Eventually(t, func() bool { return lnd.Subscribers() > 0 },
		5*time.Second, 5*time.Millisecond)
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return done
}

// TestAddIndexRefusedForDiskFullTearsDownPipeline: a refused add-index
// write (disk full) must not end Run, which would cancel the followers
// (one about to settle a committed credit) and drop the lnd stream.
func TestAddIndexRefusedForDiskFullTearsDownPipeline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lnd := rt.NewFakeLnd()
	var addFull, settleFull atomic.Bool
	var refused atomic.Int64
	addFull.Store(true)
	done := runFull(t, indexFullStore{e.db, &addFull, &settleFull,
		&refused}, lnd)

	h := lnd.Keysend(2000, rt.Records(t, e.sub, 1, nil, false))
	waitState(t, lnd, h, invoices.ContractSettled)
	require.Eventually(t, func() bool {
		s := e.subscription(t, e.sub)
		return s.Payments == 1 && s.TotalSeconds == 200
	}, 5*time.Second, 5*time.Millisecond)
	require.Positive(t, refused.Load())
	select {
	case err := <-done:
		t.Fatalf("Run ended on a refused add index: %v", err)
	default:
	}
}

// TestSettleIndexRefusedForDiskFullTearsDownPipeline: a refused settle
// record (disk full) is retried in place, not skipped and not ending Run;
// once space returns the settle index reaches lnd's.
func TestSettleIndexRefusedForDiskFullTearsDownPipeline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lnd := rt.NewFakeLnd()
	var addFull, settleFull atomic.Bool
	var refused atomic.Int64
	settleFull.Store(true)
	done := runFull(t, indexFullStore{e.db, &addFull, &settleFull,
		&refused}, lnd)

	h := lnd.Keysend(2000, rt.Records(t, e.sub, 1, nil, false))
	waitState(t, lnd, h, invoices.ContractSettled)
	require.Eventually(t, func() bool { return refused.Load() >= 2 },
		5*time.Second, 5*time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Run ended on a refused settle index: %v", err)
	default:
	}

	settleFull.Store(false)
	require.Eventually(t, func() bool {
		var idx uint64
		_ = e.db.View(context.Background(), func(tx store.ReceiverTx) error {
			var err error
			idx, err = tx.SettleIndex()
			return err
		})
		return idx == 1
	}, 10*time.Second, 5*time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Run ended: %v", err)
	default:
	}
}
