//go:build itest

package itest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/invoices"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/satstream/satstream/sender"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

// credit is what the in-test provider credited for one settled payment.
type credit struct {
	sub  tlv.SubscriptionID
	seq  uint64
	amt  lnwire.MilliSatoshi
	hash lntypes.Hash
}

// provider stands in for satstream-receiver on carol (run with
// --keysend-hold-time): it settles each satstream payment whose
// (subscription, sequence) it has not credited, and refuses cancels,
// duplicates and subscriptions it was told to refuse. It survives carol
// restarts by subscribing again.
type provider struct {
	node *regtest.Node

	mu      sync.Mutex
	credits map[lntypes.Hash]credit
	seqs    map[string]bool
	refuse  map[tlv.SubscriptionID]bool
	cancels map[tlv.SubscriptionID]int
	dups    int
}

func newProvider(node *regtest.Node) *provider {
	return &provider{node: node, credits: map[lntypes.Hash]credit{},
		seqs: map[string]bool{}, refuse: map[tlv.SubscriptionID]bool{},
		cancels: map[tlv.SubscriptionID]int{}}
}

func (p *provider) run(ctx context.Context) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		if p.node.Running() {
			p.serve(ctx)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
}

// serve handles held keysends until the subscription breaks.
func (p *provider) serve(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// While lnd is (re)starting the harness has no clients yet and
	// Services panics; try again on the next tick.
	defer func() { _ = recover() }()
	svc := p.node.Services()
	if svc == nil || svc.Client == nil {
		return
	}
	invs, errs, err := svc.Client.SubscribeInvoices(ctx,
		lndclient.InvoiceSubscriptionRequest{})
	if err != nil {
		return
	}
	// Held payments that arrived while we were away.
	if resp, err := p.node.RPC().ListInvoices(ctx,
		&lnrpc.ListInvoiceRequest{NumMaxInvoices: 100000}); err == nil {
		for _, inv := range resp.Invoices {
			if inv.State == lnrpc.Invoice_ACCEPTED {
				h, _ := lntypes.MakeHash(inv.RHash)
				go p.decide(ctx, svc, h)
			}
		}
	}
	for {
		select {
		case inv := <-invs:
			if inv.IsKeysend && inv.State == invoices.ContractOpen {
				go p.decide(ctx, svc, inv.Hash)
			}
		case <-errs:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (p *provider) decide(ctx context.Context, svc *lndclient.LndServices,
	hash lntypes.Hash) {

	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	updates, errs, err := svc.Invoices.SubscribeSingleInvoice(ctx, hash)
	if err != nil {
		return
	}
	var u lndclient.InvoiceUpdate
	for u.State != invoices.ContractAccepted {
		select {
		case u = <-updates:
			if u.State == invoices.ContractSettled ||
				u.State == invoices.ContractCanceled {
				return
			}
		case <-errs:
			return
		case <-ctx.Done():
			return
		}
	}
	htlc := u.Htlcs[0]
	recs, err := tlv.Decode(htlc.CustomRecords)
	if err != nil {
		_ = svc.Invoices.CancelInvoice(ctx, hash)
		return
	}
	key := fmt.Sprintf("%s/%d", recs.SubscriptionID, recs.Sequence)

	p.mu.Lock()
	refuse := recs.Cancel || p.refuse[recs.SubscriptionID] || p.seqs[key]
	if recs.Cancel {
		p.cancels[recs.SubscriptionID]++
	}
	if p.seqs[key] {
		p.dups++
	}
	if !refuse {
		p.seqs[key] = true
	}
	p.mu.Unlock()

	if refuse {
		_ = svc.Invoices.CancelInvoice(ctx, hash)
		return
	}
	pre, err := lntypes.MakePreimage(htlc.CustomRecords[record.KeySendType])
	if err != nil {
		return
	}
	if err := svc.Invoices.SettleInvoice(ctx, pre); err != nil {
		p.mu.Lock()
		delete(p.seqs, key)
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	p.credits[hash] = credit{sub: recs.SubscriptionID, seq: recs.Sequence,
		amt: htlc.Amount, hash: hash}
	p.mu.Unlock()
}

// creditsOf returns the provider's credits for one subscription.
func (p *provider) creditsOf(sub tlv.SubscriptionID) map[lntypes.Hash]credit {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[lntypes.Hash]credit{}
	for h, c := range p.credits {
		if c.sub == sub {
			out[h] = c
		}
	}
	return out
}

// makeOffer builds a personal offer to node at 1 sat/s.
func makeOffer(t *testing.T, node *regtest.Node) (string, tlv.SubscriptionID) {
	t.Helper()
	id, err := tlv.NewSubscriptionID()
	require.NoError(t, err)
	o := &tlv.Offer{
		Node:             node.PubKey,
		SubscriptionID:   &id,
		PriceMsatPerSec:  1000,
		MinPayment:       1000,
		DefaultIncrement: 2 * time.Second,
		GracePeriod:      10 * time.Second,
		MaxPrepay:        10 * time.Minute,
	}
	require.NoError(t, o.Validate())
	return o.String(), id
}

// senderConfig points a sender at alice's lnd with a fresh data dir.
func senderConfig(t *testing.T, alice *regtest.Node) *sender.Config {
	cfg := sender.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Network = "regtest"
	cfg.DebugLevel = "info"
	cfg.Lnd.Host = alice.RPCAddr
	cfg.Lnd.TLSPath = alice.TLSCertPath
	cfg.Lnd.MacaroonPath = alice.AdminMacPath
	cfg.API.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen = ""
	cfg.Payments.Timeout = 10 * time.Second
	cfg.Payments.BackoffInitial = 500 * time.Millisecond
	cfg.Payments.BackoffMax = 3 * time.Second
	require.NoError(t, cfg.Validate())
	return cfg
}

// lndPayment is one of alice's payments as lnd lists it.
type lndPayment struct {
	status lnrpc.Payment_PaymentStatus
	value  lnwire.MilliSatoshi
	fee    lnwire.MilliSatoshi
	sub    tlv.SubscriptionID
	seq    uint64
}

// alicePayments lists alice's satstream payments by hash.
func alicePayments(t *testing.T, ctx context.Context,
	alice *regtest.Node) map[lntypes.Hash]lndPayment {

	resp, err := alice.RPC().ListPayments(ctx, &lnrpc.ListPaymentsRequest{
		IncludeIncomplete: true, MaxPayments: 100000,
	})
	require.NoError(t, err)
	out := map[lntypes.Hash]lndPayment{}
	for _, p := range resp.Payments {
		h, err := lntypes.MakeHashFromStr(p.PaymentHash)
		require.NoError(t, err)
		lp := lndPayment{status: p.Status,
			value: lnwire.MilliSatoshi(p.ValueMsat),
			fee:   lnwire.MilliSatoshi(p.FeeMsat)}
		for _, htlc := range p.Htlcs {
			hops := htlc.Route.Hops
			recs, err := tlv.Decode(hops[len(hops)-1].CustomRecords)
			if err == nil {
				lp.sub, lp.seq = recs.SubscriptionID, recs.Sequence
			}
		}
		out[h] = lp
	}
	return out
}

// ledger reads a subscription's attempts from a sender's store.
func ledgerAttempts(t *testing.T, ctx context.Context, dir string,
	sub tlv.SubscriptionID) []*store.Attempt {

	db, err := store.Open(ctx, filepath.Join(dir, "ledger"),
		store.DefaultOptions())
	require.NoError(t, err)
	defer db.Close()
	var out []*store.Attempt
	require.NoError(t, db.Sender().View(ctx, func(tx store.SenderTx) error {
		out = nil
		return tx.ForEachAttempt(store.SubID(sub), 0,
			func(a *store.Attempt) error {
				out = append(out, a)
				return nil
			})
	}))
	return out
}

// checkAgreement checks that the sender's ledger, the provider's credits
// and alice's and carol's lnd agree to the msat for one subscription, and
// that no sequence was paid twice.
func checkAgreement(t *testing.T, ctx context.Context, alice, carol *regtest.Node,
	prov *provider, dir string, sub tlv.SubscriptionID) int {

	attempts := ledgerAttempts(t, ctx, dir, sub)
	credits := prov.creditsOf(sub)
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

	succeeded := 0
	seqPaid := map[uint64]lntypes.Hash{}
	var ledgerSum, lndSum, creditSum lnwire.MilliSatoshi
	for _, a := range attempts {
		h := lntypes.Hash(a.Hash)
		lp, inLnd := pays[h]
		switch a.State {
		case store.AttemptSucceeded:
			succeeded++
			require.True(t, inLnd, "seq %d not in lnd", a.Seq)
			require.Equal(t, lnrpc.Payment_SUCCEEDED, lp.status)
			require.Equal(t, a.Amount, lp.value, "seq %d", a.Seq)
			require.Equal(t, a.Fee, lp.fee, "seq %d", a.Seq)
			if !a.Cancel {
				c, ok := credits[h]
				require.True(t, ok, "seq %d not credited", a.Seq)
				require.Equal(t, a.Amount, c.amt)
				require.Equal(t, a.Seq, c.seq)
				require.Equal(t, a.Amount, settled[h])
			}
			ledgerSum += a.Amount
		default:
			if inLnd {
				require.NotEqual(t, lnrpc.Payment_SUCCEEDED,
					lp.status, "seq %d settled in lnd but "+
						"%v in the ledger", a.Seq, a.State)
			}
		}
	}
	for h, lp := range pays {
		if lp.sub != sub || lp.status != lnrpc.Payment_SUCCEEDED {
			continue
		}
		prev, dup := seqPaid[lp.seq]
		require.False(t, dup, "sequence %d paid twice (%v, %v)",
			lp.seq, prev, h)
		seqPaid[lp.seq] = h
		lndSum += lp.value
	}
	for _, c := range credits {
		creditSum += c.amt
	}
	require.Equal(t, ledgerSum, lndSum)
	require.Equal(t, ledgerSum, creditSum)
	return succeeded
}

// TestSender runs alice's sender against a provider on carol, one hop away
// through bob, on one small network: streaming with agreement to the msat,
// a cap, a refusal, the receiver's lnd going away and coming back, and
// SIGKILLs of a sender process mid-stream.
func TestSender(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	began := time.Now()

	net, nodes := holdLine(t, ctx)
	alice, carol := nodes[0], nodes[2]
	t.Logf("network ready after %v", time.Since(began).Round(time.Second))

	prov := newProvider(carol)
	provCtx, stopProv := context.WithCancel(ctx)
	defer stopProv()
	go prov.run(provCtx)

	cfg := senderConfig(t, alice)
	d, err := sender.New(cfg, common.NewLogManager(&testWriter{t: t}))
	require.NoError(t, err)
	require.NoError(t, d.Start(ctx))
	stopped := false
	defer func() {
		if !stopped {
			_ = d.Stop()
		}
	}()
	eng := d.Engine()
	two, four := 2*time.Second, 4*time.Second
	view := func(id tlv.SubscriptionID) *sender.View {
		v, err := eng.Get(store.SubID(id))
		require.NoError(t, err)
		return v
	}
	poll := func(timeout time.Duration, what string, f func() bool) {
		t.Helper()
		require.NoError(t, regtest.Poll(ctx, timeout, func() error {
			if f() {
				return nil
			}
			return fmt.Errorf("not yet: %s", what)
		}), what)
	}

	// The API is up, over TLS, with the admin token.
	checkAPI(t, cfg, d.APIAddr())

	streamOffer, streamID := makeOffer(t, carol)
	// Payments of 2 sat pay bob's 1 sat base fee: allow it.
	withFees := func(r sender.TermsRequest) sender.TermsRequest {
		r.FeeLimitPPM = u32p(1_000_000)
		if r.FeeLimit == nil {
			r.FeeLimit = msatp(1_100)
		}
		return r
	}
	_, err = eng.Add(ctx, streamOffer, withFees(sender.TermsRequest{
		Increment: &two, Buffer: &four}), false)
	require.NoError(t, err)

	t.Run("streams and agrees to the msat", func(t *testing.T) {
		poll(2*time.Minute, "10 payments", func() bool {
			return view(streamID).Payments >= 10
		})
	})

	t.Run("receiver offline: waits with backoff, resumes by itself", func(t *testing.T) {
		require.NoError(t, carol.Stop())
		poll(2*time.Minute, "waiting state", func() bool {
			return view(streamID).State == sender.StateWaiting
		})
		v := view(streamID)
		require.Contains(t, v.Waiting, "since")
		t.Logf("while carol is down: %s", v.Waiting)
		before := v.Payments
		require.NoError(t, carol.Start(ctx))
		require.NoError(t, net.WaitForRoute(ctx, alice, carol, 1000))
		poll(3*time.Minute, "payments resume", func() bool {
			v := view(streamID)
			return v.State == sender.StateActive &&
				v.Payments >= before+3
		})
	})

	t.Run("cap stops the stream exactly at the cap", func(t *testing.T) {
		offer, id := makeOffer(t, carol)
		// Each payment is 2,000 msat plus a 1,100 msat fee limit:
		// five fit in 15,500 msat, a sixth does not.
		_, err := eng.Add(ctx, offer, withFees(sender.TermsRequest{
			Increment: &two, Buffer: &four,
			MaxTotal: msatp(5 * 3_100)}), false)
		require.NoError(t, err)
		poll(2*time.Minute, "cap reached", func() bool {
			return view(id).State == sender.StateCapReached &&
				view(id).InFlight == 0
		})
		v := view(id)
		require.EqualValues(t, 5, v.Payments, v.Reason)
		require.LessOrEqual(t, v.SentMsat+v.FeesMsat, uint64(5*3_100))
		require.Contains(t, v.Reason, "total cap")
	})

	t.Run("refused subscription stops", func(t *testing.T) {
		offer, id := makeOffer(t, carol)
		prov.mu.Lock()
		prov.refuse[id] = true
		prov.mu.Unlock()
		_, err := eng.Add(ctx, offer, withFees(sender.TermsRequest{
			Increment: &two, Buffer: &four}), false)
		require.NoError(t, err)
		poll(2*time.Minute, "refused", func() bool {
			return view(id).State == sender.StateRefused
		})
		require.Zero(t, view(id).Payments)
		require.Contains(t, view(id).Reason, "incorrect_payment_details")
	})

	t.Run("cancel tells the receiver", func(t *testing.T) {
		_, err := eng.Apply(ctx, store.SubID(streamID), sender.OpCancel, true)
		require.NoError(t, err)
		poll(time.Minute, "cancel acknowledged", func() bool {
			return !view(streamID).CancelPending
		})
		require.Contains(t, view(streamID).Reason, "acknowledged")
		prov.mu.Lock()
		require.Equal(t, 1, prov.cancels[streamID])
		prov.mu.Unlock()
	})

	require.NoError(t, d.Stop())
	stopped = true
	n := checkAgreement(t, ctx, alice, carol, prov, cfg.NetworkDir(), streamID)
	t.Logf("stream: %d payments agree in ledger, provider, lnd", n)

	t.Run("SIGKILL mid-stream never pays a sequence twice", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "satstream-sender")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin,
			"github.com/satstream/satstream/cmd/satstream-sender")
		out, err := build.CombinedOutput()
		require.NoError(t, err, string(out))

		kcfg := senderConfig(t, alice)
		offer, id := makeOffer(t, carol)
		args := []string{
			"--datadir=" + kcfg.DataDir, "--network=regtest",
			"--lnd.host=" + alice.RPCAddr,
			"--lnd.tlspath=" + alice.TLSCertPath,
			"--lnd.macaroonpath=" + alice.AdminMacPath,
			"--api.listen=127.0.0.1:0", "--metrics.listen=",
			"--payments.timeout=10s",
			"--payments.backoffinitial=500ms",
			"--payments.backoffmax=3s",
		}

		// Add the subscription in-process, then hand the ledger to
		// the process.
		d, err := sender.New(kcfg, common.NewLogManager(&testWriter{t: t}))
		require.NoError(t, err)
		require.NoError(t, d.Start(ctx))
		one := time.Second
		_, err = d.Engine().Add(ctx, offer, sender.TermsRequest{
			Increment: &one, Buffer: &four,
			FeeLimitPPM: u32p(1_000_000), FeeLimit: msatp(1_100)},
			false)
		require.NoError(t, err)
		require.NoError(t, d.Stop())

		lastCount := 0
		for round := 0; round < 4; round++ {
			logf, err := os.Create(filepath.Join(kcfg.DataDir,
				fmt.Sprintf("run%d.log", round)))
			require.NoError(t, err)
			cmd := exec.Command(bin, args...)
			cmd.Stdout, cmd.Stderr = logf, logf
			require.NoError(t, cmd.Start())
			// Let it pay a few, then kill it mid-stream.
			poll(2*time.Minute, "progress", func() bool {
				n := 0
				for _, p := range alicePayments(t, ctx, alice) {
					if p.sub == id {
						n++
					}
				}
				if n >= lastCount+3 {
					lastCount = n
					return true
				}
				return false
			})
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			_ = cmd.Wait()
			logf.Close()
		}

		// A last clean run resolves whatever was in flight.
		d, err = sender.New(kcfg, common.NewLogManager(&testWriter{t: t}))
		require.NoError(t, err)
		require.NoError(t, d.Start(ctx))
		_, err = d.Engine().Apply(ctx, store.SubID(id), sender.OpPause, false)
		require.NoError(t, err)
		poll(2*time.Minute, "nothing in flight", func() bool {
			v, err := d.Engine().Get(store.SubID(id))
			return err == nil && v.InFlight == 0
		})
		require.NoError(t, d.Stop())

		n := checkAgreement(t, ctx, alice, carol, prov, kcfg.NetworkDir(), id)
		t.Logf("after 4 SIGKILLs: %d payments, none twice", n)
		prov.mu.Lock()
		require.Zero(t, prov.dups, "a sequence reached the receiver twice")
		prov.mu.Unlock()
	})
	t.Logf("TestSender took %v", time.Since(began).Round(time.Second))
}

// checkAPI calls the subscription list over TLS with the read-only token.
func checkAPI(t *testing.T, cfg *sender.Config, addr string) {
	t.Helper()
	tokens, err := common.LoadOrCreateTokens(cfg.NetworkDir())
	require.NoError(t, err)
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, err := http.NewRequest("GET", "https://"+addr+"/v1/subscriptions", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tokens.ReadOnly)
	resp, err := client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func msatp(v uint64) *lnwire.MilliSatoshi {
	m := lnwire.MilliSatoshi(v)
	return &m
}

func u32p(v uint32) *uint32 { return &v }

// testWriter sends daemon logs to the test log.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
