package sender

import (
	"context"
	"errors"
	"time"

	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lntypes"
	paymentsdb "github.com/lightningnetwork/lnd/payments/db"
)

// PaymentSender is the narrow part of lnd the payment engine needs: start a
// payment with a hash we chose, and look one up again after a restart.
// lndclient's RouterClient provides it; unit tests use a fake.
type PaymentSender interface {
	// SendPayment starts a payment. The status channel is unbuffered and
	// is not closed when ctx ends.
	SendPayment(ctx context.Context, req lndclient.SendPaymentRequest) (
		chan lndclient.PaymentStatus, chan error, error)

	// TrackPayment follows a payment lnd already knows; an unknown hash
	// gives an error on the error channel that lndNeverSaw recognises.
	TrackPayment(ctx context.Context, hash lntypes.Hash) (
		chan lndclient.PaymentStatus, chan error, error)
}

// lndHasPayment reports lnd's answer to a send of a hash it already has in
// flight or settled: follow that payment instead. lndclient turns lnd's
// gRPC code into payments/db's error value (it imports that package
// itself, so the sender links it either way).
func lndHasPayment(err error) bool {
	return errors.Is(err, paymentsdb.ErrAlreadyPaid)
}

// lndNeverSaw reports lnd's answer to tracking a hash it never saw (or has
// not stored yet: see attemptRun.handed).
func lndNeverSaw(err error) bool {
	return errors.Is(err, paymentsdb.ErrPaymentNotInitiated)
}

// routerAdapter hands the engine's calls to lndclient's router.
type routerAdapter struct {
	router lndclient.RouterClient
	// lightning answers QueryRoutes (RouteProber); nil disables it.
	lightning lndclient.LightningClient
}

// Compile-time check that the adapter provides the engine's seam.
var _ PaymentSender = (*routerAdapter)(nil)

// SendPayment implements PaymentSender.
func (r *routerAdapter) SendPayment(ctx context.Context,
	req lndclient.SendPaymentRequest) (chan lndclient.PaymentStatus,
	chan error, error) {

	return r.router.SendPayment(ctx, req)
}

// TrackPayment implements PaymentSender.
func (r *routerAdapter) TrackPayment(ctx context.Context,
	hash lntypes.Hash) (chan lndclient.PaymentStatus, chan error, error) {

	return r.router.TrackPayment(ctx, hash)
}

// Clock is the engine's source of time, so unit tests can move it by hand.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After delivers the time once d has passed.
	After(d time.Duration) <-chan time.Time
}

// systemClock is the real clock.
type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
