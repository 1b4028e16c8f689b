package sender

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
)

// lnd answers NO_ROUTE both when the receiver can't be reached and when
// every route costs more than the payment's fee limit. A payer who sees
// "receiver offline" for ever while the real fault is a fee limit below a
// router's base fee can't fix anything, so on NO_ROUTE (and when
// subscribing) the engine asks lnd for a route and says which it is.
//
// lnd's QueryRoutes does not return the cheapest route: it returns its
// best one (success probability first) among those within the fee limit
// asked with. Asked with no practical limit, it may answer a route that
// costs more than a cheaper one that fits the payment's limit. So the
// probe asks with the payment's own fee limit first (a route found means
// the limit is not the problem), and only then without it, to report a
// fee.

// RouteProber is the part of lnd that finds a route without sending: the
// seam that tells a fee limit too low from an unreachable receiver.
type RouteProber interface {
	// RouteFee returns the fee of the route lnd picks for amt to dest
	// among those costing at most feeLimit, or ErrUnreachable if there
	// is none.
	RouteFee(ctx context.Context, dest route.Vertex,
		amt, feeLimit lnwire.MilliSatoshi) (lnwire.MilliSatoshi, error)
}

// ErrUnreachable is RouteFee's answer when lnd finds no route within the
// fee limit asked with; asked with probeFeeLimit, none at any fee.
var ErrUnreachable = errors.New("no route to the receiver at any fee")

// ErrFeeLimitBelowRoute reports terms whose fee limit is below the fee of
// the cheapest route: no payment could ever be sent.
var ErrFeeLimitBelowRoute = errors.New("fee limit below the cheapest route")

// probeFeeLimit is the fee limit of the probe: high enough not to matter.
const probeFeeLimit = lnwire.MilliSatoshi(1_000_000_000)

// probeTimeout bounds one probe.
const probeTimeout = 15 * time.Second

// RouteFee implements RouteProber with lnd's QueryRoutes.
func (r *routerAdapter) RouteFee(ctx context.Context, dest route.Vertex,
	amt, feeLimit lnwire.MilliSatoshi) (lnwire.MilliSatoshi, error) {

	if r.lightning == nil {
		return 0, errors.New("no lnd client to query routes with")
	}
	resp, err := r.lightning.QueryRoutes(ctx, lndclient.QueryRoutesRequest{
		PubKey:            dest,
		AmtMsat:           amt,
		FeeLimitMsat:      feeLimit,
		UseMissionControl: true,
	})
	if err != nil {
		if strings.Contains(err.Error(), "unable to find a path") {
			return 0, ErrUnreachable
		}
		return 0, err
	}
	return resp.TotalFeesMsat, nil
}

var _ RouteProber = (*routerAdapter)(nil)

// probeRoute tells whether a payment of amt with fee limit maxFee can
// route to dest: nil if lnd finds a route within maxFee, ErrUnreachable
// if it finds none at any fee, an error wrapping ErrFeeLimitBelowRoute
// (with the fee of lnd's route without the limit) if only the limit is in
// the way, or lnd's error.
func probeRoute(ctx context.Context, p RouteProber, dest route.Vertex,
	amt, maxFee lnwire.MilliSatoshi) error {

	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	_, err := p.RouteFee(ctx, dest, amt, maxFee)
	if !errors.Is(err, ErrUnreachable) {
		// A route within the limit (nil), or lnd could not say.
		return err
	}
	fee, err := p.RouteFee(ctx, dest, amt, probeFeeLimit)
	switch {
	case err != nil:
		return err
	case fee <= maxFee:
		// lnd found none within the limit a moment ago, and one now:
		// the graph changed; the limit is not the fault.
		return nil
	}
	return fmt.Errorf("%w: %s", ErrFeeLimitBelowRoute,
		feeLimitMessage(maxFee, fee))
}

// feeLimitMessage is the explanation of a fee limit below the cheapest
// route's fee. fee is lnd's route without the limit: no route costs
// maxFee or less, but a cheaper one than fee may exist.
func feeLimitMessage(limit, fee lnwire.MilliSatoshi) string {
	return fmt.Sprintf("fee limit %s msat is below the cheapest route's "+
		"fee (lnd's route costs %s msat): raise --fee_limit_ppm or "+
		"buy larger increments", groupDigits(uint64(limit)),
		groupDigits(uint64(fee)))
}

// explainNoRoute returns why a payment of amt with fee limit maxFee to dest
// found no route, or "" if lnd can't say.
func explainNoRoute(ctx context.Context, router PaymentSender,
	dest route.Vertex, amt, maxFee lnwire.MilliSatoshi) string {

	why, _ := probeNoRoute(ctx, router, dest, amt, maxFee)
	return why
}

// probeNoRoute is explainNoRoute that also says whether the fee limit is
// the fault (a route to dest exists, above maxFee). Another node of the
// provider may still route within maxFee (see failoverTarget).
func probeNoRoute(ctx context.Context, router PaymentSender,
	dest route.Vertex, amt, maxFee lnwire.MilliSatoshi) (string, bool) {

	p, ok := router.(RouteProber)
	if !ok {
		return "", false
	}
	err := probeRoute(ctx, p, dest, amt, maxFee)
	switch {
	case errors.Is(err, ErrUnreachable):
		return "receiver unreachable: no route at any fee (no_route)",
			false
	case errors.Is(err, ErrFeeLimitBelowRoute):
		return strings.TrimPrefix(err.Error(),
			ErrFeeLimitBelowRoute.Error()+": "), true
	}
	return "", false
}

// groupDigits writes n with thousands separators (1,001).
func groupDigits(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
