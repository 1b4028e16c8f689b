//go:build itest

package itest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/satstream/satstream/receiver/webhook"
	"github.com/satstream/satstream/store/postgres/pgtest"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

// daemonBins holds the daemon binaries built for this test run, with the
// crash hooks compiled in (-tags itest), by command name.
var (
	daemonBinsMu sync.Mutex
	daemonBins   = map[string]string{}
)

// buildDaemon builds cmd/<name> once per test run and returns its path.
func buildDaemon(t *testing.T, name string) string {
	t.Helper()
	daemonBinsMu.Lock()
	defer daemonBinsMu.Unlock()
	if bin, ok := daemonBins[name]; ok {
		return bin
	}
	dir, err := os.MkdirTemp("", "satstream-"+name+"-bin-*")
	require.NoError(t, err)
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-tags", "itest", "-o", bin,
		"github.com/satstream/satstream/cmd/"+name)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "build %s:\n%s", name, out)
	daemonBins[name] = bin
	return bin
}

// rcvProc is one satstream-receiver process.
type rcvProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// rcv runs satstream-receiver processes on one data directory and talks to
// their API.
type rcv struct {
	t       *testing.T
	bin     string
	dir     string
	apiAddr string
	args    []string
	client  *http.Client
	token   string
	proc    *rcvProc
	runs    int
	// dataDir is the daemon's --datadir when it is not dir (a tmpfs in
	// the disk-full test); dir keeps the logs.
	dataDir string
	// ready says whether the daemon's /v1/health body means it is up
	// (default: the receiver's lnd_connected).
	ready func(health map[string]any) error
}

func newRcv(t *testing.T, node *regtest.Node, hookURL string) *rcv {
	dir := keptDir(t)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "regtest"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "regtest",
		"webhook.secret"),
		[]byte(hookSecret+"\n"), 0o600))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	r := &rcv{
		t: t, bin: buildDaemon(t, "satstream-receiver"), dir: dir, apiAddr: addr,
		args: []string{
			"--datadir=" + dir,
			"--network=regtest",
			"--lnd.host=" + node.RPCAddr,
			"--lnd.tlspath=" + node.TLSCertPath,
			"--lnd.macaroonpath=" + node.AdminMacPath,
			"--api.listen=" + addr,
			"--metrics.listen=127.0.0.1:0",
			"--debuglevel=debug",
			"--expiryinterval=200ms",
			"--webhook.url=" + hookURL,
			"--webhook.initialbackoff=200ms",
			"--webhook.maxbackoff=1s",
		},
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		}},
	}
	t.Cleanup(func() {
		if r.proc != nil {
			r.kill()
		}
		if t.Failed() {
			for i := 1; i <= r.runs; i++ {
				p := filepath.Join(r.dir, fmt.Sprintf("run%d.log", i))
				t.Logf("--- %s log %s ---\n%s", filepath.Base(r.bin),
					p, tail(p, 40))
			}
		}
	})
	return r
}

// Ledger backends the receiver itests run on (the receiver's --db.backend).
const (
	backendBadger   = "badger"
	backendPostgres = "postgres"
)

// backends returns the ledger backends a receiver itest runs on: badger,
// then PostgreSQL (a throw-away server from pgtest). Without PostgreSQL's
// binaries the postgres variants are skipped, or fail with
// SATSTREAM_REQUIRE_POSTGRES=1 (set by itest/run.sh).
func backends(t *testing.T) []string {
	t.Helper()
	if _, err := pgtest.BinDir(); err != nil {
		if os.Getenv(pgtest.RequireEnv) == "1" {
			t.Fatalf("%s=1: %v", pgtest.RequireEnv, err)
		}
		t.Logf("receiver on PostgreSQL not tested: %v", err)
		return []string{backendBadger}
	}
	return []string{backendBadger, backendPostgres}
}

// onBackend makes r keep its ledger on backend: badger in its data
// directory (the default), or a fresh database on a throw-away PostgreSQL
// server that lives as long as t.
func (r *rcv) onBackend(t *testing.T, backend string) *rcv {
	t.Helper()
	switch backend {
	case backendBadger:
	case backendPostgres:
		dsn := pgtest.Start(t).NewDatabase(t)
		r.args = append(r.args, "--db.backend=postgres",
			"--db.postgres.dsn="+dsn)
		// Cleanups run last first: the receiver dies before its
		// server stops.
		t.Cleanup(func() {
			if r.proc != nil {
				r.kill()
			}
		})
	default:
		t.Fatalf("unknown ledger backend %q", backend)
	}
	return r
}

// hookSecret is written into the receiver's webhook.secret file (0600):
// the daemon refuses --webhook.secret on the command line. A "whsec_"
// secret must continue in base64 of at least 32 bytes (64 hex digits are).
const hookSecret = "whsec_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// data is the daemon's data directory.
func (r *rcv) data() string {
	if r.dataDir != "" {
		return r.dataDir
	}
	return r.dir
}

// start runs the daemon (with extra environment) and waits for its API.
func (r *rcv) start(ctx context.Context, env ...string) {
	t := r.t
	t.Helper()
	r.runs++
	logPath := filepath.Join(r.dir, fmt.Sprintf("run%d.log", r.runs))
	f, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(r.bin, r.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	require.NoError(t, cmd.Start())
	p := &rcvProc{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	r.proc = p

	require.NoError(t, regtest.Poll(ctx, 60*time.Second, func() error {
		select {
		case <-p.done:
			return fmt.Errorf("receiver exited: %s", tail(logPath, 20))
		default:
		}
		tok, err := os.ReadFile(filepath.Join(r.data(), "regtest", "admin.token"))
		if err != nil {
			return err
		}
		r.token = strings.TrimSpace(string(tok))
		var h map[string]any
		if code := r.do("GET", "/v1/health", nil, &h); code != 200 {
			return fmt.Errorf("health %d", code)
		}
		if r.ready != nil {
			return r.ready(h)
		}
		if h["lnd_connected"] != true {
			return fmt.Errorf("lnd not connected yet")
		}
		return nil
	}))
}

// stop ends the daemon with SIGTERM and waits for a clean exit.
func (r *rcv) stop() {
	r.t.Helper()
	require.NoError(r.t, r.proc.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-r.proc.done:
	case <-time.After(30 * time.Second):
		r.t.Fatal("receiver did not stop on SIGTERM")
	}
	require.True(r.t, r.proc.cmd.ProcessState.Success(),
		"exit status %v", r.proc.cmd.ProcessState)
	r.proc = nil
}

// kill SIGKILLs the daemon (by pid) and waits for it.
func (r *rcv) kill() {
	_ = r.proc.cmd.Process.Kill()
	<-r.proc.done
	r.proc = nil
}

// waitExit waits for the daemon to die on its own (a crash point).
func (r *rcv) waitExit(ctx context.Context) {
	r.t.Helper()
	select {
	case <-r.proc.done:
	case <-ctx.Done():
		r.t.Fatal("receiver did not crash at the crash point")
	}
	ws := r.proc.cmd.ProcessState.Sys().(syscall.WaitStatus)
	require.True(r.t, ws.Signaled() && ws.Signal() == syscall.SIGKILL,
		"want SIGKILL, got %v", r.proc.cmd.ProcessState)
	r.proc = nil
}

// do calls the API with the admin token and decodes the JSON answer.
func (r *rcv) do(method, path string, body any, out any) int {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "https://"+r.apiAddr+path, rd)
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := r.client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		_ = json.Unmarshal(data, out)
	}
	return resp.StatusCode
}

type subView struct {
	ID string `json:"id"`
	// Secret is in the create response only (the payer's secret id).
	Secret        string `json:"secret"`
	State         string `json:"state"`
	Paid          bool   `json:"paid"`
	TotalPaidMsat uint64 `json:"total_paid_msat"`
	TotalSeconds  uint64 `json:"total_seconds"`
	RemainderMsat uint64 `json:"remainder_msat"`
	Payments      uint64 `json:"payments"`
	LastSequence  uint64 `json:"last_sequence"`
	Offer         string `json:"offer"`
}

func (r *rcv) sub(id string) subView {
	r.t.Helper()
	var v subView
	require.Equal(r.t, 200, r.do("GET", "/v1/subscriptions/"+id, nil, &v))
	return v
}

// hookServer records webhook deliveries and can pretend to be down.
type hookServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	down bool
	got  map[uint64]webhook.Envelope
	bad  []string
	// order is the delivery order per subscription.
	order map[string][]uint64
	// posts counts the deliveries accepted, repeats included.
	posts int
}

func newHookServer(t *testing.T) *hookServer {
	h := &hookServer{got: map[uint64]webhook.Envelope{},
		order: map[string][]uint64{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter,
		r *http.Request) {

		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.down {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		err := webhook.Verify([]byte(hookSecret),
			r.Header.Get(webhook.SignatureHeader), body, time.Now(),
			5*time.Minute)
		if err != nil {
			h.bad = append(h.bad, err.Error())
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var env webhook.Envelope
		if err := json.Unmarshal(body, &env); err != nil {
			h.bad = append(h.bad, err.Error())
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if _, dup := h.got[env.Sequence]; !dup {
			h.order[env.SubscriptionID] = append(
				h.order[env.SubscriptionID], env.Sequence)
		}
		h.got[env.Sequence] = env
		h.posts++
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookServer) setDown(v bool) {
	h.mu.Lock()
	h.down = v
	h.mu.Unlock()
}

// data renders our custom records in lncli's --data syntax.
func data(recs map[uint64][]byte) string {
	var parts []string
	for _, typ := range []uint64{tlv.TypeVersion, tlv.TypeSubscriptionID,
		tlv.TypeSequence, tlv.TypePlanID, tlv.TypeCancel} {
		if v, ok := recs[typ]; ok {
			parts = append(parts, fmt.Sprintf("%d=%x", typ, v))
		}
	}
	return strings.Join(parts, ",")
}

func records(t *testing.T, sub string, seq uint64, plan string,
	cancel bool) map[uint64][]byte {

	sid, err := tlv.ParseSubscriptionID(sub)
	require.NoError(t, err)
	r := tlv.Records{Version: 1, SubscriptionID: sid, Sequence: seq,
		Cancel: cancel}
	if plan != "" {
		pid, err := tlv.ParsePlanID(plan)
		require.NoError(t, err)
		r.PlanID = &pid
	}
	m, err := r.Encode()
	require.NoError(t, err)
	return m
}

// lncliKeysend pays with `lncli sendpayment --keysend --data`, the way the
// protocol doc tells people to try a receiver by hand.
func lncliKeysend(t *testing.T, ctx context.Context, from, to *regtest.Node,
	amtSat int64, recs map[uint64][]byte) string {

	t.Helper()
	cmd := exec.CommandContext(ctx, binaries.Lncli,
		"--network=regtest", "--rpcserver="+from.RPCAddr,
		"--tlscertpath="+from.TLSCertPath,
		"--macaroonpath="+from.AdminMacPath,
		"sendpayment", "--keysend", "--dest="+to.PubKeyHex(),
		fmt.Sprintf("--amt=%d", amtSat), "--data="+data(recs),
		"--fee_limit=100", "--json", "-f")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "lncli: %s", out)
	return string(out)
}

func requireRefused(t *testing.T, ctx context.Context, from, to *regtest.Node,
	amt btcutil.Amount, recs map[uint64][]byte) {

	t.Helper()
	_, st := keysend(t, ctx, from, to, amt, recs)
	require.Equal(t, lnrpc.Payment_FAILED, st.State)
	require.Equal(t,
		lnrpc.PaymentFailureReason_FAILURE_REASON_INCORRECT_PAYMENT_DETAILS,
		st.FailureReason)
}

// localBalance is n's channel balance once no HTLC is in flight, so an
// earlier payment's commitment update can't be mistaken for a change.
func localBalance(t *testing.T, ctx context.Context, n *regtest.Node) int64 {
	t.Helper()
	var bal int64
	require.NoError(t, regtest.Poll(ctx, 30*time.Second, func() error {
		chans, err := n.RPC().ListChannels(ctx, &lnrpc.ListChannelsRequest{})
		if err != nil {
			return err
		}
		for _, c := range chans.Channels {
			if len(c.PendingHtlcs) > 0 {
				return fmt.Errorf("%d HTLCs in flight", len(c.PendingHtlcs))
			}
		}
		resp, err := n.RPC().ChannelBalance(ctx, &lnrpc.ChannelBalanceRequest{})
		if err != nil {
			return err
		}
		b := int64(resp.LocalBalance.Msat)
		if b != bal {
			bal = b
			return fmt.Errorf("balance still moving")
		}
		return nil
	}))
	return bal
}

// TestReceiver runs satstream-receiver against carol (hold time 30s) and
// pays it from alice over bob.
func TestReceiver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()

	_, nodes := holdLine(t, ctx)
	alice, carol := nodes[0], nodes[2]
	t.Logf("network ready after %v", time.Since(start).Round(time.Second))

	// One network; a receiver with a fresh ledger per backend (a fresh
	// ledger follows lnd's invoices from now on, so the other backend's
	// payments stay out of it).
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			began := time.Now()
			testReceiverOn(t, ctx, alice, carol, backend)
			t.Logf("TestReceiver on %s done in %v", backend,
				time.Since(began).Round(time.Second))
		})
	}
	t.Logf("TestReceiver done in %v", time.Since(start).Round(time.Second))
}

// testReceiverOn is TestReceiver's body for a receiver beside carol with
// its ledger on backend, paid by alice.
func testReceiverOn(t *testing.T, ctx context.Context, alice,
	carol *regtest.Node, backend string) {

	hooks := newHookServer(t)
	r := newRcv(t, carol, hooks.srv.URL).onBackend(t, backend)
	r.start(ctx)

	// Plans: a closed one for personal offers, an open-enrolment one.
	// 10 msat/s; minimum 10 sat; at most one day ahead.
	var plan, open struct {
		ID    string `json:"id"`
		Offer string `json:"offer"`
	}
	require.Equal(t, 201, r.do("POST", "/v1/plans", map[string]any{
		"label": "basic", "price_msat_per_sec": 7,
		"min_payment_msat": 10_000, "grace_period_sec": 60,
		"max_prepay_sec": 86_400, "default_increment_sec": 60,
	}, &plan))
	require.Equal(t, 201, r.do("POST", "/v1/plans", map[string]any{
		"label": "open", "price_msat_per_sec": 10,
		"min_payment_msat": 10_000, "grace_period_sec": 60,
		"max_prepay_sec": 86_400, "open_enrolment": true,
	}, &open))
	require.NotEmpty(t, open.Offer)

	var sub subView
	require.Equal(t, 201, r.do("POST", "/v1/subscriptions",
		map[string]any{"plan_id": plan.ID}, &sub))
	offer, err := tlv.ParseOffer(sub.Offer)
	require.NoError(t, err)
	require.Equal(t, carol.PubKey, offer.Node)
	require.Equal(t, sub.Secret, offer.SubscriptionID.String())
	require.Equal(t, sub.ID, offer.SubscriptionID.PublicID().String())
	require.Equal(t, "pending", sub.State)

	t.Run("lncli keysend is credited exactly", func(t *testing.T) {
		lncliKeysend(t, ctx, alice, carol, 100,
			records(t, sub.Secret, 1, "", false))
		require.NoError(t, regtest.Poll(ctx, 30*time.Second, func() error {
			if v := r.sub(sub.ID); v.Payments != 1 {
				return fmt.Errorf("payments %d", v.Payments)
			}
			return nil
		}))
		v := r.sub(sub.ID)
		// 100_000 msat at 7 msat/s: 14285 s, remainder 5 msat.
		require.Equal(t, "active", v.State)
		require.True(t, v.Paid)
		require.EqualValues(t, 100_000, v.TotalPaidMsat)
		require.EqualValues(t, 14285, v.TotalSeconds)
		require.EqualValues(t, 5, v.RemainderMsat)

		// The next payment uses the remainder: 100_005 / 7 = 14286 r 3.
		_, st := keysend(t, ctx, alice, carol, 100,
			records(t, sub.Secret, 2, "", false))
		require.Equal(t, lnrpc.Payment_SUCCEEDED, st.State)
		v = r.sub(sub.ID)
		require.EqualValues(t, 2, v.Payments)
		require.EqualValues(t, 14285+14286, v.TotalSeconds)
		require.EqualValues(t, 3, v.RemainderMsat)
	})

	t.Run("foreign keysend is settled untouched", func(t *testing.T) {
		_, st := keysend(t, ctx, alice, carol, 50, map[uint64][]byte{
			7629169: []byte(`{"action":"boost"}`),
		})
		require.Equal(t, lnrpc.Payment_SUCCEEDED, st.State)
	})

	t.Run("refusals fail the payment and credit nothing", func(t *testing.T) {
		before := r.sub(sub.ID)
		balance := localBalance(t, ctx, carol)
		unknown, err := tlv.NewSubscriptionID()
		require.NoError(t, err)
		bad := records(t, sub.Secret, 10, "", false)
		bad[tlv.TypeVersion] = []byte{2}
		notOpen, err := tlv.ParsePlanID(plan.ID)
		require.NoError(t, err)
		cases := []struct {
			name string
			amt  btcutil.Amount
			recs map[uint64][]byte
		}{
			{"below minimum", 9, records(t, sub.Secret, 11, "", false)},
			{"sequence already credited", 100, records(t, sub.Secret, 2, "", false)},
			{"unknown subscription", 100, records(t, unknown.String(), 1, "", false)},
			{"plan not open", 100, records(t, unknown.String(), 1, notOpen.String(), false)},
			{"unknown version", 100, bad},
			{"more than max prepay", 1_000, records(t, sub.Secret, 12, "", false)},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				requireRefused(t, ctx, alice, carol, tc.amt, tc.recs)
			})
		}
		after := r.sub(sub.ID)
		require.Equal(t, before.TotalPaidMsat, after.TotalPaidMsat)
		require.Equal(t, before.TotalSeconds, after.TotalSeconds)
		require.Equal(t, before.Payments, after.Payments)
		require.Equal(t, balance, localBalance(t, ctx, carol))
	})

	t.Run("open enrolment creates the subscription", func(t *testing.T) {
		id, err := tlv.NewSubscriptionID()
		require.NoError(t, err)
		_, st := keysend(t, ctx, alice, carol, 20,
			records(t, id.String(), 1, open.ID, false))
		require.Equal(t, lnrpc.Payment_SUCCEEDED, st.State)
		v := r.sub(id.String())
		require.Equal(t, "active", v.State)
		require.EqualValues(t, 2000, v.TotalSeconds)
	})

	crashSub := sub.Secret
	seq := uint64(20)
	for _, point := range []string{"before-credit", "after-credit",
		"after-settle"} {

		t.Run("crash "+point, func(t *testing.T) {
			// Webhooks pile up while the endpoint is down.
			hooks.setDown(true)
			before := r.sub(crashSub)
			r.stop()
			r.start(ctx, "SATSTREAM_RECEIVER_CRASH_AT="+point)

			seq++
			type res struct {
				st  lnrpc.Payment_PaymentStatus
				err error
			}
			done := make(chan res, 1)
			recs := records(t, crashSub, seq, "", false)
			go func() {
				_, st, err := sendKeysend(ctx, alice, carol, 100, recs)
				done <- res{st.State, err}
			}()
			crashCtx, cc := context.WithTimeout(ctx, 30*time.Second)
			r.waitExit(crashCtx)
			cc()
			r.start(ctx)
			got := <-done
			require.NoError(t, got.err)
			require.Equal(t, lnrpc.Payment_SUCCEEDED, got.st)
			v := r.sub(crashSub)
			require.Equal(t, before.Payments+1, v.Payments)
			require.Equal(t, before.TotalPaidMsat+100_000, v.TotalPaidMsat)

			// A second restart changes nothing.
			r.stop()
			r.start(ctx)
			require.Equal(t, v, r.sub(crashSub))
		})
	}

	t.Run("payer cancel is recorded and refused", func(t *testing.T) {
		seq++
		requireRefused(t, ctx, alice, carol, 1,
			records(t, crashSub, seq, "", true))
		require.Equal(t, "cancelled_by_payer", r.sub(crashSub).State)
		seq++
		requireRefused(t, ctx, alice, carol, 100,
			records(t, crashSub, seq, "", false))
	})

	t.Run("webhooks deliver every event, signed, in order", func(t *testing.T) {
		hooks.setDown(false)
		var evs struct {
			Events []struct {
				ID       string `json:"id"`
				Sequence uint64 `json:"sequence"`
			} `json:"events"`
		}
		require.Equal(t, 200, r.do("GET", "/v1/events?limit=1000", nil, &evs))
		require.NotEmpty(t, evs.Events)
		require.NoError(t, regtest.Poll(ctx, 60*time.Second, func() error {
			hooks.mu.Lock()
			defer hooks.mu.Unlock()
			for _, e := range evs.Events {
				if _, ok := hooks.got[e.Sequence]; !ok {
					return fmt.Errorf("event %d not delivered",
						e.Sequence)
				}
			}
			return nil
		}))
		hooks.mu.Lock()
		defer hooks.mu.Unlock()
		require.Empty(t, hooks.bad)
		// Bodies name the public id, never the payer's secret, and
		// carry the random event id the API shows, the API version
		// and the network.
		for _, e := range evs.Events {
			env := hooks.got[e.Sequence]
			require.Regexp(t, `^evt_[0-9a-f]{32}$`, env.ID)
			require.Equal(t, e.ID, env.ID)
			require.Equal(t, webhook.APIVersion, env.APIVersion)
			require.Equal(t, "regtest", env.Network)
			require.NotContains(t, string(env.Data), sub.Secret)
			require.NotEqual(t, sub.Secret, env.SubscriptionID)
		}
		for sub, ids := range hooks.order {
			for i := 1; i < len(ids); i++ {
				require.Less(t, ids[i-1], ids[i],
					"events of %s out of order", sub)
			}
		}
		var pending struct {
			Events []any `json:"events"`
		}
		require.NoError(t, regtest.Poll(ctx, 30*time.Second, func() error {
			r.do("GET", "/v1/events?pending=true", nil, &pending)
			if len(pending.Events) != 0 {
				return fmt.Errorf("%d pending", len(pending.Events))
			}
			return nil
		}))
	})

	t.Run("no request without a token", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "https://"+r.apiAddr+
			"/v1/subscriptions", nil)
		resp, err := r.client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 401, resp.StatusCode)
	})

	r.stop()
}
