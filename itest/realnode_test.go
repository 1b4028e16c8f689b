//go:build itest

package itest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/record"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

// bakeMacaroon bakes a macaroon on n with exactly the given permissions,
// the way docs/operators.md tells operators to, and returns its path.
func bakeMacaroon(t *testing.T, ctx context.Context, n *regtest.Node,
	name string, perms ...string) string {

	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	args := append([]string{"--network=regtest",
		"--rpcserver=" + n.RPCAddr, "--tlscertpath=" + n.TLSCertPath,
		"--macaroonpath=" + n.AdminMacPath,
		"bakemacaroon", "--save_to=" + path}, perms...)
	out, err := exec.CommandContext(ctx, binaries.Lncli, args...).
		CombinedOutput()
	require.NoError(t, err, "lncli bakemacaroon: %s", out)
	return path
}

// permStrings is the lncli form of the permissions the RPCs need.
func permStrings(rpcs []common.RPCPermission) []string {
	var out []string
	for _, p := range common.PermissionList(rpcs) {
		out = append(out, p.String())
	}
	return out
}

// refusedStart runs satstream-receiver with r's arguments plus extra,
// expects it to refuse to start, and returns its stderr, which must be
// exactly one line.
func (r *rcv) refusedStart(ctx context.Context, extra ...string) string {
	t := r.t
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	r.runs++
	logPath := filepath.Join(r.dir, fmt.Sprintf("run%d.log", r.runs))
	f, err := os.Create(logPath)
	require.NoError(t, err)
	defer f.Close()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, r.bin,
		append(append([]string{}, r.args...), extra...)...)
	cmd.Stdout, cmd.Stderr = f, &stderr
	err = cmd.Run()
	require.NoError(t, ctx.Err(), "receiver did not give up: %s",
		tail(logPath, 20))
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "receiver started: %s",
		tail(logPath, 20))
	require.Equal(t, 1, exit.ExitCode())
	out := stderr.String()
	require.Equal(t, 1, strings.Count(out, "\n"), "not one line: %q", out)
	name := filepath.Base(r.bin)
	require.True(t, strings.HasPrefix(out, name+": "), out)
	t.Logf("%s said: %s", name, strings.TrimSpace(out))
	return out
}

// payFrom pays dest through a given lndclient connection (a daemon's own,
// with its own macaroon), the way satstream-sender does.
func payFrom(ctx context.Context, router lndclient.RouterClient,
	dest route.Vertex, amt btcutil.Amount,
	records map[uint64][]byte) (lndclient.PaymentStatus, error) {

	var preimage lntypes.Preimage
	if _, err := rand.Read(preimage[:]); err != nil {
		return lndclient.PaymentStatus{}, err
	}
	hash := preimage.Hash()
	custom := map[uint64][]byte{record.KeySendType: preimage[:]}
	for k, v := range records {
		custom[k] = v
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	statuses, errs, err := router.SendPayment(ctx,
		lndclient.SendPaymentRequest{
			Target: dest, Amount: amt, PaymentHash: &hash,
			CustomRecords: custom, MaxFee: 100,
			Timeout: 60 * time.Second,
		})
	if err != nil {
		return lndclient.PaymentStatus{}, err
	}
	for {
		select {
		case s := <-statuses:
			if s.State == lnrpc.Payment_SUCCEEDED ||
				s.State == lnrpc.Payment_FAILED {
				return s, nil
			}
		case err := <-errs:
			return lndclient.PaymentStatus{}, err
		case <-ctx.Done():
			return lndclient.PaymentStatus{}, ctx.Err()
		}
	}
}

// TestRealNode points the daemons at real lnd nodes set up the wrong way
// and checks that each refuses at start-up with one line saying what to
// change; and that least-privilege macaroons baked with lncli are enough
// to stream a payment from sender to receiver.
func TestRealNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	net, nodes := newNetwork(t, ctx,
		regtest.NodeConfig{Name: "alice"},
		regtest.NodeConfig{Name: "carol", ExtraArgs: []string{
			"--keysend-hold-time=30s",
		}},
	)
	alice, carol := nodes[0], nodes[1]
	line(t, ctx, net, alice, carol)
	logs := common.NewLogManager(io.Discard)

	recvMac := bakeMacaroon(t, ctx, carol, "receiver.macaroon",
		permStrings(common.ReceiverMacaroonRPCs())...)
	sendMac := bakeMacaroon(t, ctx, alice, "sender.macaroon",
		permStrings(common.SenderMacaroonRPCs())...)

	t.Run("least-privilege macaroons stream a payment", func(t *testing.T) {
		r := newRcv(t, carol, newHookServer(t).srv.URL)
		r.args = append(r.args, "--lnd.macaroonpath="+recvMac)
		r.start(ctx)
		defer r.stop()
		var open struct {
			ID string `json:"id"`
		}
		require.Equal(t, 201, r.do("POST", "/v1/plans", map[string]any{
			"label": "open", "price_msat_per_sec": 10,
			"min_payment_msat": 10_000, "grace_period_sec": 60,
			"max_prepay_sec": 86_400, "open_enrolment": true,
		}, &open))

		// The sender's connection, with its own baked macaroon and the
		// sender's start-up check.
		services, err := common.ConnectLnd(ctx, common.LndConfig{
			Host: alice.RPCAddr, TLSPath: alice.TLSCertPath,
			MacaroonPath: sendMac, RPCTimeout: 30 * time.Second,
		}, "regtest", logs.Logger("LNDC"), common.SenderRequirements())
		require.NoError(t, err)
		defer services.Close()

		id, err := tlv.NewSubscriptionID()
		require.NoError(t, err)
		st, err := payFrom(ctx, services.Router, carol.PubKey, 20,
			records(t, id.String(), 1, open.ID, false))
		require.NoError(t, err)
		require.Equal(t, lnrpc.Payment_SUCCEEDED, st.State)
		v := r.sub(id.String())
		require.Equal(t, "active", v.State)
		require.EqualValues(t, 2000, v.TotalSeconds)

		// A refused payment fails back: settle and cancel both worked
		// with invoices:write alone.
		st, err = payFrom(ctx, services.Router, carol.PubKey, 20,
			records(t, id.String(), 1, open.ID, false))
		require.NoError(t, err)
		require.Equal(t, lnrpc.Payment_FAILED, st.State)
	})

	t.Run("lndconnect URI", func(t *testing.T) {
		pemBytes, err := os.ReadFile(carol.TLSCertPath)
		require.NoError(t, err)
		block, _ := pem.Decode(pemBytes)
		require.NotNil(t, block)
		mac, err := os.ReadFile(recvMac)
		require.NoError(t, err)
		uri := "lndconnect://" + carol.RPCAddr + "?cert=" +
			base64.RawURLEncoding.EncodeToString(block.Bytes) +
			"&macaroon=" + base64.RawURLEncoding.EncodeToString(mac)

		cfg := common.DefaultLndConfig()
		cfg.Connect = uri
		services, err := common.ConnectLnd(ctx, cfg, "regtest",
			logs.Logger("LNDC"),
			common.ReceiverRequirements("regtest", false))
		require.NoError(t, err)
		services.Close()
	})

	t.Run("wrong network", func(t *testing.T) {
		_, err := common.ConnectLnd(ctx, common.LndConfig{
			Host: alice.RPCAddr, TLSPath: alice.TLSCertPath,
			MacaroonPath: sendMac, RPCTimeout: 30 * time.Second,
		}, "mainnet", logs.Logger("LNDC"), common.SenderRequirements())
		require.ErrorIs(t, err, common.ErrWrongNetwork)
		require.EqualError(t, err, "lnd at "+alice.RPCAddr+" runs on "+
			"regtest, not mainnet: set --network=regtest or connect "+
			"to a mainnet node")
	})

	t.Run("sender macaroon without offchain:write", func(t *testing.T) {
		readOnly := bakeMacaroon(t, ctx, alice, "ro.macaroon",
			"info:read", "offchain:read")
		_, err := common.ConnectLnd(ctx, common.LndConfig{
			Host: alice.RPCAddr, TLSPath: alice.TLSCertPath,
			MacaroonPath: readOnly, RPCTimeout: 30 * time.Second,
		}, "regtest", logs.Logger("LNDC"), common.SenderRequirements())
		require.ErrorIs(t, err, common.ErrMacaroonPermissions)
		require.ErrorContains(t, err, "lacks offchain:write (for "+
			"SendPaymentV2)")
	})

	t.Run("receiver macaroon without invoices:write", func(t *testing.T) {
		noWrite := bakeMacaroon(t, ctx, carol, "nowrite.macaroon",
			"info:read", "invoices:read", "offchain:read",
			"onchain:read", "peers:read")
		r := newRcv(t, carol, "http://127.0.0.1:1/hook")
		out := r.refusedStart(ctx, "--lnd.macaroonpath="+noWrite)
		require.Contains(t, out, "lacks invoices:write (for "+
			"SettleInvoice, CancelInvoice): bake one with `lncli "+
			"bakemacaroon")
	})

	t.Run("accept-keysend off", func(t *testing.T) {
		carol.SetAcceptKeysend(false)
		require.NoError(t, carol.Restart(ctx))
		r := newRcv(t, carol, "http://127.0.0.1:1/hook")
		out := r.refusedStart(ctx)
		require.Contains(t, out, "lnd at "+carol.RPCAddr+" has "+
			"accept-keysend off: add accept-keysend=true to lnd.conf "+
			"(or start lnd with --accept-keysend) and restart lnd")
	})

	t.Run("no keysend-hold-time", func(t *testing.T) {
		carol.SetAcceptKeysend(true)
		carol.SetExtraArgs()
		require.NoError(t, carol.Restart(ctx))
		r := newRcv(t, carol, "http://127.0.0.1:1/hook")
		out := r.refusedStart(ctx)
		require.Contains(t, out, "lnd at "+carol.RPCAddr+" has no "+
			"keysend-hold-time")
		require.Contains(t, out, "add keysend-hold-time=30s to "+
			"lnd.conf (or start lnd with --keysend-hold-time=30s) "+
			"and restart lnd, or pass --allownoholdtime")

		// Told to accept it, the receiver runs and says so.
		r.args = append(r.args, "--allownoholdtime")
		r.start(ctx)
		var h map[string]any
		require.Equal(t, 200, r.do("GET", "/v1/health", nil, &h))
		require.Equal(t, true, h["lnd_settles_keysend_itself"])
		r.stop()
		log, err := os.ReadFile(filepath.Join(r.dir,
			fmt.Sprintf("run%d.log", r.runs)))
		require.NoError(t, err)
		require.Contains(t, string(log), "RUNNING WITHOUT REFUSALS")
	})

	// Leave carol as the other tests expect nodes to be.
	carol.SetExtraArgs("--keysend-hold-time=30s")
	if err := carol.Restart(ctx); err != nil && !errors.Is(err,
		context.Canceled) {

		require.NoError(t, err)
	}
}
