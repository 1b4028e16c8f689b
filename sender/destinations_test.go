package sender

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/satstream/satstream/sender/sendertest"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

// clusterRouter is the fake router in front of a provider with several
// nodes: a node marked down answers NO_ROUTE to payments and
// ErrUnreachable to route queries; with feeTrouble set, every node is
// reachable but only above the payment's fee limit.
type clusterRouter struct {
	*sendertest.Router

	mu         sync.Mutex
	down       map[route.Vertex]bool
	feeTrouble bool
}

func newClusterRouter(h *harness) *clusterRouter {
	c := &clusterRouter{Router: h.router, down: map[route.Vertex]bool{}}
	h.router.SetDecide(func(req lndclient.SendPaymentRequest) sendertest.Outcome {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.down[req.Target] || c.feeTrouble {
			return noRoute
		}
		return sendertest.Succeed(10)
	})
	return c
}

// setDown marks node down (or up).
func (c *clusterRouter) setDown(node route.Vertex, down bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down[node] = down
}

func (c *clusterRouter) RouteFee(_ context.Context, dest route.Vertex,
	_, feeLimit lnwire.MilliSatoshi) (lnwire.MilliSatoshi, error) {

	c.mu.Lock()
	defer c.mu.Unlock()
	var fee lnwire.MilliSatoshi
	switch {
	case c.down[dest]:
		return 0, ErrUnreachable
	case c.feeTrouble:
		fee = 1_000_000
	}
	if fee > feeLimit {
		return 0, ErrUnreachable
	}
	return fee, nil
}

// runCluster runs h's engine with router c.
func runCluster(h *harness, c *clusterRouter) {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go func() {
		defer close(h.done)
		_ = h.eng.Run(ctx, c)
	}()
	h.t.Cleanup(h.stop)
	h.eventually(func() bool {
		h.eng.mu.Lock()
		defer h.eng.mu.Unlock()
		return h.eng.router != nil
	}, "engine running")
}

// clusterOffer makes a personal offer of a provider with the given nodes
// (the first is node_id), 1 sat/s.
func clusterOffer(t *testing.T, nodes ...route.Vertex) string {
	t.Helper()

	s, err := tlv.NewSubscriptionID()
	require.NoError(t, err)
	o := &tlv.Offer{
		Node:             nodes[0],
		SubscriptionID:   &s,
		PriceMsatPerSec:  1000,
		MinPayment:       1000,
		DefaultIncrement: time.Minute,
		GracePeriod:      time.Minute,
		MaxPrepay:        time.Hour,
	}
	if len(nodes) > 1 {
		o.ExtraNodes = nodes[1:]
	}
	require.NoError(t, o.Validate())

	return o.String()
}

// randomNode returns a fresh node key.
func randomNode(t *testing.T) route.Vertex {
	t.Helper()

	key, err := btcec.NewPrivateKey()
	require.NoError(t, err)

	return route.NewVertex(key.PubKey())
}

// sendsTo counts the sends to node over all payments the router knows, by
// the request of each hash's last send.
func sendsTo(ps []sendertest.Payment, node route.Vertex) int {
	n := 0
	for _, p := range ps {
		if p.Req.Target == node {
			n++
		}
	}
	return n
}

// storedAttempt reads attempt seq of sub id from the store.
func storedAttempt(t *testing.T, h *harness, id store.SubID,
	seq uint64) *store.Attempt {

	t.Helper()
	var a *store.Attempt
	require.NoError(t, h.db.Sender().View(context.Background(),
		func(tx store.SenderTx) error {
			var err error
			a, err = tx.Attempt(id, seq)
			return err
		}))
	return a
}

// TestUnreachablePrimaryStopsStreamDespiteOtherNode reproduces a payer
// who waits for ever while the provider's primary node is down although
// the offer lists another node that works: the sender fails over to it
// with the same hash once lnd reported the payment FAILED, stays there
// (sticky) for the following payments, and shows and stores the node it
// pays. After primaryRetryAfter it tries the primary again.
func TestUnreachablePrimaryStopsStreamDespiteOtherNode(t *testing.T) {
	primary, second := randomNode(t), randomNode(t)
	h := newHarness(t, nil)
	c := newClusterRouter(h)
	c.setDown(primary, true)
	runCluster(h, c)

	id := h.add(clusterOffer(t, primary, second), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(2 * time.Minute),
	})
	h.drive(func() bool { return h.view(id).Payments >= 8 },
		"payments flow through the second node")
	h.eventually(h.idle, "idle")

	// Sequence 1 was sent to the primary, failed there (final), and its
	// one hash was sent again to the second node: no sequence got a
	// second hash, and nothing settled at the primary. Only attempts
	// made before the failover (at most MaxInFlightPerSub) ever tried the
	// primary; the later ones went straight to the node that works.
	first := storedAttempt(t, h, id, 1)
	seqs := map[uint64]bool{}
	for _, p := range h.router.Payments() {
		recs, err := tlv.Decode(p.Req.CustomRecords)
		require.NoError(t, err)
		require.False(t, seqs[recs.Sequence], "seq %d has two hashes",
			recs.Sequence)
		seqs[recs.Sequence] = true
		require.Equal(t, second, p.Req.Target)
		require.Equal(t, lnrpc.Payment_SUCCEEDED, p.Status.State)
		require.LessOrEqual(t, p.Sends, 2, "primary, then second")
		if *p.Req.PaymentHash == lntypes.Hash(first.Hash) {
			require.Equal(t, 2, p.Sends, "primary, then second")
		}
		if recs.Sequence > uint64(h.cfg.MaxInFlightPerSub) {
			require.Equal(t, 1, p.Sends, "sticky: seq %d went "+
				"straight to the node that works",
				recs.Sequence)
		}
	}
	require.Equal(t, [33]byte(second), first.Destination)
	require.Equal(t, second.String(), h.view(id).PayingNode)
	require.Equal(t, []string{primary.String(), second.String()},
		h.view(id).Nodes)

	pays, err := h.eng.Payments(context.Background(), id, 0, 10)
	require.NoError(t, err)
	for _, p := range pays.Payments {
		require.Equal(t, second.String(), p.Node)
	}

	// The primary comes back; after primaryRetryAfter new payments go
	// there again.
	c.setDown(primary, false)
	h.clock.Advance(primaryRetryAfter)
	h.drive(func() bool {
		return sendsTo(h.router.Payments(), primary) > 0 &&
			h.view(id).PayingNode == primary.String()
	}, "back on the primary")
	h.eventually(h.idle, "idle")
	target := map[string]route.Vertex{}
	for _, p := range h.router.Payments() {
		require.LessOrEqual(t, p.Sends, 2)
		target[p.Req.PaymentHash.String()] = p.Req.Target
	}
	pays, err = h.eng.Payments(context.Background(), id, 0, 1000)
	require.NoError(t, err)
	for _, p := range pays.Payments {
		require.Equal(t, target[p.Hash].String(), p.Node,
			"seq %d", p.Sequence)
	}
}

// TestFailoverResendsPaymentStillInFlight reproduces a payment paid twice:
// lnd's status stream of a payment to the primary broke while the payment
// was still in flight, and a sender that failed over on any trouble would
// send the sequence to the second node too. The sender must keep
// following the payment and fail over only once lnd reports it FAILED.
func TestFailoverResendsPaymentStillInFlight(t *testing.T) {
	primary, second := randomNode(t), randomNode(t)
	h := newHarness(t, nil)
	c := newClusterRouter(h)
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
	h.eventually(func() bool { return len(h.router.Held()) == 1 },
		"first payment held at the primary")
	hash := h.router.Held()[0]

	// The stream breaks (lnd connection lost) while the HTLC is in
	// flight; lnd stays down for a while. Time passes: retries come.
	c.setDown(primary, true)
	for i := 0; i < 4; i++ {
		h.router.BreakStreams(hash, errors.New("connection lost"))
		h.drive(func() bool {
			return h.router.Tracks(hash) > i
		}, "the retry tracks the payment")
		require.Equal(t, 0, sendsTo(h.router.Payments(), second),
			"nothing is sent to the second node while the "+
				"payment may be in flight")
		require.Equal(t, 1, h.router.Payments()[0].Sends)
	}
	require.Equal(t, uint64(0), h.view(id).Payments)

	// lnd fails it for good (NO_ROUTE after the channel went): now the
	// same hash goes to the second node, once.
	h.router.Resolve(hash, noRoute)
	h.drive(func() bool { return h.view(id).Payments == 1 },
		"paid through the second node")
	ps := h.router.Payments()
	require.Len(t, ps, 1)
	require.Equal(t, hash, *ps[0].Req.PaymentHash)
	require.Equal(t, second, ps[0].Req.Target)
	require.Equal(t, 2, ps[0].Sends)
}

// TestFeeLimitNoRouteDoesNotFailOver reproduces a failover that cannot
// help: NO_ROUTE because every route costs more than the fee limit is the
// payer's terms, not the node; the sender stays on the primary and says so.
func TestFeeLimitNoRouteDoesNotFailOver(t *testing.T) {
	primary, second := randomNode(t), randomNode(t)
	h := newHarness(t, nil)
	c := newClusterRouter(h)
	runCluster(h, c)
	id := h.add(clusterOffer(t, primary, second), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(0),
	})
	h.eventually(func() bool { return h.view(id).Payments == 1 },
		"first payment")
	c.mu.Lock()
	c.feeTrouble = true
	c.mu.Unlock()
	h.clock.Advance(time.Minute)
	h.drive(func() bool {
		p, _ := h.eng.Payments(context.Background(), id, 0, 10)
		return p != nil && len(p.Payments) == 2 &&
			p.Payments[1].Tries >= 3
	}, "second payment retried three times")
	require.Equal(t, 0, sendsTo(h.router.Payments(), second))
	require.Equal(t, primary.String(), h.view(id).PayingNode)
	require.Contains(t, h.view(id).Waiting, "fee limit")
}

// TestSingleNodeOfferPaysPrimaryAfterNoRoute pins the old behaviour for
// offers with one node: a NO_ROUTE is retried on the same node with the
// same hash; there is nowhere to fail over to.
func TestSingleNodeOfferPaysPrimaryAfterNoRoute(t *testing.T) {
	node := randomNode(t)
	h := newHarness(t, nil)
	c := newClusterRouter(h)
	c.setDown(node, true)
	runCluster(h, c)
	id := h.add(clusterOffer(t, node), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(0),
	})
	h.drive(func() bool {
		p, _ := h.eng.Payments(context.Background(), id, 0, 10)
		return p != nil && len(p.Payments) == 1 &&
			p.Payments[0].Tries >= 2
	}, "retried")
	c.setDown(node, false)
	h.drive(func() bool { return h.view(id).Payments == 1 }, "paid")
	ps := h.router.Payments()
	require.Len(t, ps, 1)
	require.Equal(t, node, ps[0].Req.Target)
	require.Equal(t, node.String(), h.view(id).PayingNode)
	require.Equal(t, [33]byte(node), storedAttempt(t, h, id, 1).Destination)
}

// TestSubscribeRefusedForFeeAtPrimaryWhileOtherNodeRoutes reproduces a
// multi-node offer refused at subscribe because the primary's route costs
// more than the fee limit although another node of the offer routes within
// it; terms are refused only when no node routes within the limit.
func TestSubscribeRefusedForFeeAtPrimaryWhileOtherNodeRoutes(t *testing.T) {
	primary, second := randomNode(t), randomNode(t)
	h := newHarness(t, nil)
	c := &feeRouter{Router: h.router, fee: map[route.Vertex]lnwire.MilliSatoshi{
		primary: 1_000_000, second: 0,
	}}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go func() {
		defer close(h.done)
		_ = h.eng.Run(ctx, c)
	}()
	t.Cleanup(h.stop)
	h.eventually(func() bool {
		h.eng.mu.Lock()
		defer h.eng.mu.Unlock()
		return h.eng.router != nil
	}, "engine running")

	req := TermsRequest{Increment: dur(time.Minute)}
	_, err := h.eng.Add(context.Background(),
		clusterOffer(t, primary, second), req, false)
	require.NoError(t, err)

	_, err = h.eng.Add(context.Background(), clusterOffer(t, primary),
		req, false)
	require.ErrorIs(t, err, ErrFeeLimitBelowRoute)
}

// feeRouter answers route queries with a fixed fee per node.
type feeRouter struct {
	*sendertest.Router
	fee map[route.Vertex]lnwire.MilliSatoshi
}

func (f *feeRouter) RouteFee(_ context.Context, dest route.Vertex,
	_, feeLimit lnwire.MilliSatoshi) (lnwire.MilliSatoshi, error) {

	if f.fee[dest] > feeLimit {
		return 0, ErrUnreachable
	}
	return f.fee[dest], nil
}

// TestRestartSendsOpenAttemptToPrimaryAfterFailover reproduces a restart
// that forgot where an open attempt was going: the attempt had failed over
// to the second node, lnd never got it (a crash before it stored the
// send), and after the restart (which starts new payments at the primary
// again) it went to the primary. The stored destination is kept: the
// attempt goes out to the second node, under its hash.
func TestRestartSendsOpenAttemptToPrimaryAfterFailover(t *testing.T) {
	primary, second := randomNode(t), randomNode(t)
	h := newHarness(t, func(c *EngineConfig) { c.MaxInFlightPerSub = 1 })
	c := newClusterRouter(h)
	c.setDown(primary, true)
	h.router.SetDecide(func(req lndclient.SendPaymentRequest) sendertest.Outcome {
		if req.Target == primary {
			return noRoute
		}
		return sendertest.Outcome{Hold: true}
	})
	runCluster(h, c)
	id := h.add(clusterOffer(t, primary, second), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(0),
	})
	h.drive(func() bool { return len(h.router.Held()) == 1 },
		"first payment held at the second node")
	hash := h.router.Held()[0]

	// Crash; lnd lost the send. The primary is back up, but the
	// attempt's stored node is the second.
	h.stop()
	h.router.Forget(hash)
	c.setDown(primary, false)
	h.router.SetDecide(func(lndclient.SendPaymentRequest) sendertest.Outcome {
		return sendertest.Succeed(10)
	})
	h.load()
	runCluster(h, c)
	h.drive(func() bool { return h.view(id).Payments >= 1 },
		"the open attempt is paid")
	var found bool
	for _, p := range h.router.Payments() {
		if *p.Req.PaymentHash == hash {
			found = true
			require.Equal(t, second, p.Req.Target)
		}
	}
	require.True(t, found)
	require.Equal(t, [33]byte(second), storedAttempt(t, h, id, 1).Destination)
}
