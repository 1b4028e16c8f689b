package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/invoicesrpc"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/itest/bins"
	"github.com/satstream/satstream/itest/regtest"
)

// holdTime is carol's --keysend-hold-time in hold mode (the receiver's
// recommended setting).
const holdTime = "--keysend-hold-time=30s"

// network is the benchmark's regtest line alice -> bob -> carol.
type network struct {
	net               *regtest.Network
	alice, bob, carol *regtest.Node

	// full is alice's spendable balance towards bob once the line is
	// open: refill brings it back there.
	full btcutil.Amount
}

// refillChunk is the most one refill payment moves: under lnd's largest
// payment without wumbo channels (2^32 msat).
const refillChunk = btcutil.Amount(4_000_000)

// refillSlack is how far below full alice may be before refill pays.
const refillSlack = btcutil.Amount(200_000)

// refill moves what alice paid to carol back to alice (invoices of
// alice's paid by carol over carol -> bob -> alice), so every round starts
// with alice's channel as full as the first: three rounds of every level
// pay more than one channel holds.
func (nw *network) refill(ctx context.Context) (btcutil.Amount, error) {
	var moved btcutil.Amount
	for {
		bal, err := nw.localBalance(ctx)
		if err != nil {
			return moved, err
		}
		if bal+refillSlack >= nw.full {
			return moved, nil
		}
		amt := min(nw.full-bal, refillChunk)
		_, payReq, err := nw.alice.Services().Client.AddInvoice(ctx,
			&invoicesrpc.AddInvoiceData{Memo: "bench refill",
				Value: lnwire.NewMSatFromSatoshis(amt)})
		if err != nil {
			return moved, fmt.Errorf("refill invoice: %w", err)
		}
		if err := payInvoice(ctx, nw.carol, payReq); err != nil {
			return moved, fmt.Errorf("refill %v from carol: %w", amt, err)
		}
		moved += amt
	}
}

// payInvoice pays payReq from n and waits for SUCCEEDED.
func payInvoice(ctx context.Context, n *regtest.Node, payReq string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	statuses, errs, err := n.Services().Router.SendPayment(ctx,
		lndclient.SendPaymentRequest{Invoice: payReq,
			MaxFeeMsat: lnwire.NewMSatFromSatoshis(refillChunk / 100),
			Timeout:    time.Minute})
	if err != nil {
		return err
	}
	st, err := finalStatus(ctx, statuses, errs)
	if err == nil && st.State != lnrpc.Payment_SUCCEEDED {
		err = fmt.Errorf("payment failed: %v", st.FailureReason)
	}
	return err
}

// startNetwork starts btcd and the three nodes, carol without hold time,
// and opens the channels. Channels are as big as lnd allows without wumbo
// so the whole run fits in alice's side.
func startNetwork(ctx context.Context, dir string, paths *bins.Paths) (
	*network, error) {

	n, err := regtest.New(ctx, regtest.Config{
		Dir: filepath.Join(dir, "network"), Bins: paths,
	})
	if err != nil {
		return nil, err
	}
	nw := &network{net: n}
	nodes, err := n.AddNodes(ctx,
		regtest.NodeConfig{Name: "alice"},
		regtest.NodeConfig{Name: "bob"},
		regtest.NodeConfig{Name: "carol"},
	)
	if err != nil {
		return nw, err
	}
	nw.alice, nw.bob, nw.carol = nodes[0], nodes[1], nodes[2]
	if err := n.Line(ctx, 50_000_000, 16_000_000, nodes...); err != nil {
		return nw, err
	}
	nw.full, err = nw.localBalance(ctx)
	return nw, err
}

// setHold restarts carol with or without --keysend-hold-time and waits
// until alice can pay her again.
func (nw *network) setHold(ctx context.Context, hold bool) error {
	// lnd fails the link for good if carol restarts while the
	// commitment dance of a settle she sent is still going: alice may
	// report SUCCEEDED before bob and carol revoked their old states,
	// and after the restart carol's link stopped with "unable to settle
	// htlc: No HTLC with ID ...", so the channel never came back.
	if err := nw.quiet(ctx); err != nil {
		return err
	}
	if hold {
		nw.carol.SetExtraArgs(holdTime)
	} else {
		nw.carol.SetExtraArgs()
	}
	if err := nw.carol.Restart(ctx); err != nil {
		return fmt.Errorf("restart carol: %w", err)
	}
	if err := nw.carol.Connect(ctx, nw.bob); err != nil {
		return err
	}
	// Both channel ends must see the link active again before a
	// payment can cross it.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ok, err := activeChannel(ctx, nw.bob, nw.carol)
		if err == nil && ok {
			ok, err = activeChannel(ctx, nw.carol, nw.bob)
		}
		if err == nil && ok {
			return nw.net.WaitForRoute(ctx, nw.alice, nw.carol, 1000)
		}
		if time.Now().After(deadline) {
			return errors.Join(errors.New("channel bob -> carol "+
				"not active after carol's restart"), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// quiet waits until neither end of bob -> carol has an HTLC pending.
func (nw *network) quiet(ctx context.Context) error {
	return regtest.Poll(ctx, time.Minute, func() error {
		for _, end := range [][2]*regtest.Node{{nw.bob, nw.carol},
			{nw.carol, nw.bob}} {

			resp, err := end[0].RPC().ListChannels(ctx,
				&lnrpc.ListChannelsRequest{Peer: end[1].PubKey[:]})
			if err != nil {
				return err
			}
			for _, c := range resp.Channels {
				if n := len(c.PendingHtlcs); n > 0 {
					return fmt.Errorf("%s still has %d HTLCs "+
						"pending with %s", end[0].Name, n,
						end[1].Name)
				}
			}
		}
		return nil
	})
}

// activeChannel reports whether from has an active channel with peer.
func activeChannel(ctx context.Context, from, peer *regtest.Node) (bool,
	error) {

	resp, err := from.RPC().ListChannels(ctx, &lnrpc.ListChannelsRequest{
		ActiveOnly: true, Peer: peer.PubKey[:],
	})
	if err != nil {
		return false, err
	}
	return len(resp.Channels) > 0, nil
}

// feePolicy is bob's policy on the bob -> carol channel, as alice's graph
// knows it: what a payer pays per payment on this route.
func (nw *network) feePolicy(ctx context.Context) (baseMsat, ppm int64,
	err error) {

	g, err := nw.alice.RPC().DescribeGraph(ctx, &lnrpc.ChannelGraphRequest{})
	if err != nil {
		return 0, 0, err
	}
	bob, carol := nw.bob.PubKeyHex(), nw.carol.PubKeyHex()
	for _, e := range g.Edges {
		switch {
		case e.Node1Pub == bob && e.Node2Pub == carol && e.Node1Policy != nil:
			return e.Node1Policy.FeeBaseMsat, e.Node1Policy.FeeRateMilliMsat, nil
		case e.Node2Pub == bob && e.Node1Pub == carol && e.Node2Policy != nil:
			return e.Node2Policy.FeeBaseMsat, e.Node2Policy.FeeRateMilliMsat, nil
		}
	}
	return 0, 0, errors.New("no bob -> carol edge in alice's graph")
}

// localBalance is alice's spendable side towards bob, to check the run
// fits.
func (nw *network) localBalance(ctx context.Context) (btcutil.Amount, error) {
	resp, err := nw.alice.RPC().ChannelBalance(ctx,
		&lnrpc.ChannelBalanceRequest{})
	if err != nil {
		return 0, err
	}
	return btcutil.Amount(resp.LocalBalance.GetSat()), nil
}
