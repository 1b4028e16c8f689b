//go:build itest

package itest

import (
	"context"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/invoices"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/record"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/stretchr/testify/require"
)

// TestSmokeNetwork proves the ground every other itest stands on: keysend
// with custom records arrives intact directly and over a hop, a node
// without --accept-keysend refuses it, and with --keysend-hold-time an
// application decides to settle or refuse each payment.
func TestSmokeNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	start := time.Now()
	net, nodes := newNetwork(t, ctx,
		regtest.NodeConfig{Name: "alice"},
		regtest.NodeConfig{Name: "bob"},
		regtest.NodeConfig{Name: "carol"},
		regtest.NodeConfig{Name: "dave", NoAcceptKeysend: true},
		regtest.NodeConfig{Name: "erin", ExtraArgs: []string{
			"--keysend-hold-time=60s",
		}},
	)
	alice, bob, carol, dave, erin := nodes[0], nodes[1], nodes[2],
		nodes[3], nodes[4]

	// alice -> bob -> {carol, dave, erin}.
	require.NoError(t, net.Fund(ctx, walletFunds, alice, bob))
	var specs []regtest.ChannelSpec
	for _, pair := range [][2]*regtest.Node{
		{alice, bob}, {bob, carol}, {bob, dave}, {bob, erin},
	} {
		specs = append(specs, regtest.ChannelSpec{
			From: pair[0], To: pair[1],
			Capacity: chanCapacity, Push: chanCapacity / 2,
		})
	}
	_, err := net.OpenChannels(ctx, specs...)
	require.NoError(t, err)
	for _, to := range []*regtest.Node{bob, carol, dave, erin} {
		require.NoError(t, net.WaitForRoute(ctx, alice, to, 1000))
	}
	t.Logf("network of 5 nodes and 4 channels usable after %v",
		time.Since(start).Round(time.Millisecond))

	records := map[uint64][]byte{
		65537:   []byte("satstream"),
		7629169: []byte(`{"action":"stream"}`),
	}

	for _, tc := range []struct {
		name string
		dest *regtest.Node
	}{
		{name: "direct alice to bob", dest: bob},
		{name: "one hop alice to carol", dest: carol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			subCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			invs, errs, err := tc.dest.Services().Client.SubscribeInvoices(
				subCtx, lndclient.InvoiceSubscriptionRequest{},
			)
			require.NoError(t, err)

			hash, status := keysend(t, ctx, alice, tc.dest, 2000, records)
			require.Equal(t, lnrpc.Payment_SUCCEEDED, status.State,
				"failure reason %v", status.FailureReason)

			inv := waitInvoice(t, ctx, invs, errs, hash,
				func(i *lndclient.Invoice) bool {
					return i.State == invoices.ContractSettled
				})
			require.True(t, inv.IsKeysend)
			require.EqualValues(t, 2_000_000, inv.AmountPaid)
			require.Len(t, inv.Htlcs, 1)
			got := inv.Htlcs[0].CustomRecords
			for k, v := range records {
				require.Equal(t, v, got[k], "record %d", k)
			}
			require.Contains(t, got, uint64(record.KeySendType))
		})
	}

	t.Run("keysend to a node without accept-keysend fails", func(t *testing.T) {
		_, status := keysend(t, ctx, alice, dave, 2000, records)
		require.Equal(t, lnrpc.Payment_FAILED, status.State)
		require.Equal(t,
			lnrpc.PaymentFailureReason_FAILURE_REASON_INCORRECT_PAYMENT_DETAILS,
			status.FailureReason)
	})

	t.Run("hold time lets the application settle or refuse", func(t *testing.T) {
		subCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		invs, errs, err := erin.Services().Client.SubscribeInvoices(
			subCtx, lndclient.InvoiceSubscriptionRequest{},
		)
		require.NoError(t, err)

		type result struct {
			status lndclient.PaymentStatus
			err    error
		}
		results := make(chan result, 2)
		for _, amt := range []int{3000, 4000} {
			go func() {
				recs := map[uint64][]byte{65537: {byte(amt / 1000)}}
				_, s, err := sendKeysend(ctx, alice, erin,
					btcutil.Amount(amt), recs)
				results <- result{s, err}
			}()
		}

		// The application learns of each held payment from the add
		// event, then watches that one hash until lnd has ACCEPTED
		// the HTLC; it settles the 3000 sat one and refuses the
		// other.
		decided := map[lntypes.Hash]bool{}
		for len(decided) < 2 {
			var inv *lndclient.Invoice
			select {
			case inv = <-invs:
			case err := <-errs:
				require.NoError(t, err)
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			}
			if !inv.IsKeysend || decided[inv.Hash] {
				continue
			}
			require.Equal(t, invoices.ContractOpen, inv.State,
				"held keysend must not settle on its own")

			accepted := waitAccepted(t, ctx, erin, inv.Hash)
			recs := accepted.Htlcs[0].CustomRecords
			preimage, err := lntypes.MakePreimage(
				recs[record.KeySendType],
			)
			require.NoError(t, err)
			app := erin.Services().Invoices
			if recs[65537][0] == 3 {
				require.NoError(t, app.SettleInvoice(ctx, preimage))
			} else {
				require.NoError(t, app.CancelInvoice(ctx,
					accepted.Hash))
			}
			decided[accepted.Hash] = true
		}

		for i := 0; i < 2; i++ {
			r := <-results
			require.NoError(t, r.err)
			switch r.status.Value.ToSatoshis() {
			case 3000:
				require.Equal(t, lnrpc.Payment_SUCCEEDED,
					r.status.State)
			default:
				require.Equal(t, lnrpc.Payment_FAILED,
					r.status.State)
				require.Equal(t, lnrpc.PaymentFailureReason_FAILURE_REASON_INCORRECT_PAYMENT_DETAILS,
					r.status.FailureReason)
			}
		}
	})
}

// waitAccepted watches one invoice until lnd reports it ACCEPTED (the
// HTLC is held), which SubscribeInvoices never reports.
func waitAccepted(t *testing.T, ctx context.Context, node *regtest.Node,
	hash lntypes.Hash) lndclient.InvoiceUpdate {

	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	updates, errs, err := node.Services().Invoices.SubscribeSingleInvoice(
		ctx, hash,
	)
	require.NoError(t, err)
	for {
		select {
		case u := <-updates:
			if u.State == invoices.ContractAccepted {
				return u
			}
		case err := <-errs:
			require.NoError(t, err)
		case <-ctx.Done():
			t.Fatalf("invoice %v never accepted: %v", hash, ctx.Err())
		}
	}
}
