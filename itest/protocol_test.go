//go:build itest

package itest

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/invoices"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

// specVector is one valid record vector of docs/protocol.md, read from the
// same file the spec is generated from.
type specVector struct {
	Name   string `json:"name"`
	Fields struct {
		Version        uint8   `json:"version"`
		SubscriptionID string  `json:"subscription_id"`
		Sequence       uint64  `json:"sequence"`
		PlanID         *string `json:"plan_id"`
		Cancel         bool    `json:"cancel"`
	} `json:"fields"`
	LncliData string `json:"lncli_data"`
}

// lncli runs the lncli binary against node and returns its output.
func lncli(t *testing.T, ctx context.Context, node *regtest.Node,
	args ...string) ([]byte, error) {

	t.Helper()
	base := []string{
		"--rpcserver=" + node.RPCAddr,
		"--tlscertpath=" + node.TLSCertPath,
		"--macaroonpath=" + node.AdminMacPath,
		"--network=regtest",
	}
	cmd := exec.CommandContext(ctx, binaries.Lncli, append(base, args...)...)
	return cmd.CombinedOutput()
}

// TestProtocolVectorsViaLncli pays each valid record vector of the spec
// with nothing but `lncli sendpayment --keysend --data ...` and checks
// that our decoder, fed what the receiving lnd hands its applications,
// reads exactly the spec's fields. This is what another implementation
// (or a person with lncli) would do.
func TestProtocolVectorsViaLncli(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	raw, err := os.ReadFile("../tlv/testdata/vectors.json")
	require.NoError(t, err)
	var file struct {
		Valid []specVector `json:"records_valid"`
	}
	require.NoError(t, json.Unmarshal(raw, &file))
	require.NotEmpty(t, file.Valid)

	net, nodes := newNetwork(t, ctx,
		regtest.NodeConfig{Name: "alice"},
		regtest.NodeConfig{Name: "bob"},
	)
	alice, bob := nodes[0], nodes[1]
	line(t, ctx, net, alice, bob)

	subCtx, cancelSub := context.WithCancel(ctx)
	defer cancelSub()
	invs, errs, err := bob.Services().Client.SubscribeInvoices(subCtx,
		lndclient.InvoiceSubscriptionRequest{})
	require.NoError(t, err)

	for _, v := range file.Valid {
		t.Run(v.Name, func(t *testing.T) {
			out, err := lncli(t, ctx, alice, "sendpayment",
				"--keysend", "--dest", bob.PubKeyHex(),
				"--amt", "1000", "--fee_limit", "10",
				"--data", v.LncliData)
			require.NoError(t, err, "lncli: %s", out)

			var inv *lndclient.Invoice
			for inv == nil {
				select {
				case i := <-invs:
					if i.IsKeysend &&
						i.State == invoices.ContractSettled {
						inv = i
					}
				case err := <-errs:
					require.NoError(t, err)
				case <-ctx.Done():
					t.Fatal("no settled keysend invoice")
				}
			}
			require.Len(t, inv.Htlcs, 1)

			got, err := tlv.Decode(inv.Htlcs[0].CustomRecords)
			require.NoError(t, err)
			require.Equal(t, v.Fields.Version, got.Version)
			require.Equal(t, v.Fields.SubscriptionID,
				hex.EncodeToString(got.SubscriptionID[:]))
			require.Equal(t, v.Fields.Sequence, got.Sequence)
			require.Equal(t, v.Fields.Cancel, got.Cancel)
			if v.Fields.PlanID == nil {
				require.Nil(t, got.PlanID)
			} else {
				require.NotNil(t, got.PlanID)
				require.Equal(t, *v.Fields.PlanID,
					hex.EncodeToString(got.PlanID[:]))
			}
		})
	}
}
