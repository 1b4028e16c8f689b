package sender

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/satstream/satstream/sender/sendertest"
	"github.com/stretchr/testify/require"
)

// TestHoldExpiryAtPrimaryNeverFailsOver: a node whose receiver daemon is down behind a running lnd (the
// common per-node failure of a cluster: each node has its own receiver)
// holds every keysend until --keysend-hold-time and fails it. The sender
// judges it "receiver unavailable", closes it and pays a fresh sequence...
// to the same node, for ever, although the offer lists a node whose
// receiver is up. Failing over here is safe: the expired attempt is closed
// (FAILED in lnd) and the next one has a new sequence and hash.
func TestHoldExpiryAtPrimaryNeverFailsOver(t *testing.T) {
	primary, second := randomNode(t), randomNode(t)
	h := newHarness(t, func(c *EngineConfig) { c.MaxInFlightPerSub = 1 })
	c := newClusterRouter(h)
	h.router.SetClock(h.clock)
	h.router.SetDecide(func(req lndclient.SendPaymentRequest) sendertest.Outcome {
		if req.Target == primary {
			return sendertest.Outcome{Hold: true}
		}
		return sendertest.Succeed(10)
	})
	runCluster(h, c)
	id := h.add(clusterOffer(t, primary, second), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(0),
	})
	for i := 0; i < 5; i++ {
		h.drive(func() bool {
			return len(h.router.Held()) == 1 && h.idleHeld()
		}, "a payment held at the primary")
		h.clock.Advance(holdTime)
		h.router.Resolve(h.router.Held()[0], refusal)
		h.eventually(func() bool {
			return len(h.router.Held()) == 0 && h.idle()
		}, "expired")
		if sendsTo(h.router.Payments(), second) > 0 {
			return
		}
	}
	t.Fatalf("5 hold expiries at the primary, 0 payments to the second "+
		"node; waiting: %q", h.view(id).Waiting)
}

// runWith runs h's engine with router r (a PaymentSender that may also be a
// RouteProber).
func runWith(h *harness, r PaymentSender) {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go func() {
		defer close(h.done)
		_ = h.eng.Run(ctx, r)
	}()
	h.t.Cleanup(h.stop)
	h.eventually(func() bool {
		h.eng.mu.Lock()
		defer h.eng.mu.Unlock()
		return h.eng.router != nil
	}, "engine running")
}

// TestFeeLimitAtPrimaryOnlyNeverFailsOver: checkRoutable accepts a multi-node offer because one node of
// it routes within the fee limit, but the engine always starts at the
// primary and never fails over on a fee-limit NO_ROUTE: the accepted
// subscription never pays, although the second node would take every
// payment within the payer's terms.
func TestFeeLimitAtPrimaryOnlyNeverFailsOver(t *testing.T) {
	primary, second := randomNode(t), randomNode(t)
	h := newHarness(t, nil)
	fr := &feeRouter{Router: h.router, fee: map[route.Vertex]lnwire.MilliSatoshi{
		primary: 1_000_000, second: 0,
	}}
	h.router.SetDecide(func(req lndclient.SendPaymentRequest) sendertest.Outcome {
		if req.Target == primary {
			// Every route to the primary costs more than MaxFee.
			return noRoute
		}
		return sendertest.Succeed(10)
	})
	runWith(h, fr)

	// Accepted: the second node routes within the limit.
	id := h.add(clusterOffer(t, primary, second), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(0),
	})
	h.drive(func() bool { return h.view(id).Payments >= 1 },
		"an accepted subscription pays through the node that routes "+
			"within its fee limit")
}

// TestStaleFailedSkipsNodeNeverTried: failoverBeforeResend attributes lnd's FAILED to the attempt's
// stored destination. After a failover stored node 2 but the send never
// reached lnd (lnd unreachable for a moment, or a crash between the store
// write and the send), TrackPayment still reports the primary's old
// NO_ROUTE; the engine reads it as "node 2 unreachable" (without even
// checking: the probe says node 2 routes) and moves the attempt on, back to
// the dead primary, skipping the node that works.
func TestStaleFailedSkipsNodeNeverTried(t *testing.T) {
	primary, second := randomNode(t), randomNode(t)
	h := newHarness(t, func(c *EngineConfig) { c.MaxInFlightPerSub = 1 })
	c := newClusterRouter(h)
	c.setDown(primary, true)

	var (
		mu      sync.Mutex
		targets []route.Vertex
		failed  bool
	)
	h.router.SetDecide(func(req lndclient.SendPaymentRequest) sendertest.Outcome {
		mu.Lock()
		defer mu.Unlock()
		targets = append(targets, req.Target)
		if req.Target == primary {
			return noRoute
		}
		if !failed {
			// lnd unreachable for this one call: it never saw it.
			failed = true
			return sendertest.Outcome{Err: errors.New("connection lost")}
		}
		return sendertest.Succeed(10)
	})
	runCluster(h, c)
	id := h.add(clusterOffer(t, primary, second), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(0),
	})
	h.drive(func() bool { return h.view(id).Payments >= 1 }, "paid")

	mu.Lock()
	defer mu.Unlock()
	// primary (NO_ROUTE), second (never reached lnd), then second again:
	// nothing ever reported second unreachable.
	require.Equal(t, []route.Vertex{primary, second, second}, targets[:3],
		"after a send to the second node that lnd never saw, the "+
			"primary's old FAILED must not move the attempt off it")
}
