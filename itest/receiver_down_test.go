//go:build itest

package itest

import (
	"context"
	"fmt"
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

// TestReceiverDaemonDownThreeHoldTimes stops carol's satstream-receiver
// (lnd stays up, holding keysends for a short hold time) for three hold
// times while alice's sender streams several subscriptions, then starts it
// again. Every keysend sent meanwhile expires in carol's lnd and fails back
// with INCORRECT_PAYMENT_DETAILS, like a refusal; the sender must see
// "receiver unavailable", never mark a subscription refused, and stream on
// by itself once the receiver is back, with the sender's and the
// receiver's totals equal to the msat.
func TestReceiverDaemonDownThreeHoldTimes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	const hold = 6 * time.Second
	_, nodes := holdLine(t, ctx, hold)
	alice, carol := nodes[0], nodes[2]
	// Badger only: what this test checks is the sender's side (a
	// receiver down for three hold times is "unavailable", not a
	// refusal). The receiver's restart and resume on PostgreSQL is
	// covered by TestReceiver's crash points and TestFaults/postgres,
	// and the test command's 25-minute budget has no room for both.
	t.Run(backendBadger, func(t *testing.T) {
		testReceiverDownOn(t, ctx, alice, carol, hold, backendBadger)
	})
}

// testReceiverDownOn is TestReceiverDaemonDownThreeHoldTimes' body for a
// receiver beside carol (holding keysends for hold) with its ledger on
// backend, and a sender beside alice.
func testReceiverDownOn(t *testing.T, ctx context.Context, alice,
	carol *regtest.Node, hold time.Duration, backend string) {

	hooks := newHookServer(t)
	r := newRcv(t, carol, hooks.srv.URL).onBackend(t, backend)
	r.start(ctx)

	// 1 sat/s, 2 s a payment; a grace period longer than the outage so
	// the receiver keeps the subscriptions active.
	var plan struct {
		ID string `json:"id"`
	}
	require.Equal(t, 201, r.do("POST", "/v1/plans", map[string]any{
		"label": "outage", "price_msat_per_sec": 1000,
		"min_payment_msat": 1000, "max_prepay_sec": 600,
		"default_increment_sec": 2, "grace_period_sec": 600,
	}, &plan))

	scfg := senderConfig(t, alice)
	scfg.Payments.UnavailableAfter = hold / 2
	require.NoError(t, scfg.Validate())
	sd, err := sender.New(scfg, common.NewLogManager(&testWriter{t: t}))
	require.NoError(t, err)
	require.NoError(t, sd.Start(ctx))
	defer func() { _ = sd.Stop() }()
	eng := sd.Engine()

	const subs = 3
	var ids []string
	var sids []store.SubID
	two, four := 2*time.Second, 4*time.Second
	for i := 0; i < subs; i++ {
		var sub subView
		require.Equal(t, 201, r.do("POST", "/v1/subscriptions",
			map[string]any{"plan_id": plan.ID}, &sub))
		v, err := eng.Add(ctx, sub.Offer, sender.TermsRequest{
			Increment: &two, Buffer: &four,
			FeeLimitPPM: u32p(1_000_000), FeeLimit: msatp(1_100),
		}, false)
		require.NoError(t, err)
		sid, err := tlv.ParseSubscriptionID(v.Secret)
		require.NoError(t, err)
		ids = append(ids, v.ID)
		sids = append(sids, store.SubID(sid))
	}

	// neverRefused fails the test as soon as a subscription is refused.
	neverRefused := func() {
		t.Helper()
		for _, id := range sids {
			v, err := eng.Get(id)
			require.NoError(t, err)
			require.NotEqual(t, sender.StateRefused, v.State,
				"subscription %s: %s", v.ID, v.Reason)
		}
	}
	// unavailable counts a subscription's payments the sender closed as
	// "receiver unavailable" (held by carol's lnd until the hold time ran
	// out), from the sender's payments API.
	unavailable := func(id store.SubID) int {
		t.Helper()
		n := 0
		for after := uint64(0); ; {
			pv, err := eng.Payments(ctx, id, after, 100)
			require.NoError(t, err)
			for _, p := range pv.Payments {
				if p.State == "failed" && strings.Contains(
					p.Failure, "receiver unavailable") {
					n++
				}
			}
			if len(pv.Payments) < 100 {
				return n
			}
			after = pv.Payments[len(pv.Payments)-1].Sequence
		}
	}
	limit := int(scfg.Payments.RefusalLimit)
	credited := func() []uint64 {
		out := make([]uint64, subs)
		for i, id := range ids {
			out[i] = r.sub(id).Payments
		}
		return out
	}

	require.NoError(t, regtest.Poll(ctx, 2*time.Minute, func() error {
		for i, c := range credited() {
			if c < 3 {
				return fmt.Errorf("subscription %d: %d credited",
					i, c)
			}
		}
		return nil
	}))

	// Count only the expiries of the outage.
	base := make([]int, subs)
	for i, id := range sids {
		base[i] = unavailable(id)
	}

	// The receiver daemon goes away (an upgrade, a crash); carol's lnd
	// stays up and holds each keysend until the hold time runs out.
	// Each subscription must see at least RefusalLimit such expiries
	// (as many as would mark it refused if they counted as refusals),
	// and none may become refused.
	r.stop()
	down := time.Now()
	require.NoError(t, regtest.Poll(ctx, 2*time.Minute, func() error {
		neverRefused()
		if time.Since(down) < 3*hold {
			return fmt.Errorf("down for %v", time.Since(down))
		}
		for i, id := range sids {
			v, _ := eng.Get(id)
			if !strings.Contains(v.Waiting, "receiver unavailable") {
				return fmt.Errorf("subscription %s: %s %s",
					v.ID, v.State, v.Waiting)
			}
			if n := unavailable(id) - base[i]; n < limit {
				return fmt.Errorf("subscription %s: %d hold "+
					"expiries so far", v.ID, n)
			}
		}
		return nil
	}))
	for i, id := range sids {
		require.GreaterOrEqual(t, unavailable(id)-base[i], limit,
			"hold expiries seen while the receiver was down")
	}
	neverRefused()
	t.Logf("receiver down for %v; every subscription waits after at "+
		"least %d hold expiries", time.Since(down).Round(time.Second),
		limit)

	r.start(ctx)
	before := credited()
	require.NoError(t, regtest.Poll(ctx, 3*time.Minute, func() error {
		neverRefused()
		now := credited()
		for i := range now {
			if now[i] < before[i]+3 {
				return fmt.Errorf("subscription %d: %d credited "+
					"since the restart", i, now[i]-before[i])
			}
		}
		return nil
	}))

	// Stop paying, let everything in flight settle or fail, and compare
	// the books.
	for _, id := range sids {
		_, err := eng.Apply(ctx, id, sender.OpPause, false)
		require.NoError(t, err)
	}
	require.NoError(t, regtest.Poll(ctx, 2*time.Minute, func() error {
		for _, id := range sids {
			v, _ := eng.Get(id)
			if v.InFlight != 0 {
				return fmt.Errorf("%s: %d in flight", v.ID,
					v.InFlight)
			}
		}
		return nil
	}))
	neverRefused()
	for i, id := range sids {
		require.NoError(t, regtest.Poll(ctx, time.Minute, func() error {
			v, _ := eng.Get(id)
			rs := r.sub(ids[i])
			if v.SentMsat != rs.TotalPaidMsat ||
				v.Payments != rs.Payments {
				return fmt.Errorf("subscription %s: sender %d "+
					"msat in %d payments, receiver %d in %d",
					v.ID, v.SentMsat, v.Payments,
					rs.TotalPaidMsat, rs.Payments)
			}
			return nil
		}))
	}
}
