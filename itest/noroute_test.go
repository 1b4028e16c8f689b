//go:build itest

package itest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/satstream/satstream/sender"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

// personalOffer is an offer of carol's for a fresh subscription: the
// sender needs no receiver daemon to subscribe or to route.
func personalOffer(t *testing.T, carol *regtest.Node) string {
	id, err := tlv.NewSubscriptionID()
	require.NoError(t, err)
	o := &tlv.Offer{Node: carol.PubKey, SubscriptionID: &id,
		PriceMsatPerSec: 1000, MinPayment: 1000,
		DefaultIncrement: 10 * time.Second, GracePeriod: time.Minute,
		MaxPrepay: time.Hour}
	require.NoError(t, o.Validate())
	return o.String()
}

// TestNoRouteSaysWhy reproduces what a new user saw: 10-sat payments with
// the default 1% fee limit (100 msat) through bob, whose lnd charges the
// default 1-sat base fee, never route, and the sender showed "receiver
// offline (no_route)" for ever. Subscribing with such terms is now refused
// with the fee limit and the route's fee named; with carol really offline
// the subscription is taken and its waiting state says the receiver is
// unreachable.
func TestNoRouteSaysWhy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	_, nodes := holdLine(t, ctx)
	alice, carol := nodes[0], nodes[2]

	sd, err := sender.New(senderConfig(t, alice),
		common.NewLogManager(&testWriter{t: t}))
	require.NoError(t, err)
	require.NoError(t, sd.Start(ctx))
	defer sd.Stop()
	ten := 10 * time.Second

	// The engine routes once it reached lnd.
	var addErr error
	require.NoError(t, regtest.Poll(ctx, time.Minute, func() error {
		_, addErr = sd.Engine().Add(ctx, personalOffer(t, carol),
			sender.TermsRequest{Increment: &ten}, true)
		if addErr == nil {
			return errNotYet
		}
		return nil
	}))
	require.ErrorIs(t, addErr, sender.ErrFeeLimitBelowRoute)
	require.ErrorContains(t, addErr, "fee limit 100 msat is below the "+
		"cheapest route's fee")
	require.ErrorContains(t, addErr, "raise --fee_limit_ppm or buy "+
		"larger increments")

	// Carol goes offline; terms that can pay bob's fee are taken, and
	// the failing payments say the receiver can't be reached.
	require.NoError(t, carol.Stop())
	v, err := sd.Engine().Add(ctx, personalOffer(t, carol),
		sender.TermsRequest{Increment: &ten,
			FeeLimitPPM: u32p(1_000_000), FeeLimit: msatp(5_000)}, false)
	require.NoError(t, err)
	require.NoError(t, regtest.Poll(ctx, 3*time.Minute, func() error {
		got, err := sd.Engine().Get(mustSubID(t, v.Secret))
		if err != nil {
			return err
		}
		if !strings.Contains(got.Waiting, "receiver unreachable") {
			return &waitingErr{got.Waiting}
		}
		return nil
	}))
}

var errNotYet = &waitingErr{"subscribe accepted terms that can't route"}

type waitingErr struct{ s string }

func (e *waitingErr) Error() string { return "waiting: " + e.s }

// mustSubID parses a subscription's secret id.
func mustSubID(t *testing.T, secret string) store.SubID {
	id, err := tlv.ParseSubscriptionID(secret)
	require.NoError(t, err)
	return store.SubID(id)
}
