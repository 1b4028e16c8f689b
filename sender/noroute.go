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
// subscribing) the engine asks lnd for a route without the fee limit and
// says which it is.

// RouteProber is the part of lnd that finds a route without sending: the
// seam that tells a fee limit too low from an unreachable receiver.
type RouteProber interface {
	// CheapestRouteFee returns the fee of the route lnd would pick for
	// amt to dest with no practical fee limit, or ErrUnreachable.
	CheapestRouteFee(ctx context.Context, dest route.Vertex,
		amt lnwire.MilliSatoshi) (lnwire.MilliSatoshi, error)
}

// ErrUnreachable is CheapestRouteFee's answer when lnd finds no route at
// any fee.
var ErrUnreachable = errors.New("no route to the receiver at any fee")

// ErrFeeLimitBelowRoute reports terms whose fee limit is below the fee of
// the cheapest route: no payment could ever be sent.
var ErrFeeLimitBelowRoute = errors.New("fee limit below the cheapest route")

// probeFeeLimit is the fee limit of the probe: high enough not to matter.
const probeFeeLimit = lnwire.MilliSatoshi(1_000_000_000)

// probeTimeout bounds one probe.
const probeTimeout = 15 * time.Second

// CheapestRouteFee implements RouteProber with lnd's QueryRoutes.
func (r *routerAdapter) CheapestRouteFee(ctx context.Context,
	dest route.Vertex, amt lnwire.MilliSatoshi) (lnwire.MilliSatoshi,
	error) {

	if r.lightning == nil {
		return 0, errors.New("no lnd client to query routes with")
	}
	resp, err := r.lightning.QueryRoutes(ctx, lndclient.QueryRoutesRequest{
		PubKey:            dest,
		AmtMsat:           amt,
		FeeLimitMsat:      probeFeeLimit,
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

// feeLimitMessage is the explanation of a fee limit below the cheapest
// route's fee.
func feeLimitMessage(limit, fee lnwire.MilliSatoshi) string {
	return fmt.Sprintf("fee limit %s msat is below the cheapest route's "+
		"fee %s msat: raise --fee_limit_ppm or buy larger increments",
		groupDigits(uint64(limit)), groupDigits(uint64(fee)))
}

// explainNoRoute returns why a payment of amt with fee limit maxFee to dest
// found no route, or "" if lnd can't say.
func explainNoRoute(ctx context.Context, router PaymentSender,
	dest route.Vertex, amt, maxFee lnwire.MilliSatoshi) string {

	why, _ := probeNoRoute(ctx, router, dest, amt, maxFee)
	return why
}

// probeNoRoute is explainNoRoute that also says whether the fee limit is
// the fault (a route exists, above maxFee): then no other node of the
// provider would help either.
func probeNoRoute(ctx context.Context, router PaymentSender,
	dest route.Vertex, amt, maxFee lnwire.MilliSatoshi) (string, bool) {

	p, ok := router.(RouteProber)
	if !ok {
		return "", false
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	fee, err := p.CheapestRouteFee(ctx, dest, amt)
	switch {
	case errors.Is(err, ErrUnreachable):
		return "receiver unreachable: no route at any fee (no_route)",
			false
	case err != nil:
		return "", false
	case fee > maxFee:
		return feeLimitMessage(maxFee, fee), true
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
