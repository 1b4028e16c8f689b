package core_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/invoices"
	"github.com/satstream/satstream/receiver/core"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// slowIndexStore makes every step that moves the stored add index return
// late, as a slow fsync would, while it is armed: the step is committed
// (other steps go on), only its caller waits.
type slowIndexStore struct {
	store.ReceiverStore

	mu      sync.Mutex
	armed   bool
	blocked chan struct{} // closed when a step is held
	release chan struct{}
}

type addIndexTx struct {
	store.ReceiverTx
	moved *bool
}

func (t addIndexTx) SetAddIndex(v uint64) error {
	*t.moved = true
	return t.ReceiverTx.SetAddIndex(v)
}

func (s *slowIndexStore) Update(ctx context.Context,
	fn func(tx store.ReceiverTx) error) error {

	moved := false
	err := s.ReceiverStore.Update(ctx, func(tx store.ReceiverTx) error {
		moved = false
		return fn(addIndexTx{tx, &moved})
	})
	s.mu.Lock()
	hold := moved && s.armed
	if hold {
		s.armed = false
		close(s.blocked)
	}
	s.mu.Unlock()
	if hold {
		<-s.release
	}
	return err
}

// TestSlowStreamRecordHoldsBackNextPayment reproduces the invoice stream
// loop waiting for the fsync of an earlier payment's add-index record
// before it read the next payment's add event: the next payment's follower
// (and so its decision and settle) started only after that fsync. The
// stream's events are now recorded beside the loop, in order, so the next
// payment is settled while the earlier record is still on its way to
// disk; each payment is credited once and the add index still moves.
func TestSlowStreamRecordHoldsBackNextPayment(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := &slowIndexStore{ReceiverStore: e.db, armed: true,
		blocked: make(chan struct{}), release: make(chan struct{})}
	lnd := rt.NewFakeLnd()
	ctx, cancel := context.WithCancel(context.Background())
	p := core.NewPipeline(core.PipelineConfig{
		Store: s, Source: lnd, Log: testLog,
		Now: func() time.Time { return t0 },
	})
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(s.release) }) }
	defer func() {
		unblock()
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("pipeline did not stop")
		}
	}()
	require.Eventually(t, func() bool { return lnd.Subscribers() > 0 },
		5*time.Second, 5*time.Millisecond)

	first := lnd.Keysend(2000, rt.Records(t, e.sub, 1, nil, false))
	select {
	case <-s.blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("the first payment's add index was never recorded")
	}

	// The first payment's add-index record is held in its "fsync": the
	// next payment must not wait for it.
	second := lnd.Keysend(2000, rt.Records(t, e.sub, 2, nil, false))
	waitState(t, lnd, second, invoices.ContractSettled)
	waitState(t, lnd, first, invoices.ContractSettled)

	unblock()
	require.Eventually(t, func() bool {
		var add uint64
		_ = e.db.View(context.Background(), func(tx store.ReceiverTx) error {
			var err error
			add, err = tx.AddIndex()
			return err
		})
		sub := e.subscription(t, e.sub)
		return add == 2 && sub.Payments == 2
	}, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, 1, lnd.Settles(first))
	require.Equal(t, 1, lnd.Settles(second))
}
