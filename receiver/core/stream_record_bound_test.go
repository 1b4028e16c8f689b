package core_test

import (
	"context"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/invoices"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/satstream/satstream/receiver/core"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/stretchr/testify/require"
)

// handStream is a FakeLnd whose invoice stream the test feeds by hand,
// unbuffered, so it sees how many events the pipeline has taken.
type handStream struct {
	*rt.FakeLnd
	ch chan *core.Invoice
}

func (h *handStream) SubscribeInvoices(context.Context, uint64, uint64) (
	<-chan *core.Invoice, <-chan error, error) {

	return h.ch, make(chan error), nil
}

// TestStreamRecorderLagIsBounded: while the invoice stream's records
// cannot be written (an fsync that hangs, a full disk holding back a
// settle record), Run went on reading lnd's stream and queued every event
// in memory, without bound: lnd (and gRPC's flow control) was no longer
// held back, and a long outage or a large replay grew the receiver's
// memory until it was killed. Run must stop reading once a bounded number
// of events wait for their record.
func TestStreamRecorderLagIsBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := &slowIndexStore{ReceiverStore: e.db, armed: true,
		blocked: make(chan struct{}), release: make(chan struct{})}
	src := &handStream{FakeLnd: rt.NewFakeLnd(),
		ch: make(chan *core.Invoice)}
	ctx, cancel := context.WithCancel(context.Background())
	p := core.NewPipeline(core.PipelineConfig{
		Store: s, Source: src, Log: testLog,
		Now: func() time.Time { return t0 },
	})
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		close(s.release)
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("pipeline did not stop")
		}
	}()

	// Plain invoices (not keysend): only the add index moves.
	taken := 0
	send := func(i int) bool {
		inv := &core.Invoice{Hash: lntypes.Hash{byte(i), byte(i >> 8)},
			State: invoices.ContractOpen, AddIndex: uint64(i + 1)}
		select {
		case src.ch <- inv:
			taken++
			return true
		case <-time.After(200 * time.Millisecond):
			return false
		}
	}
	require.True(t, send(0))
	select {
	case <-s.blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("the first record never started")
	}
	// The first record hangs in its fsync; lnd keeps sending.
	for i := 1; i < 20_000 && send(i); i++ {
	}
	require.Less(t, taken, 5_000, "Run read %d events while none could "+
		"be recorded", taken)
}
