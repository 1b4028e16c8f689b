package sender

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnrpc"
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

// TestStaleFailedClosesAttemptThatLndThenPays: a FAILED seen right after a send whose call errored is not
// final: lnd's SendPaymentV2 handler may still run PreparePayment (it does
// not watch the caller's context), re-initialise the failed hash and send
// it. The engine guards the "never saw it" answer with neverSawFinal but
// trusts a stale FAILED at once. With failover, the stale FAILED is the
// previous node's: the retry moves the attempt and, if the payer paused
// meanwhile, closes it as failed and releases its reservation; the late
// send to node 2 then settles and is never booked (the receiver credits
// it, the sender's caps and history do not count it).
func TestStaleFailedClosesAttemptThatLndThenPays(t *testing.T) {
	primary, second := randomNode(t), randomNode(t)
	h := newHarness(t, func(c *EngineConfig) { c.MaxInFlightPerSub = 1 })
	c := newClusterRouter(h)
	c.setDown(primary, true)

	var (
		mu   sync.Mutex
		late *lndclient.SendPaymentRequest
	)
	h.router.SetDecide(func(req lndclient.SendPaymentRequest) sendertest.Outcome {
		if req.Target == primary {
			return noRoute
		}
		mu.Lock()
		defer mu.Unlock()
		if late == nil {
			// The call errors for the caller; lnd got it and will
			// store and send it a moment later (Arrive below).
			r := req
			late = &r
			return sendertest.Outcome{Err: errors.New("connection lost")}
		}
		return sendertest.Succeed(10)
	})
	runCluster(h, c)
	id := h.add(clusterOffer(t, primary, second), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(0),
	})
	h.drive(func() bool {
		mu.Lock()
		defer mu.Unlock()
		return late != nil && h.idle()
	}, "send to the second node errored")

	ctx := context.Background()
	_, err := h.eng.Apply(ctx, id, OpPause, false)
	require.NoError(t, err)
	mu.Lock()
	hash := *late.PaymentHash
	mu.Unlock()
	tracked := h.router.Tracks(hash)
	// The retry after the pause tracks the hash: lnd still reports the
	// primary's FAILED, within a payment timeout of the errored send.
	h.drive(func() bool {
		return h.router.Tracks(hash) > tracked && h.idle()
	},
		"retry after pause")
	require.Equal(t, 1, h.view(id).InFlight,
		"attempt closed on a stale FAILED a moment after its send "+
			"errored: %q", storedAttempt(t, h, id, 1).FailureReason)

	// lnd's handler now stores and sends the call it received: settled.
	h.router.Arrive(lateRequest(&mu, &late), sendertest.Succeed(10))
	settled := 0
	for _, p := range h.router.Payments() {
		if p.Status.State == lnrpc.Payment_SUCCEEDED {
			settled++
		}
	}
	require.Equal(t, 1, settled)

	h.drive(func() bool { return h.view(id).InFlight == 0 },
		"the payment lnd made is booked")
	a := storedAttempt(t, h, id, 1)
	require.Equal(t, "succeeded", a.State.String(),
		"attempt closed as failed on a stale FAILED while lnd then "+
			"paid it: %q", a.FailureReason)
}

// lateRequest reads the late request under its lock.
func lateRequest(mu *sync.Mutex, late **lndclient.SendPaymentRequest) lndclient.SendPaymentRequest {
	mu.Lock()
	defer mu.Unlock()
	return **late
}
