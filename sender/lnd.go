package sender

import (
	"context"
	"errors"
	"time"

	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lntypes"
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

// lnd's router answers "this hash is in flight or settled" to a send and
// "I never saw this hash" to a track with gRPC codes that lndclient turns
// into two error values of lnd's payments/db package. Importing that
// package for them would tie the sender to lnd's SQL payment store, so the
// sender recognises them by their text, which TestRouterAnswersMatchLnd
// pins to lnd's values.
const (
	lndAlreadyPaidText  = "invoice is already paid"
	lndNotInitiatedText = "payment isn't initiated"
)

// lndHasPayment reports lnd's answer to a send of a hash it already has in
// flight or settled: follow that payment instead.
func lndHasPayment(err error) bool {
	return errTextIs(err, lndAlreadyPaidText)
}

// lndNeverSaw reports lnd's answer to tracking a hash it never saw: the
// payment was never made.
func lndNeverSaw(err error) bool {
	return errTextIs(err, lndNotInitiatedText)
}

// errTextIs reports whether err or an error it wraps has exactly text.
func errTextIs(err error, text string) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if err.Error() == text {
			return true
		}
	}
	return false
}

// routerAdapter hands the engine's calls to lndclient's router.
type routerAdapter struct {
	router lndclient.RouterClient
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
