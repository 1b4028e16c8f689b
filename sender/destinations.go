package sender

import (
	"context"
	"errors"
	"time"

	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
)

// An offer may list several nodes of one provider (tlv.Offer.Nodes), each
// with a receiver over one shared ledger. The engine pays the first that
// routes and fails over to the next when a node is unreachable, under two
// rules that keep a sequence from being paid twice:
//
//   - an attempt keeps its one hash for life, whichever node it goes to, so
//     lnd itself refuses to have it in flight twice and the receivers'
//     ledger credits the hash at most once;
//   - an attempt moves to another node only after lnd reported its payment
//     FAILED, which is final (nothing of it is in flight), never on a broken
//     status stream, an unreachable own lnd or a payment still in flight.
//
// Only NO_ROUTE to a node lnd can't reach moves an attempt: NO_ROUTE
// because the fee limit is below every route's fee to that node is judged
// by probeNoRoute. A refusal comes from the shared ledger behind every node
// and moves nothing. A hold expiry is different: each node has its own
// receiver daemon, and one that is down behind a running lnd holds every
// keysend until lnd's hold time runs out. That closes the attempt (its
// hash stays FAILED in lnd) and moves new payments to the next node
// (finishUnavailable); the next attempt has a fresh sequence and hash.

// primaryRetryAfter is how long new payments stay on the node a
// subscription failed over to ("sticky") before the offer's primary node is
// tried again: long enough that a node that is down costs one failed try
// per period, short enough that the provider's preferred node gets its load
// back soon after it returns.
const primaryRetryAfter = 10 * time.Minute

// destinations is a subscription's choice among its offer's nodes. It lives
// in memory: each attempt stores its own node, and a restart starts new
// payments at the primary again.
type destinations struct {
	// nodes are the offer's nodes, primary first.
	nodes []route.Vertex
	// cur indexes the node new attempts are sent to.
	cur int
	// leftPrimaryAt is when cur moved off the primary; zero while on it.
	leftPrimaryAt time.Time
}

// newDestinations starts a subscription on its offer's primary node.
func newDestinations(o *tlv.Offer) destinations {
	return destinations{nodes: o.Nodes()}
}

// index returns the position of node in the offer, or -1.
func (d *destinations) index(node route.Vertex) int {
	for i, n := range d.nodes {
		if n == node {
			return i
		}
	}
	return -1
}

// paying is the node new attempts are sent to.
func (d *destinations) paying() route.Vertex {
	return d.nodes[d.cur]
}

// attemptDestination is the node an attempt is sent to: its stored
// destination, or for records older than that field, the primary.
func attemptDestination(r *subRun, a *store.Attempt) route.Vertex {
	if a.Destination == ([33]byte{}) {
		return r.offer.Node
	}
	return route.Vertex(a.Destination)
}

// pickDestination returns the node a new attempt of r is sent to: the
// node it pays now, or the primary again once primaryRetryAfter has passed
// since it failed over.
func (e *Engine) pickDestination(r *subRun) [33]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := &r.dest
	now := e.clock.Now()
	if d.cur != 0 && now.Sub(d.leftPrimaryAt) >= primaryRetryAfter {
		e.payLog.Infof("Subscription %s: trying the primary node %s "+
			"again after %v on %s", r.id, d.nodes[0],
			now.Sub(d.leftPrimaryAt).Round(time.Second),
			d.paying())
		d.cur = 0
		d.leftPrimaryAt = time.Time{}
		e.changed()
	}
	return d.paying()
}

// failoverBeforeResend runs when lnd reported an attempt FAILED and the
// engine is about to send it again under the same hash. If it failed with
// NO_ROUTE to a node lnd can't reach, and the offer lists another node, the
// attempt moves to the next node in the offer's order (after the last, the
// primary again), stored before it is sent, and new payments follow it.
// lnd's FAILED is final, so nothing of the attempt is in flight anywhere.
func (e *Engine) failoverBeforeResend(ctx context.Context, r *subRun,
	ar *attemptRun, st lndclient.PaymentStatus) error {

	if st.State != lnrpc.Payment_FAILED || st.FailureReason !=
		lnrpc.PaymentFailureReason_FAILURE_REASON_NO_ROUTE {

		return nil
	}
	e.mu.Lock()
	a := *ar.a
	nodes := r.dest.nodes
	router := e.router
	sawAt := ar.sawAt
	e.mu.Unlock()
	if len(nodes) < 2 {
		return nil
	}
	from := attemptDestination(r, &a)
	if sawAt != from && !lastHopIs(st, from) {
		// The FAILED may be an older send's, to another node: the
		// send to from never reached lnd (its call errored, or a crash
		// came after the node was stored). Send it to from first.
		e.payLog.Infof("Subscription %s seq %d: lnd's FAILED is not "+
			"known to come from node %s; sending there before any "+
			"failover", a.SubID, a.Seq, from)
		return nil
	}
	next, why, ok := e.failoverTarget(ctx, r, router, from, &a)
	if !ok {
		return nil
	}

	a.Destination = next
	a.UpdatedAt = e.clock.Now()
	err := e.db.Update(ctx, func(tx store.SenderTx) error {
		return tx.PutAttempt(&a)
	})
	if err != nil {
		return err
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	ar.a = &a
	e.moveOnLocked(r, from, next)
	e.payLog.Warnf("Subscription %s seq %d: node %s %s (no_route, lnd "+
		"failed the payment); failing over to node %s with the same "+
		"hash", a.SubID, a.Seq, from, why, next)
	e.changed()
	return nil
}

// failoverTarget picks the node an attempt that failed with NO_ROUTE at
// node from moves to, with why it leaves from, or ok false to stay. An
// unreachable node gives way to the next in the offer's order. A fee limit
// below every route's fee to from is no fault of the other nodes: the
// first other node (in the offer's order after from) that routes within
// the attempt's fee limit is chosen, as the route check that accepted the
// subscription found one may.
func (e *Engine) failoverTarget(ctx context.Context, r *subRun,
	router PaymentSender, from route.Vertex, a *store.Attempt) (
	route.Vertex, string, bool) {

	p, ok := router.(RouteProber)
	if !ok {
		return route.Vertex{}, "", false
	}
	err := probeRoute(ctx, p, from, a.Amount, a.MaxFee)
	switch {
	case errors.Is(err, ErrUnreachable):
		return r.dest.nextNode(from), "unreachable", true
	case !errors.Is(err, ErrFeeLimitBelowRoute):
		// A route within the limit now, or lnd could not say: no
		// reason to leave the node.
		return route.Vertex{}, "", false
	}
	n := len(r.dest.nodes)
	start := r.dest.index(from)
	for i := 1; i < n; i++ {
		cand := r.dest.nodes[(start+i)%n]
		if probeRoute(ctx, p, cand, a.Amount, a.MaxFee) == nil {
			return cand, "routes only above the fee limit", true
		}
	}
	return route.Vertex{}, "", false
}

// lastHopIs reports whether the last HTLC lnd recorded for the payment
// went to node: its route's final hop.
func lastHopIs(st lndclient.PaymentStatus, node route.Vertex) bool {
	for i := len(st.Htlcs) - 1; i >= 0; i-- {
		h := st.Htlcs[i]
		if h == nil || h.Route == nil || len(h.Route.Hops) == 0 {
			continue
		}
		hops := h.Route.Hops
		return hops[len(hops)-1].PubKey == node.String()
	}
	return false
}

// nextNode is the node after from in the offer's order (after the last,
// the primary again).
func (d *destinations) nextNode(from route.Vertex) route.Vertex {
	return d.nodes[(d.index(from)+1)%len(d.nodes)]
}

// moveOnLocked makes new payments of r follow a move from node from to
// node next, if r still pays from (an older attempt's move must not undo a
// newer one). Leaving the primary starts the sticky period; coming back to
// it ends it. e.mu is held.
func (e *Engine) moveOnLocked(r *subRun, from, next route.Vertex) {
	d := &r.dest
	if d.paying() != from {
		return
	}
	d.cur = d.index(next)
	switch {
	case d.cur == 0:
		d.leftPrimaryAt = time.Time{}
	case from == d.nodes[0]:
		d.leftPrimaryAt = e.clock.Now()
	}
	e.changed()
}

// quickFailoverLocked lets the retry of an attempt that failed with
// NO_ROUTE at an unreachable node start at once instead of after the
// backoff, while the offer has nodes this round of the attempt has not
// tried: failing over is no reason to wait. After a full round over every
// node the usual backoff applies. e.mu is held.
func (e *Engine) quickFailoverLocked(r *subRun, ar *attemptRun,
	unreachable bool) {

	if !unreachable || ar.failovers+1 >= len(r.dest.nodes) {
		ar.failovers = 0
		return
	}
	ar.failovers++
	r.notBefore = e.clock.Now()
	e.scheduleLocked(r, r.notBefore)
}

// nodeStrings lists nodes as hex.
func nodeStrings(nodes []route.Vertex) []string {
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n.String())
	}
	return out
}
