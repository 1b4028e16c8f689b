//go:build itest

package itest

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/record"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/stretchr/testify/require"
)

const (
	// walletFunds is what each node gets on-chain.
	walletFunds = btcutil.Amount(50_000_000)

	// chanCapacity is the size of every test channel.
	chanCapacity = btcutil.Amount(5_000_000)
)

// newNetwork starts btcd and the given lnd nodes in a fresh directory and
// tears it all down when the test ends, keeping the logs (and printing
// where they are and how they end) if the test failed.
func newNetwork(t *testing.T, ctx context.Context,
	nodes ...regtest.NodeConfig) (*regtest.Network, []*regtest.Node) {

	t.Helper()
	dir, err := os.MkdirTemp("", "satstream-itest-*")
	require.NoError(t, err)

	net, err := regtest.New(ctx, regtest.Config{Dir: dir, Bins: binaries})
	if err != nil {
		os.RemoveAll(dir)
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		// Read the logs before shutdown adds its own noise.
		if t.Failed() {
			for _, f := range net.LogFiles() {
				t.Logf("--- last warnings and errors in %s ---\n%s",
					f, tail(f, 15, "[ERR]", "[WRN]", "[CRT]"))
			}
		}
		closeErr := net.Close()
		if t.Failed() {
			t.Logf("test failed; all logs kept in %s", dir)
			return
		}
		require.NoError(t, closeErr)
		os.RemoveAll(dir)
	})

	started, err := net.AddNodes(ctx, nodes...)
	require.NoError(t, err)
	return net, started
}

// line builds the usual shape (see regtest.Network.Line) with the test
// amounts.
func line(t *testing.T, ctx context.Context, net *regtest.Network,
	nodes ...*regtest.Node) {

	t.Helper()
	require.NoError(t, net.Line(ctx, walletFunds, chanCapacity, nodes...))
}

// holdLine starts the shape most satstream tests need: payer alice ->
// router bob -> provider carol, carol holding keysends for 30 s (or the
// hold time given) so a receiver can settle or refuse each one, with
// routes ready.
func holdLine(t *testing.T, ctx context.Context,
	hold ...time.Duration) (*regtest.Network, []*regtest.Node) {

	t.Helper()
	holdTime := 30 * time.Second
	if len(hold) > 0 {
		holdTime = hold[0]
	}
	net, nodes := newNetwork(t, ctx,
		regtest.NodeConfig{Name: "alice"},
		regtest.NodeConfig{Name: "bob"},
		regtest.NodeConfig{Name: "carol", ExtraArgs: []string{
			"--keysend-hold-time=" + holdTime.String(),
		}},
	)
	line(t, ctx, net, nodes...)
	return net, nodes
}

// keysend pays amt to dest with the given custom records and fails the
// test if the payment can't be made to finish.
func keysend(t *testing.T, ctx context.Context, from *regtest.Node,
	dest *regtest.Node, amt btcutil.Amount,
	records map[uint64][]byte) (lntypes.Hash, lndclient.PaymentStatus) {

	t.Helper()
	hash, status, err := sendKeysend(ctx, from, dest, amt, records)
	require.NoError(t, err)
	return hash, status
}

// sendKeysend pays amt to dest with the given custom records plus the
// keysend preimage record, using a preimage and hash the caller knows (never
// lndclient's KeySend flag, which hides the hash). It returns the hash and
// the final payment status. It is safe to call from any goroutine.
func sendKeysend(ctx context.Context, from *regtest.Node, dest *regtest.Node,
	amt btcutil.Amount, records map[uint64][]byte) (lntypes.Hash,
	lndclient.PaymentStatus, error) {

	var preimage lntypes.Preimage
	if _, err := rand.Read(preimage[:]); err != nil {
		return lntypes.Hash{}, lndclient.PaymentStatus{}, err
	}
	return sendKeysendPreimage(ctx, from, dest, amt, records, preimage)
}

// sendKeysendPreimage is sendKeysend with the caller's preimage, so a test
// can replay a hash.
func sendKeysendPreimage(ctx context.Context, from *regtest.Node,
	dest *regtest.Node, amt btcutil.Amount, records map[uint64][]byte,
	preimage lntypes.Preimage) (lntypes.Hash, lndclient.PaymentStatus,
	error) {

	hash := preimage.Hash()

	custom := map[uint64][]byte{record.KeySendType: preimage[:]}
	for k, v := range records {
		custom[k] = v
	}

	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	statuses, errs, err := from.Services().Router.SendPayment(ctx,
		lndclient.SendPaymentRequest{
			Target:        dest.PubKey,
			Amount:        amt,
			PaymentHash:   &hash,
			CustomRecords: custom,
			MaxFee:        100,
			Timeout:       60 * time.Second,
		})
	if err != nil {
		return hash, lndclient.PaymentStatus{}, err
	}

	for {
		select {
		case s := <-statuses:
			if s.State == lnrpc.Payment_SUCCEEDED ||
				s.State == lnrpc.Payment_FAILED {
				return hash, s, nil
			}
		case err := <-errs:
			return hash, lndclient.PaymentStatus{}, err
		case <-ctx.Done():
			return hash, lndclient.PaymentStatus{}, fmt.Errorf(
				"payment %v did not finish: %w", hash, ctx.Err())
		}
	}
}

// waitInvoice reads invoice updates until one for hash matches cond.
func waitInvoice(t *testing.T, ctx context.Context,
	updates <-chan *lndclient.Invoice, errs <-chan error, hash lntypes.Hash,
	cond func(*lndclient.Invoice) bool) *lndclient.Invoice {

	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		select {
		case inv := <-updates:
			if inv.Hash == hash && cond(inv) {
				return inv
			}
		case err := <-errs:
			require.NoError(t, err)
		case <-ctx.Done():
			t.Fatalf("no matching invoice update for %v: %v", hash,
				ctx.Err())
		}
	}
}

// tail returns the last n lines of a file that contain any of the given
// markers (all lines if none are given).
func tail(path string, n int, markers ...string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if !containsAny(sc.Text(), markers) {
			continue
		}
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	out := ""
	for _, l := range lines {
		out += l + "\n"
	}
	return out
}

func containsAny(s string, subs []string) bool {
	if len(subs) == 0 {
		return true
	}
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
