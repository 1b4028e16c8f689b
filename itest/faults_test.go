//go:build itest

package itest

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

// faultHold is carol's keysend hold time in the fault suite: short, so that
// faults longer than it cost seconds, not minutes.
const faultHold = 10 * time.Second

// faultSeedEnv replays a fault run: the suite prints the seed it used.
const faultSeedEnv = "SATSTREAM_FAULT_SEED"

// faultSeed returns the seed from faultSeedEnv, or a fresh one, and prints
// it so that a failure can be replayed.
func faultSeed(t *testing.T) int64 {
	seed := time.Now().UnixNano()
	if s := os.Getenv(faultSeedEnv); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		require.NoError(t, err, "%s=%q", faultSeedEnv, s)
		seed = v
	}
	t.Logf("fault seed %d (replay: %s=%d)", seed, faultSeedEnv, seed)
	return seed
}

// keptDir is a temporary directory that is removed when the test passes
// and kept (its path logged) when it fails, so a daemon's whole log can be
// read after a failed fault run.
func keptDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "satstream-"+strings.ReplaceAll(t.Name(),
		"/", "_")+"-*")
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kept %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// newSnd runs satstream-sender processes beside node, sharing the receiver
// wrapper's process and API plumbing.
func newSnd(t *testing.T, node *regtest.Node) *rcv {
	dir := keptDir(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	s := newRcv(t, node, "")
	s.bin = buildDaemon(t, "satstream-sender")
	s.dir, s.apiAddr = dir, addr
	s.args = []string{
		"--datadir=" + dir,
		"--network=regtest",
		"--lnd.host=" + node.RPCAddr,
		"--lnd.tlspath=" + node.TLSCertPath,
		"--lnd.macaroonpath=" + node.AdminMacPath,
		"--api.listen=" + addr,
		"--metrics.listen=",
		"--debuglevel=debug",
		"--payments.timeout=10s",
		"--payments.backoffinitial=500ms",
		"--payments.backoffmax=3s",
	}
	s.ready = func(h map[string]any) error {
		if st, _ := h["lnd"].(string); !strings.HasPrefix(st, "connected") {
			return fmt.Errorf("sender lnd: %v", h["lnd"])
		}
		return nil
	}
	return s
}

// faultRig is the network, both daemons and the subscriptions the fault
// suite streams.
type faultRig struct {
	t            *testing.T
	ctx          context.Context
	net          *regtest.Network
	alice, carol *regtest.Node
	bob          *regtest.Node
	rcv, snd     *rcv
	hook         *hookServer
	// proxy sits between the receiver and carol's lnd and can slow
	// settle and cancel down.
	proxy *lndProxy
	subs  []string
	// providers are the provider nodes whose settled invoices the
	// invariant counts (carol alone when empty; carol and dave in the
	// cluster test).
	providers []*regtest.Node
	// secrets are the subscriptions' secret ids (what payments
	// carry), in the order of subs, which holds their public ids.
	secrets []string
	rng     *rand.Rand

	faults, checks int
}

// newFaultRig starts alice -> bob -> carol (carol holding for faultHold),
// a receiver process beside carol with a webhook endpoint, a sender
// process beside alice, and n subscriptions streaming 1 sat/s in 2 s
// increments.
//
// prepare, if given, is called with each daemon ("receiver", "sender")
// before its first start, to change its arguments.
func newFaultRig(t *testing.T, ctx context.Context, n int,
	prepare ...func(role string, d *rcv)) *faultRig {

	net, nodes := faultNetwork(t, ctx)
	return startFaultRig(t, ctx, net, nodes, n, backendBadger, prepare...)
}

// faultNetwork starts alice -> bob -> carol, carol holding keysends for
// faultHold.
func faultNetwork(t *testing.T, ctx context.Context) (*regtest.Network,
	[]*regtest.Node) {

	net, nodes := newNetwork(t, ctx,
		regtest.NodeConfig{Name: "alice"},
		regtest.NodeConfig{Name: "bob"},
		regtest.NodeConfig{Name: "carol", ExtraArgs: []string{
			"--keysend-hold-time=" + faultHold.String(),
		}},
	)
	line(t, ctx, net, nodes...)
	return net, nodes
}

// startFaultRig is newFaultRig on a network from faultNetwork, with the
// receiver's ledger on backend. A rig started on a network another rig
// used (and stopped) sees none of the other's subscriptions: its receiver
// has a fresh ledger and its sender a fresh data directory.
func startFaultRig(t *testing.T, ctx context.Context, net *regtest.Network,
	nodes []*regtest.Node, n int, backend string,
	prepare ...func(role string, d *rcv)) *faultRig {

	f := &faultRig{t: t, ctx: ctx, net: net, alice: nodes[0],
		bob: nodes[1], carol: nodes[2], hook: newHookServer(t),
		rng: rand.New(rand.NewSource(faultSeed(t)))}

	f.proxy = newLndProxy(t, f.carol, "/SettleInvoice", "/CancelInvoice")
	f.rcv = newRcv(t, f.carol, f.hook.srv.URL).onBackend(t, backend)
	for i, a := range f.rcv.args {
		if strings.HasPrefix(a, "--lnd.host=") {
			f.rcv.args[i] = "--lnd.host=" + f.proxy.Addr
		}
	}
	for _, p := range prepare {
		p("receiver", f.rcv)
	}
	f.rcv.start(ctx)
	var plan struct {
		ID string `json:"id"`
	}
	require.Equal(t, 201, f.rcv.do("POST", "/v1/plans", map[string]any{
		"label": "faults", "price_msat_per_sec": 1000,
		"min_payment_msat": 1000, "max_prepay_sec": 600,
		"default_increment_sec": 2, "grace_period_sec": 20,
	}, &plan), "create plan")

	f.snd = newSnd(t, f.alice)
	for _, p := range prepare {
		p("sender", f.snd)
	}
	f.snd.start(ctx)
	for i := 0; i < n; i++ {
		var sub struct {
			ID     string `json:"id"`
			Secret string `json:"secret"`
			Offer  string `json:"offer"`
		}
		require.Equal(t, 201, f.rcv.do("POST", "/v1/subscriptions",
			map[string]any{"plan_id": plan.ID}, &sub))
		require.NotEmpty(t, sub.Offer)
		code := f.snd.do("POST", "/v1/subscriptions", map[string]any{
			"offer": sub.Offer, "increment_sec": 2, "buffer_sec": 6,
			"fee_limit_ppm": 1_000_000, "fee_limit_msat": 1_100,
		}, nil)
		require.Equal(t, 201, code, "subscribe %s", sub.ID)
		f.subs = append(f.subs, sub.ID)
		f.secrets = append(f.secrets, sub.Secret)
	}
	f.waitProgress(3)
	return f
}

// stop pauses the rig's subscriptions and stops its sender, then its
// receiver (SIGTERM), so that a rig on another ledger backend can use the
// network.
func (f *faultRig) stop() {
	f.t.Helper()
	f.setPaused(true)
	f.snd.stop()
	f.rcv.stop()
}

// credited returns the receiver's credited payment count per subscription.
func (f *faultRig) credited() map[string]uint64 {
	out := map[string]uint64{}
	for _, id := range f.subs {
		var v subView
		if f.rcv.do("GET", "/v1/subscriptions/"+id, nil, &v) == 200 {
			out[id] = v.Payments
		}
	}
	return out
}

// waitProgress waits until every subscription has at least n more credited
// payments than now: the streams recovered by themselves.
func (f *faultRig) waitProgress(n uint64) {
	f.t.Helper()
	require.NoError(f.t, f.progress(n, 3*time.Minute),
		"streams did not recover")
}

// progress waits up to timeout until every subscription has at least n
// more credited payments than now, and says why not.
func (f *faultRig) progress(n uint64, timeout time.Duration) error {
	start := f.credited()
	return regtest.Poll(f.ctx, timeout, func() error {
		now := f.credited()
		for _, id := range f.subs {
			if now[id] < start[id]+n {
				var sv map[string]any
				f.snd.do("GET", "/v1/subscriptions/"+id, nil, &sv)
				return fmt.Errorf("subscription %s: %d credited "+
					"(want %d); sender says %v %v %v, retry at "+
					"%v, %v in flight", id, now[id], start[id]+n,
					sv["state"], sv["reason"], sv["waiting"],
					sv["retry_at"], sv["in_flight"])
			}
		}
		return nil
	})
}

// waitProgressAfterReconnect is waitProgress after a peer connection of
// the route came back. lnd can lose a channel from its switch's forwarding
// index when a peer reconnects while the old link is still being torn down
// (bob then answers UnknownNextPeer for good, seen on this harness with
// --dev.unsafedisconnect and an immediate reconnect); no payer or receiver
// can mend that, only a new connection does. So if the streams make no
// progress for a minute, the a-b connection is cycled, at most twice.
func (f *faultRig) waitProgressAfterReconnect(n uint64, a, b *regtest.Node) {
	f.t.Helper()
	for try := 0; ; try++ {
		err := f.progress(n, time.Minute)
		if err == nil {
			return
		}
		require.Less(f.t, try, 2, "streams did not recover: %v", err)
		f.t.Logf("no progress after reconnecting %s and %s (%v); "+
			"cycling their connection", a.Name, b.Name, err)
		_ = a.Disconnect(f.ctx, b)
		require.NoError(f.t, a.Connect(f.ctx, b))
	}
}

// pause sleeps a random time in [lo, hi): the moment of the next fault.
// This is not synchronisation; the fault lands wherever the stream is.
func (f *faultRig) pause(lo, hi time.Duration) {
	d := lo + time.Duration(f.rng.Int63n(int64(hi-lo)))
	select {
	case <-time.After(d):
	case <-f.ctx.Done():
	}
}

// setPaused pauses or resumes every subscription at the sender.
func (f *faultRig) setPaused(paused bool) {
	op := "resume"
	if paused {
		op = "pause"
	}
	for _, id := range f.subs {
		code := f.snd.do("POST", "/v1/subscriptions/"+id+"/"+op, nil, nil)
		require.Equal(f.t, 200, code, "%s %s", op, id)
	}
}

// senderPayment is one attempt as the sender's API lists it.
type senderPayment struct {
	Sequence uint64 `json:"sequence"`
	Hash     string `json:"payment_hash"`
	State    string `json:"state"`
	Cancel   bool   `json:"cancel"`
	Amount   uint64 `json:"amount_msat"`
}

// senderPayments lists every attempt of one subscription.
func (f *faultRig) senderPayments(id string) []senderPayment {
	var all []senderPayment
	after := uint64(0)
	for {
		var page struct {
			Payments  []senderPayment `json:"payments"`
			NextAfter string          `json:"next_after"`
		}
		require.Equal(f.t, 200, f.snd.do("GET", fmt.Sprintf(
			"/v1/subscriptions/%s/payments?limit=1000&after=%d", id,
			after), nil, &page))
		all = append(all, page.Payments...)
		if len(page.Payments) < 1000 {
			return all
		}
		var err error
		after, err = strconv.ParseUint(page.NextAfter, 10, 64)
		require.NoError(f.t, err)
	}
}

// receiverPayment is one ledger entry as the receiver's API lists it.
type receiverPayment struct {
	Hash     string `json:"payment_hash"`
	Sequence uint64 `json:"sequence"`
	Amount   uint64 `json:"amount_msat"`
	State    string `json:"state"`
	Settled  bool   `json:"settled"`
}

// receiverPayments lists every ledger entry of one subscription.
func (f *faultRig) receiverPayments(id string) []receiverPayment {
	var all []receiverPayment
	after := uint64(0)
	for {
		var page struct {
			Payments []receiverPayment `json:"payments"`
		}
		require.Equal(f.t, 200, f.rcv.do("GET", fmt.Sprintf(
			"/v1/subscriptions/%s/payments?limit=1000&after_sequence=%d",
			id, after), nil, &page))
		all = append(all, page.Payments...)
		if len(page.Payments) < 1000 {
			return all
		}
		after = page.Payments[len(page.Payments)-1].Sequence
	}
}

// carolSettled returns, per subscription id, the msat of every invoice
// carol's lnd (or every node of f.providers) settled for it, by payment
// hash.
func (f *faultRig) carolSettled() map[string]map[string]uint64 {
	providers := f.providers
	if len(providers) == 0 {
		providers = []*regtest.Node{f.carol}
	}
	return f.settledAt(providers...)
}

// settledAt returns, per subscription id, the msat of every invoice the
// given provider nodes settled for it, by payment hash.
func (f *faultRig) settledAt(providers ...*regtest.Node) map[string]map[string]uint64 {
	out := map[string]map[string]uint64{}
	var invoices []*lnrpc.Invoice
	for _, n := range providers {
		resp, err := n.RPC().ListInvoices(f.ctx,
			&lnrpc.ListInvoiceRequest{NumMaxInvoices: 1_000_000})
		require.NoError(f.t, err)
		invoices = append(invoices, resp.Invoices...)
	}
	for _, inv := range invoices {
		if inv.State != lnrpc.Invoice_SETTLED || len(inv.Htlcs) == 0 {
			continue
		}
		recs, err := tlv.Decode(inv.Htlcs[0].CustomRecords)
		if err != nil {
			continue
		}
		id := recs.SubscriptionID.PublicID().String()
		if out[id] == nil {
			out[id] = map[string]uint64{}
		}
		out[id][hex.EncodeToString(inv.RHash)] = uint64(inv.AmtPaidMsat)
	}
	return out
}

// checkInvariant quiets the streams and checks the ledger invariant for
// every subscription, then lets them stream on:
//   - msat settled by carol's lnd == msat credited by the receiver == msat
//     of the sender's succeeded payments (fees apart), hash by hash;
//   - no credit whose HTLC lnd did not settle, no settled HTLC uncredited;
//   - no (subscription, sequence) credited twice;
//   - the receiver's totals match its payments;
//   - the sender's estimate of paid time agrees with the receiver's
//     paid_until (to the second the sender's API shows, plus latency).
func (f *faultRig) checkInvariant(what string) {
	t := f.t
	t.Helper()
	f.setPaused(true)
	defer f.setPaused(false)

	// Quiet: nothing in flight at the sender, every credit settled.
	require.NoError(t, regtest.Poll(f.ctx, 2*time.Minute, func() error {
		for _, id := range f.subs {
			var sv struct {
				InFlight int `json:"in_flight"`
			}
			if f.snd.do("GET", "/v1/subscriptions/"+id, nil, &sv) != 200 {
				return fmt.Errorf("sender API down")
			}
			if sv.InFlight != 0 {
				return fmt.Errorf("%s: %d in flight", id, sv.InFlight)
			}
			for _, p := range f.receiverPayments(id) {
				if p.State == "credited" && !p.Settled {
					return fmt.Errorf("%s seq %d credited, not "+
						"settled yet", id, p.Sequence)
				}
			}
		}
		return nil
	}), "%s: streams did not go quiet", what)

	settled := f.carolSettled()
	total := uint64(0)
	for _, id := range f.subs {
		credited := map[string]uint64{}
		seqs := map[uint64]string{}
		var creditSum uint64
		for _, p := range f.receiverPayments(id) {
			if p.State != "credited" {
				continue
			}
			prev, dup := seqs[p.Sequence]
			require.False(t, dup, "%s: %s seq %d credited twice (%s, %s)",
				what, id, p.Sequence, prev, p.Hash)
			seqs[p.Sequence] = p.Hash
			credited[p.Hash] = p.Amount
			creditSum += p.Amount
		}
		paid := map[string]uint64{}
		for _, p := range f.senderPayments(id) {
			if p.State == "succeeded" && !p.Cancel {
				paid[p.Hash] = p.Amount
			}
		}
		require.Equal(t, settled[id], credited, "%s: %s: settled by "+
			"lnd vs credited by the receiver", what, id)
		require.Equal(t, paid, credited, "%s: %s: paid by the sender "+
			"vs credited by the receiver", what, id)

		rs := f.rcv.sub(id)
		require.Equal(t, creditSum, rs.TotalPaidMsat, "%s: %s total", what, id)
		require.EqualValues(t, len(credited), rs.Payments, "%s: %s count",
			what, id)

		var sv struct {
			PaidUntil string `json:"paid_until"`
		}
		require.Equal(t, 200, f.snd.do("GET", "/v1/subscriptions/"+id,
			nil, &sv))
		var rv struct {
			PaidUntil time.Time `json:"paid_until"`
		}
		require.Equal(t, 200, f.rcv.do("GET", "/v1/subscriptions/"+id,
			nil, &rv))
		if len(credited) > 0 {
			sp, err := time.Parse(time.RFC3339, sv.PaidUntil)
			require.NoError(t, err, "sender paid_until %q", sv.PaidUntil)
			// The two clocks start a payment's time at different
			// moments (the receiver at its credit, the sender at
			// lnd's SUCCEEDED), so they differ by the settle
			// latency, seconds on a loaded 2-core machine (3.1 s
			// seen at load 18; the soak saw 16 s at 1,000
			// subscriptions). Money is checked exactly above; this
			// bounds only the estimate.
			diff := sp.Sub(rv.PaidUntil)
			require.True(t, diff > -paidUntilSkew && diff < paidUntilSkew,
				"%s: %s: sender estimates paid until %v, receiver "+
					"says %v", what, id, sp, rv.PaidUntil)
		}
		total += uint64(len(credited))
	}
	f.checks++
	t.Logf("%s: invariant holds over %d subscriptions, %d credited "+
		"payments (%d faults injected so far)", what, len(f.subs), total,
		f.faults)
}

// paidUntilSkew bounds how far the sender's paid_until estimate may be
// from the receiver's.
const paidUntilSkew = 10 * time.Second

// TestFaults streams several subscriptions from a sender process to a
// receiver process and breaks things the way real nodes, networks and
// operators do, checking the ledger invariant after each kind of fault.
// The receiver's faults run again (subtest postgres) on a receiver whose
// ledger is on PostgreSQL, on the same network, with its own sender and
// subscriptions.
func TestFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	began := time.Now()
	net, nodes := faultNetwork(t, ctx)
	f := startFaultRig(t, ctx, net, nodes, 3, backendBadger)

	// receiver marks the faults of the receiver's side, which run on
	// every ledger backend.
	faults := []struct {
		name     string
		receiver bool
		run      func(t *testing.T, f *faultRig)
	}{
		{"SenderSIGKILLAtRandomMoments", false, func(t *testing.T, f *faultRig) {
			for i := 0; i < 20; i++ {
				f.pause(100*time.Millisecond, 1500*time.Millisecond)
				f.snd.kill()
				f.faults++
				f.snd.start(f.ctx)
			}
			f.waitProgress(2)
			f.checkInvariant("after 20 sender SIGKILLs")
		}},

		{"ReceiverSIGKILLAtRandomMoments", true, func(t *testing.T, f *faultRig) {
			for i := 0; i < 20; i++ {
				f.pause(100*time.Millisecond, 1500*time.Millisecond)
				f.rcv.kill()
				f.faults++
				f.rcv.start(f.ctx)
			}
			f.waitProgress(2)
			f.checkInvariant("after 20 receiver SIGKILLs")
		}},

		{"ReceiverSIGSTOPBeyondHoldTime", true, func(t *testing.T, f *faultRig) {
			before := f.credited()
			// Only keysends added from now on count (an earlier
			// rig on this network left cancelled ones).
			resp, err := f.carol.RPC().ListInvoices(f.ctx,
				&lnrpc.ListInvoiceRequest{NumMaxInvoices: 1_000_000})
			require.NoError(t, err)
			lastAdd := resp.LastIndexOffset
			p := f.rcv.proc.cmd.Process
			require.NoError(t, p.Signal(syscall.SIGSTOP))
			f.faults++
			// Held payments must fail back to the payer while the receiver
			// is frozen: wait for lnd to cancel some of them.
			require.NoError(t, regtest.Poll(f.ctx, 3*faultHold, func() error {
				resp, err := f.carol.RPC().ListInvoices(f.ctx,
					&lnrpc.ListInvoiceRequest{NumMaxInvoices: 1_000_000})
				if err != nil {
					return err
				}
				for _, inv := range resp.Invoices {
					if inv.State == lnrpc.Invoice_CANCELED &&
						inv.IsKeysend && inv.AddIndex > lastAdd {
						return nil
					}
				}
				return fmt.Errorf("no held keysend expired yet")
			}))
			require.NoError(t, p.Signal(syscall.SIGCONT))
			f.waitProgress(2)
			for id, n := range f.credited() {
				require.Greater(t, n, before[id])
			}
			f.checkInvariant("after SIGSTOP beyond the hold time")
		}},

		{"PayerAndProviderLndRestart", false, func(t *testing.T, f *faultRig) {
			for _, n := range []*regtest.Node{f.alice, f.carol} {
				f.pause(500*time.Millisecond, 2*time.Second)
				require.NoError(t, n.Restart(f.ctx))
				f.faults++
				require.NoError(t, f.bob.Connect(f.ctx, n))
				require.NoError(t, f.net.WaitForRoute(f.ctx, f.alice, f.carol,
					btcutil.Amount(10)))
				f.waitProgressAfterReconnect(2, f.bob, n)
			}
			f.checkInvariant("after restarting alice's and carol's lnd")
		}},

		{"BobCarolLinkCutMidPayment", false, func(t *testing.T, f *faultRig) {
			for i := 0; i < 3; i++ {
				f.pause(200*time.Millisecond, 2*time.Second)
				require.NoError(t, f.bob.Disconnect(f.ctx, f.carol))
				f.faults++
				f.pause(time.Second, 3*time.Second)
				require.NoError(t, f.bob.Connect(f.ctx, f.carol))
				f.waitProgressAfterReconnect(1, f.bob, f.carol)
			}
			f.checkInvariant("after cutting bob-carol three times")
		}},

		{"SlowSettleAndCancelNearAndPastHoldTime", true, func(t *testing.T, f *faultRig) {
			// Decisions that reach lnd late but inside the hold time still
			// settle.
			f.proxy.SetDelay(faultHold * 6 / 10)
			// A failure here must not slow the next fault's settles.
			defer f.proxy.SetDelay(0)
			f.faults++
			f.waitProgress(2)
			f.checkInvariant("with settle/cancel slowed to 0.6 hold times")

			// Past the hold time lnd cancels first: the settle fails and
			// the credit must be reversed while the receiver runs.
			f.proxy.SetDelay(faultHold * 3 / 2)
			f.faults++
			require.NoError(t, regtest.Poll(f.ctx, 3*time.Minute, func() error {
				var page struct {
					Events []struct {
						Type string `json:"type"`
					} `json:"events"`
				}
				for after := 0; ; after += 1000 {
					if f.rcv.do("GET", fmt.Sprintf("/v1/events?limit=1000"+
						"&after=%d", after), nil, &page) != 200 {
						return fmt.Errorf("events API down")
					}
					for _, ev := range page.Events {
						if ev.Type == "payment.reversed" {
							return nil
						}
					}
					if len(page.Events) < 1000 {
						return fmt.Errorf("no credit reversed yet")
					}
				}
			}))
			f.proxy.SetDelay(0)
			f.waitProgress(2)
			f.checkInvariant("after settles slower than the hold time")
		}},

		{"WebhookEndpointDownThenUp", true, func(t *testing.T, f *faultRig) {
			f.hook.setDown(true)
			f.faults++
			f.waitProgress(2)
			// A receiver crash while deliveries are failing.
			f.rcv.kill()
			f.faults++
			f.rcv.start(f.ctx)
			f.waitProgress(1)
			f.hook.setDown(false)
			f.checkWebhooks()
			f.checkInvariant("after the webhook endpoint was down")
		}},
	}
	for _, fault := range faults {
		t.Run(fault.name, func(t *testing.T) { fault.run(t, f) })
	}
	t.Logf("TestFaults: %d faults injected, %d invariant checks passed, "+
		"took %v", f.faults, f.checks, time.Since(began).Round(time.Second))

	for _, backend := range backends(t) {
		if backend == backendBadger {
			continue
		}
		t.Run(backend, func(t *testing.T) {
			began := time.Now()
			f.stop()
			g := startFaultRig(t, ctx, net, nodes, 3, backend)
			for _, fault := range faults {
				if fault.receiver {
					t.Run(fault.name, func(t *testing.T) {
						fault.run(t, g)
					})
				}
			}
			t.Logf("TestFaults on %s: %d faults injected, %d "+
				"invariant checks passed, took %v", backend,
				g.faults, g.checks,
				time.Since(began).Round(time.Second))
		})
	}
}

// checkWebhooks waits until the receiver has delivered every event and
// checks that the endpoint got each one (by id) and, per subscription, in
// the order the receiver made them.
func (f *faultRig) checkWebhooks() {
	t := f.t
	t.Helper()
	require.NoError(t, regtest.Poll(f.ctx, 2*time.Minute, func() error {
		var page struct {
			Events []json.RawMessage `json:"events"`
		}
		if f.rcv.do("GET", "/v1/events?pending=true&limit=10", nil,
			&page) != 200 {
			return fmt.Errorf("events API down")
		}
		if len(page.Events) > 0 {
			return fmt.Errorf("%d+ events not delivered yet",
				len(page.Events))
		}
		return nil
	}), "webhook deliveries did not catch up")

	var ids []uint64
	for after := uint64(0); ; {
		var page struct {
			Events []struct {
				Sequence uint64 `json:"sequence"`
			} `json:"events"`
		}
		require.Equal(t, 200, f.rcv.do("GET", fmt.Sprintf(
			"/v1/events?limit=1000&after=%d", after), nil, &page))
		for _, ev := range page.Events {
			ids = append(ids, ev.Sequence)
			after = ev.Sequence
		}
		if len(page.Events) < 1000 {
			break
		}
	}
	f.hook.mu.Lock()
	defer f.hook.mu.Unlock()
	require.Empty(t, f.hook.bad, "bad deliveries")
	for _, id := range ids {
		_, ok := f.hook.got[id]
		require.True(t, ok, "event %d never delivered", id)
	}
	for sub, order := range f.hook.order {
		for i := 1; i < len(order); i++ {
			require.Less(t, order[i-1], order[i], "subscription %s: "+
				"events delivered out of order: %v", sub, order)
		}
	}
	t.Logf("webhooks: all %d events delivered, in order per subscription",
		len(ids))
}
