//go:build itest

package itest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/satstream/satstream/receiver"
	"github.com/satstream/satstream/sender"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

// TestSenderToReceiver runs alice's satstream-sender against carol's
// satstream-receiver, through bob, and checks that the sender's ledger,
// the receiver's credits and lnd's payment and invoice lists agree to the
// msat.
func TestSenderToReceiver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	began := time.Now()

	_, nodes := holdLine(t, ctx)
	alice, carol := nodes[0], nodes[2]

	rcfg := receiver.DefaultConfig()
	rcfg.DataDir = t.TempDir()
	rcfg.ConfigFile = ""
	rcfg.Network = "regtest"
	rcfg.MetricsListen = ""
	rcfg.Lnd.Host = carol.RPCAddr
	rcfg.Lnd.TLSPath = carol.TLSCertPath
	rcfg.Lnd.MacaroonPath = carol.AdminMacPath
	rcfg.API.Listen = "127.0.0.1:0"
	require.NoError(t, rcfg.Validate())
	rd, err := receiver.New(rcfg, common.NewLogManager(&testWriter{t: t}))
	require.NoError(t, err)
	require.NoError(t, rd.Start(ctx))
	defer rd.Stop()

	tokens, err := common.LoadOrCreateTokens(rcfg.DataDir)
	require.NoError(t, err)
	client := &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true}}}
	rtry := func(method, path string, body, out any) int {
		t.Helper()
		var buf bytes.Buffer
		if body != nil {
			require.NoError(t, json.NewEncoder(&buf).Encode(body))
		}
		req, err := http.NewRequestWithContext(ctx, method,
			"https://"+rd.APIAddr()+path, &buf)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tokens.Admin)
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		if resp.StatusCode < 300 && out != nil {
			require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
		}
		return resp.StatusCode
	}
	rcall := func(method, path string, body, out any) {
		t.Helper()
		code := rtry(method, path, body, out)
		require.Less(t, code, 300, "%s %s", method, path)
	}

	// 1 sat/s, 2 s per payment by default.
	var plan struct {
		ID string `json:"id"`
	}
	rcall("POST", "/v1/plans", map[string]any{
		"label": "e2e", "price_msat_per_sec": 1000,
		"min_payment_msat": 1000, "max_prepay_sec": 600,
		"default_increment_sec": 2, "grace_period_sec": 10,
	}, &plan)
	var sub struct {
		ID    string `json:"id"`
		Offer string `json:"offer"`
	}
	rcall("POST", "/v1/subscriptions", map[string]any{"plan_id": plan.ID},
		&sub)
	// The offer names carol's node, known once the receiver reached lnd.
	require.NoError(t, regtest.Poll(ctx, time.Minute, func() error {
		if sub.Offer != "" {
			return nil
		}
		code := rtry("GET", "/v1/subscriptions/"+sub.ID+"/offer", nil,
			&sub)
		return fmt.Errorf("offer: status %d", code)
	}))
	require.NotEmpty(t, sub.Offer)

	scfg := senderConfig(t, alice)
	sd, err := sender.New(scfg, common.NewLogManager(&testWriter{t: t}))
	require.NoError(t, err)
	require.NoError(t, sd.Start(ctx))
	two, four := 2*time.Second, 4*time.Second
	v, err := sd.Engine().Add(ctx, sub.Offer, sender.TermsRequest{
		Increment: &two, Buffer: &four,
		FeeLimitPPM: u32p(1_000_000), FeeLimit: msatp(1_100),
	}, false)
	require.NoError(t, err)
	require.Equal(t, sub.ID, v.ID)
	subID, err := tlv.ParseSubscriptionID(v.Secret)
	require.NoError(t, err)

	require.NoError(t, regtest.Poll(ctx, 2*time.Minute, func() error {
		v, err := sd.Engine().Get(store.SubID(subID))
		if err != nil || v.Payments < 8 {
			return fmt.Errorf("not yet")
		}
		return nil
	}))
	_, err = sd.Engine().Apply(ctx, store.SubID(subID), sender.OpPause, false)
	require.NoError(t, err)
	require.NoError(t, regtest.Poll(ctx, time.Minute, func() error {
		v, _ := sd.Engine().Get(store.SubID(subID))
		if v.InFlight != 0 {
			return fmt.Errorf("in flight")
		}
		return nil
	}))
	require.NoError(t, sd.Stop())

	// The receiver's view.
	var rpays struct {
		Payments []struct {
			Hash     string `json:"payment_hash"`
			Sequence uint64 `json:"sequence"`
			Amount   uint64 `json:"amount_msat"`
			State    string `json:"state"`
			Settled  bool   `json:"settled"`
		} `json:"payments"`
	}
	require.NoError(t, regtest.Poll(ctx, time.Minute, func() error {
		rcall("GET", "/v1/subscriptions/"+sub.ID+"/payments?limit=1000",
			nil, &rpays)
		for _, p := range rpays.Payments {
			if p.State == "credited" && !p.Settled {
				return fmt.Errorf("credit of %s not settled yet",
					p.Hash)
			}
		}
		return nil
	}))
	credited := map[lntypes.Hash]lnwire.MilliSatoshi{}
	for _, p := range rpays.Payments {
		if p.State == "credited" {
			h, err := lntypes.MakeHashFromStr(p.Hash)
			require.NoError(t, err)
			credited[h] = lnwire.MilliSatoshi(p.Amount)
		}
	}

	attempts := ledgerAttempts(t, ctx, scfg.DataDir, subID)
	pays := alicePayments(t, ctx, alice)
	inv, err := carol.RPC().ListInvoices(ctx, &lnrpc.ListInvoiceRequest{
		NumMaxInvoices: 100000})
	require.NoError(t, err)
	settled := map[lntypes.Hash]lnwire.MilliSatoshi{}
	for _, i := range inv.Invoices {
		if i.State == lnrpc.Invoice_SETTLED {
			h, _ := lntypes.MakeHash(i.RHash)
			settled[h] = lnwire.MilliSatoshi(i.AmtPaidMsat)
		}
	}

	var ledgerSum lnwire.MilliSatoshi
	n := 0
	for _, a := range attempts {
		if a.State != store.AttemptSucceeded {
			continue
		}
		n++
		h := lntypes.Hash(a.Hash)
		ledgerSum += a.Amount
		require.Equal(t, lnrpc.Payment_SUCCEEDED, pays[h].status)
		require.Equal(t, a.Amount, pays[h].value)
		require.Equal(t, a.Fee, pays[h].fee)
		require.Equal(t, a.Amount, settled[h], "seq %d", a.Seq)
		require.Equal(t, a.Amount, credited[h], "seq %d", a.Seq)
	}
	var creditSum lnwire.MilliSatoshi
	for _, c := range credited {
		creditSum += c
	}
	require.Equal(t, ledgerSum, creditSum)
	require.Len(t, credited, n)

	var rsub struct {
		TotalPaid uint64 `json:"total_paid_msat"`
		Payments  uint64 `json:"payments"`
	}
	rcall("GET", "/v1/subscriptions/"+sub.ID, nil, &rsub)
	require.EqualValues(t, ledgerSum, rsub.TotalPaid)
	require.EqualValues(t, n, rsub.Payments)
	t.Logf("sender -> receiver: %d payments, %v, agree; took %v", n,
		ledgerSum, time.Since(began).Round(time.Second))
}
