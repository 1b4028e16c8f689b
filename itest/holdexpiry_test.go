//go:build itest

package itest

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// shortHold is carol's keysend hold time in TestReceiverHoldExpiry: short,
// so the tests can outlast it.
const shortHold = 5 * time.Second

// TestReceiverHoldExpiry runs the receiver against carol holding keysends
// for a few seconds and deleting cancelled invoices at once and on start
// (lnd's gc-canceled-invoices options). A credit whose HTLC lnd cancelled
// must be reversed, whether the receiver was down when it happened (and
// lnd deleted the invoice) or decided too late while running, and the
// receiver must go on deciding new payments.
func TestReceiverHoldExpiry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	net, nodes := newNetwork(t, ctx,
		regtest.NodeConfig{Name: "alice"},
		regtest.NodeConfig{Name: "bob"},
		regtest.NodeConfig{Name: "carol", ExtraArgs: []string{
			"--keysend-hold-time=" + shortHold.String(),
			"--gc-canceled-invoices-on-the-fly",
			"--gc-canceled-invoices-on-startup",
		}},
	)
	line(t, ctx, net, nodes...)
	alice, carol := nodes[0], nodes[2]
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			testHoldExpiryOn(t, ctx, alice, carol, backend)
		})
	}
}

// testHoldExpiryOn is TestReceiverHoldExpiry's body for a receiver beside
// carol with its ledger on backend, paid by alice.
func testHoldExpiryOn(t *testing.T, ctx context.Context, alice,
	carol *regtest.Node, backend string) {

	hooks := newHookServer(t)
	hooks.setDown(true) // events stay queued, so the test can see them
	r := newRcv(t, carol, hooks.srv.URL).onBackend(t, backend)
	r.start(ctx)

	var plan struct {
		ID string `json:"id"`
	}
	require.Equal(t, 201, r.do("POST", "/v1/plans", map[string]any{
		"label": "basic", "price_msat_per_sec": 10,
		"min_payment_msat": 10_000, "grace_period_sec": 60,
		"max_prepay_sec": 86_400,
	}, &plan))
	var sub subView
	require.Equal(t, 201, r.do("POST", "/v1/subscriptions",
		map[string]any{"plan_id": plan.ID}, &sub))

	seq := uint64(0)
	payOK := func(t *testing.T) {
		t.Helper()
		before := r.sub(sub.ID)
		seq++
		_, st := keysend(t, ctx, alice, carol, 100,
			records(t, sub.Secret, seq, "", false))
		require.Equal(t, lnrpc.Payment_SUCCEEDED, st.State)
		require.NoError(t, regtest.Poll(ctx, 30*time.Second, func() error {
			if v := r.sub(sub.ID); v.Payments != before.Payments+1 {
				return fmt.Errorf("payments %d", v.Payments)
			}
			return nil
		}))
	}
	payOK(t)

	// payExpired pays while the receiver is set up (by env) to credit and
	// then not settle in time; credited waits until it has credited. It
	// returns the hash once lnd has failed the payment back on hold
	// expiry.
	payExpired := func(t *testing.T, credited func(),
		env ...string) lntypes.Hash {

		t.Helper()
		r.stop()
		r.start(ctx, env...)
		seq++
		type res struct {
			hash lntypes.Hash
			st   lnrpc.Payment_PaymentStatus
			why  lnrpc.PaymentFailureReason
			err  error
		}
		done := make(chan res, 1)
		recs := records(t, sub.Secret, seq, "", false)
		go func() {
			h, st, err := sendKeysend(ctx, alice, carol, 100, recs)
			done <- res{h, st.State, st.FailureReason, err}
		}()
		credited()
		got := <-done
		require.NoError(t, got.err)
		require.Equal(t, lnrpc.Payment_FAILED, got.st)
		require.Equal(t, lnrpc.
			PaymentFailureReason_FAILURE_REASON_INCORRECT_PAYMENT_DETAILS,
			got.why)
		return got.hash
	}

	// requireReversed waits until the credit of h is taken back and a
	// payment.reversed event for it is queued.
	requireReversed := func(t *testing.T, h lntypes.Hash, want subView) {
		t.Helper()
		require.NoError(t, regtest.Poll(ctx, 60*time.Second, func() error {
			v := r.sub(sub.ID)
			if v.Payments != want.Payments ||
				v.TotalPaidMsat != want.TotalPaidMsat ||
				v.TotalSeconds != want.TotalSeconds {
				return fmt.Errorf("credit not reversed: %+v", v)
			}
			return nil
		}))
		var evs struct {
			Events []struct {
				Type string          `json:"type"`
				Data json.RawMessage `json:"data"`
			} `json:"events"`
		}
		require.Equal(t, 200, r.do("GET", "/v1/events?pending=true&limit=1000",
			nil, &evs))
		n := 0
		for _, e := range evs.Events {
			if e.Type == "payment.reversed" &&
				strings.Contains(string(e.Data), hex.EncodeToString(h[:])) {
				n++
			}
		}
		require.Equal(t, 1, n, "payment.reversed events for %v", h)
	}

	t.Run("hold expired while down, invoice deleted", func(t *testing.T) {
		before := r.sub(sub.ID)
		h := payExpired(t, func() { r.waitExit(ctx) },
			"SATSTREAM_RECEIVER_CRASH_AT=after-credit")

		// lnd cancelled the HTLC and deleted the invoice.
		require.NoError(t, regtest.Poll(ctx, 30*time.Second, func() error {
			_, err := carol.Services().Client.LookupInvoice(ctx, h)
			if status.Code(err) != codes.NotFound {
				return fmt.Errorf("invoice still there: %v", err)
			}
			return nil
		}))

		r.start(ctx)
		requireReversed(t, h, before)
		payOK(t)
	})

	t.Run("decision after the hold time, while running", func(t *testing.T) {
		before := r.sub(sub.ID)
		credited := func() {
			require.NoError(t, regtest.Poll(ctx, 30*time.Second,
				func() error {
					v := r.sub(sub.ID)
					if v.Payments != before.Payments+1 {
						return fmt.Errorf("not credited yet")
					}
					return nil
				}))
		}
		h := payExpired(t, credited,
			"SATSTREAM_RECEIVER_DELAY_AT=after-credit",
			fmt.Sprintf("SATSTREAM_RECEIVER_DELAY=%v", 2*shortHold))
		requireReversed(t, h, before)

		// The same process is still up and connected.
		var health map[string]any
		require.Equal(t, 200, r.do("GET", "/v1/health", nil, &health))
		require.Equal(t, true, health["lnd_connected"])
		r.stop()
		r.start(ctx)
		payOK(t)
	})

	r.stop()
}
