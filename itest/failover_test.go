//go:build itest

package itest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/invoices"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/satstream/satstream/sender"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

// TestOfferFailsOverToSecondNodeWhenPrimaryDies runs payer alice -> bob ->
// two nodes of one provider, carol (primary) and dave, and a sender
// streaming a subscription whose offer lists both. Neither node holds
// keysends (no receiver daemon: their lnd settles every keysend itself), so
// the test is about the sender on real lnd: when carol's lnd stops, lnd
// fails the payments in flight to carol with NO_ROUTE, and the sender sends
// each again under its own hash to dave, which lnd accepts for a hash it
// failed; new payments then go straight to dave. Every sequence is paid
// once: each succeeded attempt's hash settled at exactly one of the two
// nodes, for its amount, and carol + dave together hold exactly what the
// sender reports sent.
func TestOfferFailsOverToSecondNodeWhenPrimaryDies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	net, nodes := newNetwork(t, ctx,
		regtest.NodeConfig{Name: "alice"},
		regtest.NodeConfig{Name: "bob"},
		regtest.NodeConfig{Name: "carol"},
		regtest.NodeConfig{Name: "dave"},
	)
	alice, bob, carol, dave := nodes[0], nodes[1], nodes[2], nodes[3]
	require.NoError(t, net.Fund(ctx, walletFunds, alice, bob))
	spec := func(from, to *regtest.Node) regtest.ChannelSpec {
		return regtest.ChannelSpec{From: from, To: to,
			Capacity: chanCapacity, Push: chanCapacity / 2}
	}
	_, err := net.OpenChannels(ctx, spec(alice, bob), spec(bob, carol),
		spec(bob, dave))
	require.NoError(t, err)
	for _, to := range []*regtest.Node{carol, dave} {
		require.NoError(t, net.WaitForRoute(ctx, alice, to, 1000))
	}

	id, err := tlv.NewSubscriptionID()
	require.NoError(t, err)
	o := &tlv.Offer{Node: carol.PubKey,
		ExtraNodes:     []route.Vertex{dave.PubKey},
		SubscriptionID: &id, PriceMsatPerSec: 1000, MinPayment: 1000,
		DefaultIncrement: 5 * time.Second, GracePeriod: time.Minute,
		MaxPrepay: time.Hour}
	require.NoError(t, o.Validate())

	sd, err := sender.New(senderConfig(t, alice),
		common.NewLogManager(&testWriter{t: t}))
	require.NoError(t, err)
	require.NoError(t, sd.Start(ctx))
	defer sd.Stop()
	eng := sd.Engine()
	inc, buf := 5*time.Second, 15*time.Second
	var v *sender.View
	require.NoError(t, regtest.Poll(ctx, time.Minute, func() error {
		v, err = eng.Add(ctx, o.String(), sender.TermsRequest{
			Increment: &inc, Buffer: &buf,
			FeeLimitPPM: u32p(1_000_000), FeeLimit: msatp(5_000)},
			false)
		return err
	}))
	sub := mustSubID(t, v.Secret)
	view := func() *sender.View {
		got, err := eng.Get(sub)
		require.NoError(t, err)
		return got
	}
	require.NoError(t, regtest.Poll(ctx, 2*time.Minute, func() error {
		if got := view(); got.Payments < 2 {
			return fmt.Errorf("%d payments", got.Payments)
		}
		return nil
	}))
	require.Equal(t, carol.PubKeyHex(), view().PayingNode)
	require.Equal(t, []string{carol.PubKeyHex(), dave.PubKeyHex()},
		view().Nodes)

	// Carol's lnd goes down: the stream moves to dave.
	require.NoError(t, carol.Stop())
	before := view().Payments
	require.NoError(t, regtest.Poll(ctx, 5*time.Minute, func() error {
		got := view()
		if got.PayingNode != dave.PubKeyHex() ||
			got.Payments < before+3 {

			return fmt.Errorf("paying %s, %d payments (waiting: %s)",
				got.PayingNode, got.Payments, got.Waiting)
		}
		return nil
	}))

	// Carol back; the payer pauses and waits until nothing is in
	// flight, then every node's settled keysends are counted.
	require.NoError(t, carol.Start(ctx))
	_, err = eng.Apply(ctx, sub, sender.OpPause, false)
	require.NoError(t, err)
	require.NoError(t, regtest.Poll(ctx, 3*time.Minute, func() error {
		if got := view(); got.InFlight > 0 {
			return fmt.Errorf("%d in flight", got.InFlight)
		}
		return nil
	}))
	pays, err := eng.Payments(ctx, sub, 0, 1000)
	require.NoError(t, err)

	// Every settled keysend at carol and dave, by hash.
	var settled [2]lnwire.MilliSatoshi
	at := map[lntypes.Hash]int{}
	for i, n := range []*regtest.Node{carol, dave} {
		resp, err := n.Services().Client.ListInvoices(ctx,
			lndclient.ListInvoicesRequest{MaxInvoices: 10_000})
		require.NoError(t, err)
		for _, inv := range resp.Invoices {
			if inv.State != invoices.ContractSettled {
				continue
			}
			_, twice := at[inv.Hash]
			require.False(t, twice, "%v settled at two nodes",
				inv.Hash)
			at[inv.Hash] = i
			settled[i] += inv.AmountPaid
		}
	}

	failedOverToDave := 0
	succeeded := 0
	for _, p := range pays.Payments {
		hash, err := lntypes.MakeHashFromStr(p.Hash)
		require.NoError(t, err)
		i, ok := at[hash]
		if p.State != "succeeded" {
			require.False(t, ok, "seq %d (%s) settled at a node",
				p.Sequence, p.State)
			continue
		}
		succeeded++
		t.Logf("seq %d %s tries %d node %s settled at %d", p.Sequence,
			p.Hash, p.Tries, p.Node, i)
		require.True(t, ok, "seq %d settled nowhere", p.Sequence)
		want := []string{carol.PubKeyHex(), dave.PubKeyHex()}[i]
		if want != p.Node {
			t.Errorf("seq %d paid to %s, settled at %s", p.Sequence,
				p.Node, want)
		}
		if i == 1 && p.Tries > 0 {
			failedOverToDave++
		}
	}
	for i, n := range []*regtest.Node{carol, dave} {
		t.Logf("node %d is %s", i, n.PubKeyHex())
	}
	require.Len(t, at, succeeded, "every settled keysend is a "+
		"succeeded payment of the sender")
	require.Positive(t, settled[0], "paid carol before she stopped")
	require.Positive(t, settled[1], "paid dave after")
	require.EqualValues(t, pays.SentMsat, settled[0]+settled[1])
	require.Positive(t, failedOverToDave, "a payment that failed at "+
		"carol was paid at dave under its own hash")
	t.Logf("carol %v, dave %v, %d payments failed over", settled[0],
		settled[1], failedOverToDave)
}
