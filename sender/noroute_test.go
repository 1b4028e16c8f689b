package sender

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/satstream/satstream/sender/sendertest"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

// probingRouter is the fake router with a QueryRoutes answer.
type probingRouter struct {
	*sendertest.Router
	fee         atomic.Uint64
	unreachable atomic.Bool
}

func (p *probingRouter) RouteFee(_ context.Context, _ route.Vertex,
	_, limit lnwire.MilliSatoshi) (lnwire.MilliSatoshi, error) {

	fee := lnwire.MilliSatoshi(p.fee.Load())
	if p.unreachable.Load() || fee > limit {
		return 0, ErrUnreachable
	}
	return fee, nil
}

// runProbing runs h's engine with a probing router.
func runProbing(h *harness) *probingRouter {
	p := &probingRouter{Router: h.router}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go func() {
		defer close(h.done)
		_ = h.eng.Run(ctx, p)
	}()
	h.t.Cleanup(h.stop)
	h.eventually(func() bool {
		h.eng.mu.Lock()
		defer h.eng.mu.Unlock()
		return h.eng.router != nil
	}, "engine running")
	return p
}

// TestNoRouteSaidReceiverOfflineWhenTheFeeLimitWasTooLow: with 10-sat
// payments, the default 1% fee limit (100 msat) and a router charging a
// 1-sat base fee, every payment failed with NO_ROUTE and the subscription
// said "receiver offline (no_route)" for ever. It now says the fee limit is
// the fault, or that the receiver is really unreachable.
func TestNoRouteSaidReceiverOfflineWhenTheFeeLimitWasTooLow(t *testing.T) {
	tests := []struct {
		name        string
		unreachable bool
		want        string
	}{
		{"fee limit", false, "fee limit 100 msat is below the cheapest " +
			"route's fee (lnd's route costs 1,001 msat): raise " +
			"--fee_limit_ppm or buy larger increments"},
		{"unreachable", true, "receiver unreachable: no route at any fee"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.router.SetDecide(func(lndclient.SendPaymentRequest) sendertest.Outcome {
				return noRoute
			})
			// The route costs nothing at subscribe; then the
			// router raises its fee (or the receiver goes).
			p := runProbing(h)
			ppm := uint32(10_000)
			v, err := h.eng.Add(context.Background(),
				testOffer(t, 1000, time.Hour, false),
				TermsRequest{Increment: dur(10 * time.Second),
					FeeLimitPPM: &ppm}, true)
			require.NoError(t, err)
			id := mustSecret(t, v.Secret)
			p.fee.Store(1001)
			p.unreachable.Store(tc.unreachable)
			_, err = h.eng.Apply(context.Background(), id, OpResume,
				true)
			require.NoError(t, err)
			h.eventually(func() bool {
				w := h.view(id).Waiting
				return strings.Contains(w, tc.want)
			}, "waiting reason explains the no_route")
		})
	}
}

// TestSubscribeRefusesTermsThatCannotRoute: terms whose every payment
// would fail for its fee limit are refused at subscribe, with the same
// message; an unreachable receiver is accepted (it may come back).
func TestSubscribeRefusesTermsThatCannotRoute(t *testing.T) {
	h := newHarness(t, nil)
	p := runProbing(h)
	p.fee.Store(1001)
	ppm := uint32(10_000)
	req := TermsRequest{Increment: dur(10 * time.Second), FeeLimitPPM: &ppm}
	_, err := h.eng.Add(context.Background(),
		testOffer(t, 1000, time.Hour, false), req, false)
	require.ErrorIs(t, err, ErrBadTerms)
	require.ErrorIs(t, err, ErrFeeLimitBelowRoute)
	require.ErrorContains(t, err, "fee limit 100 msat is below the "+
		"cheapest route's fee (lnd's route costs 1,001 msat)")

	p.unreachable.Store(true)
	_, err = h.eng.Add(context.Background(),
		testOffer(t, 1000, time.Hour, false), req, false)
	require.NoError(t, err)
}

func mustSecret(t *testing.T, secret string) store.SubID {
	id, err := tlv.ParseSubscriptionID(secret)
	require.NoError(t, err)
	return store.SubID(id)
}

// bestRouteRouter answers route queries as lnd does: with a fee limit it
// returns a route within it if one exists, without one it returns lnd's
// BEST route (probability first), which here costs more than a cheaper
// route that fits the limit.
type bestRouteRouter struct {
	*sendertest.Router
	// cheap is a route within the payment's fee limit; best is the
	// route lnd prefers when the limit does not matter.
	cheap, best lnwire.MilliSatoshi
}

func (b *bestRouteRouter) RouteFee(_ context.Context, _ route.Vertex,
	_ lnwire.MilliSatoshi, limit lnwire.MilliSatoshi) (lnwire.MilliSatoshi,
	error) {

	switch {
	case b.best <= limit:
		return b.best, nil
	case b.cheap <= limit:
		return b.cheap, nil
	}
	return 0, ErrUnreachable
}

// TestRouteCheckBlamedTheFeeLimitForLndsBestRouteWhenACheaperOneFit: the
// route check asked QueryRoutes with a huge fee limit, so lnd answered its
// best route (1,001 msat) although a 50-msat route fits the 100-msat fee
// limit: the subscription was refused with "fee limit below the cheapest
// route's fee", and a NO_ROUTE (no liquidity) blamed the fee limit. The
// check now asks with the payment's own fee limit first.
func TestRouteCheckBlamedTheFeeLimitForLndsBestRouteWhenACheaperOneFit(
	t *testing.T) {

	h := newHarness(t, nil)
	p := &bestRouteRouter{Router: h.router, cheap: 50, best: 1001}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go func() {
		defer close(h.done)
		_ = h.eng.Run(ctx, p)
	}()
	h.t.Cleanup(h.stop)
	h.eventually(func() bool {
		h.eng.mu.Lock()
		defer h.eng.mu.Unlock()
		return h.eng.router != nil
	}, "engine running")

	// 10-sat payments, 1% fee limit: 100 msat.
	ppm := uint32(10_000)
	_, err := h.eng.Add(context.Background(),
		testOffer(t, 1000, time.Hour, false),
		TermsRequest{Increment: dur(10 * time.Second),
			FeeLimitPPM: &ppm}, false)
	require.NoError(t, err, "a route within the fee limit exists")

	// A NO_ROUTE while a route fits the limit is not the fee limit's
	// fault: no explanation (the waiting reason stays lnd's).
	require.Empty(t, explainNoRoute(context.Background(), p,
		route.Vertex{2}, 10_000, 100))

	// No route fits: the fee limit is the fault, and the fee reported is
	// lnd's route without the limit.
	p.cheap = 1001
	require.Contains(t, explainNoRoute(context.Background(), p,
		route.Vertex{2}, 10_000, 100), "fee limit 100 msat is below "+
		"the cheapest route's fee")
}
