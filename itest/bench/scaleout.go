package bench

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/satstream/satstream/store/postgres/pgtest"
	"github.com/satstream/satstream/tlv"
)

// OnlyScaleOut is the Options.Only value that runs the scale-out section
// alone (go run ./itest/cmd/bench --only scaleout).
const OnlyScaleOut = "scaleout"

// scaleOutSubs is the number of subscriptions of every scale-out run,
// whatever the node count: divisible by 1, 2 and 3 so each node gets as
// many, and with the sender's 4 in flight per subscription room for 48,
// more than the highest in-flight bound.
const scaleOutSubs = 12

// ScaleOutConfig is one provider set-up of the scale-out section.
type ScaleOutConfig struct {
	Nodes   int
	Backend string // badger or postgres
}

func (c ScaleOutConfig) String() string {
	return fmt.Sprintf("%d node(s), %s", c.Nodes, c.Backend)
}

// ScaleOutRun is one run: a config at one sender in-flight bound.
type ScaleOutRun struct {
	Config   ScaleOutConfig
	InFlight int
	Subs     int
	// Credited is the number of payments credited in the measure
	// window, Rate that per second.
	Credited uint64
	Rate     float64
	// PerNode is the window's credited payments per provider node
	// (carol, dave, erin): those of the subscriptions made at its
	// receiver, whose offers name it.
	PerNode []uint64
	// Money is the check after the run: msat settled at the nodes ==
	// credited == paid by the sender, over the whole run.
	SettledMsat, CreditedMsat, PaidMsat uint64
	Payments                            int
	// CPU is cores used per process over the measure window (1.0 is one
	// core busy all the time); Busy is the whole machine's.
	CPU     map[string]float64
	Busy    float64
	Window  time.Duration
	Started time.Time
}

// StoreAlone is one line of the store benchmarks (store/postgres
// BenchmarkDurableCredits), run in the same bench run.
type StoreAlone struct {
	Name string
	Rate float64 // durable credits/s
}

// ScaleOut is the whole section.
type ScaleOut struct {
	Runs            []ScaleOutRun
	Store           []StoreAlone
	Cores           int
	Quick           bool
	Warmup, Measure time.Duration
}

// scaleOutPlan is what the section runs: the configs in the order run at
// each in-flight bound (interleaved, so background drift hits every
// config alike), and the bounds.
func (o *Options) scaleOutPlan() ([]ScaleOutConfig, []int) {
	if o.Quick {
		return []ScaleOutConfig{{1, "postgres"}, {2, "postgres"}},
			[]int{16}
	}
	return []ScaleOutConfig{{1, "badger"}, {1, "postgres"},
		{2, "postgres"}, {3, "postgres"}}, []int{16, 32}
}

// lineCapacity is the size of every channel of the line (startNetwork's),
// and so of each bob -> provider channel.
const lineCapacity = btcutil.Amount(16_000_000)

// providerNames are the provider nodes in the order they are added.
var providerNames = []string{"carol", "dave", "erin"}

// addProviders adds dave (and erin) beside carol: each in hold mode with
// a channel from bob as big as bob -> carol, bob pushing half as the line
// does. It also opens a second alice -> bob channel with no push, so the
// section has alice's liquidity of its own after A, A' and B spent from
// the first. carol must already be in hold mode.
func (nw *network) addProviders(ctx context.Context, n int) (
	[]*regtest.Node, error) {

	providers := []*regtest.Node{nw.carol}
	var cfgs []regtest.NodeConfig
	for _, name := range providerNames[1:n] {
		cfgs = append(cfgs, regtest.NodeConfig{Name: name,
			ExtraArgs: []string{holdTime}})
	}
	if len(cfgs) > 0 {
		nodes, err := nw.net.AddNodes(ctx, cfgs...)
		if err != nil {
			return nil, err
		}
		providers = append(providers, nodes...)
	}
	specs := []regtest.ChannelSpec{{From: nw.alice, To: nw.bob,
		Capacity: lineCapacity}}
	for _, p := range providers[1:] {
		specs = append(specs, regtest.ChannelSpec{From: nw.bob, To: p,
			Capacity: lineCapacity, Push: lineCapacity / 2})
	}
	if _, err := nw.net.OpenChannels(ctx, specs...); err != nil {
		return nil, err
	}
	for _, p := range providers {
		if err := nw.net.WaitForRoute(ctx, nw.alice, p, 1000); err != nil {
			return nil, err
		}
	}
	return providers, nil
}

// scaleOut runs the section on nw (carol in hold mode): PostgreSQL
// (installed if missing), dave and erin, then every config at every
// in-flight bound, each run checked for money.
func scaleOut(ctx context.Context, opts Options, nw *network, binDir string,
	logs io.Writer) (*ScaleOut, error) {

	res := &ScaleOut{Cores: runtime.NumCPU(), Quick: opts.Quick,
		Warmup: opts.Warmup, Measure: opts.Measure}
	if _, err := pgtest.BinDir(); err != nil {
		opts.say("PostgreSQL missing: itest/install-postgres.sh")
		if err := installPostgres(ctx, opts.Log); err != nil {
			return nil, err
		}
	}
	tb := &pgTB{name: "scaleout"}
	defer tb.cleanup()
	var srv *pgtest.Server
	if err := tb.do(func() { srv = pgtest.Start(tb) }); err != nil {
		return nil, fmt.Errorf("start PostgreSQL: %w", err)
	}
	if !opts.Quick {
		opts.say("store alone: durable credits/s, badger vs postgres " +
			"(go test -bench DurableCredits ./store/postgres/)")
		st, err := storeAlone(ctx, logs)
		if err != nil {
			return nil, fmt.Errorf("store benchmarks: %w", err)
		}
		for _, s := range st {
			opts.say("  %s: %.0f credits/s", s.Name, s.Rate)
		}
		res.Store = st
	}

	cfgs, levels := opts.scaleOutPlan()
	most := 0
	for _, c := range cfgs {
		most = max(most, c.Nodes)
	}
	opts.say("adding %s in hold mode, each with a channel from bob",
		strings.Join(providerNames[1:most], ", "))
	providers, err := nw.addProviders(ctx, most)
	if err != nil {
		return nil, fmt.Errorf("add provider nodes: %w", err)
	}
	for _, l := range levels {
		for _, c := range cfgs {
			opts.say("scale-out: %v, %d subscriptions, %d in flight",
				c, scaleOutSubs, l)
			so := &scaleOutRun{opts: opts, nw: nw, srv: srv, tb: tb,
				providers: providers[:c.Nodes], binDir: binDir,
				logs: logs, dir: filepath.Join(opts.WorkDir,
					"scaleout", fmt.Sprintf("%d-%d-%s", l,
						c.Nodes, c.Backend))}
			r, err := so.run(ctx, c, l)
			if err != nil {
				return nil, fmt.Errorf("%v at %d in flight: %w", c,
					l, err)
			}
			opts.say("  %.1f credited/s (%d payments checked: "+
				"settled == credited == paid, %d msat), "+
				"machine %.0f%% busy", r.Rate, r.Payments,
				r.PaidMsat, r.Busy*100)
			res.Runs = append(res.Runs, r)
		}
	}
	return res, nil
}

// installPostgres runs itest/install-postgres.sh with its output shown.
func installPostgres(ctx context.Context, log io.Writer) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "bash", "itest/install-postgres.sh")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("itest/install-postgres.sh: %w", err)
	}
	if _, err := pgtest.BinDir(); err != nil {
		return err
	}
	return nil
}

// storeAlone runs the store benchmarks BenchmarkDurableCredits (badger
// and postgres, one payer and many, two nodes on one database) in their
// own test binary, the code the store's tests own, with a fixed count so
// it takes seconds, and reads their credits/s.
func storeAlone(ctx context.Context, logs io.Writer) ([]StoreAlone, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$",
		"-bench", "^BenchmarkDurableCredits$", "-benchtime", "2000x",
		"-count", "1", "./store/postgres/")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), pgtest.RequireEnv+"=1")
	cmd.Stderr = logs
	out, err := cmd.Output()
	fmt.Fprintf(logs, "%s", out)
	if err != nil {
		return nil, err
	}
	return parseStoreBench(string(out))
}

// parseStoreBench reads "BenchmarkDurableCredits/<name>-<procs> N x ns/op
// ... R credits/s ..." lines (go test prints the reported metrics in name
// order, so credits/s may be followed by others). Both backends must be
// there: a run that lost one (PostgreSQL skipped, a line format changed)
// fails instead of leaving half a table.
func parseStoreBench(out string) ([]StoreAlone, error) {
	var res []StoreAlone
	seen := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		unit := slices.Index(f, "credits/s")
		if len(f) < 4 || !strings.HasPrefix(f[0],
			"BenchmarkDurableCredits/") || unit < 1 {
			continue
		}
		rate, err := strconv.ParseFloat(f[unit-1], 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
		name := strings.TrimPrefix(f[0], "BenchmarkDurableCredits/")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		res = append(res, StoreAlone{Name: name, Rate: rate})
		backend, _, _ := strings.Cut(name, "/")
		seen[backend] = true
	}
	if len(res) == 0 {
		return nil, errors.New("no credits/s in the benchmark output")
	}
	for _, backend := range []string{"badger", "postgres"} {
		if !seen[backend] {
			return nil, fmt.Errorf("no %s credits/s in the "+
				"benchmark output", backend)
		}
	}
	return res, nil
}

// scaleOutRun is one run's processes.
type scaleOutRun struct {
	opts      Options
	nw        *network
	srv       *pgtest.Server
	tb        *pgTB
	providers []*regtest.Node
	binDir    string
	logs      io.Writer
	dir       string

	rcvs   []*daemon
	rcvAPI []*apiClient
	snd    *daemon
	sndAPI *apiClient
	subs   []string // public ids
	home   []int    // subs[i] was made at rcvs[home[i]]
}

func (s *scaleOutRun) stop() {
	if s.sndAPI != nil {
		s.sndAPI.close()
	}
	if s.snd != nil {
		_ = s.snd.stop()
	}
	for _, a := range s.rcvAPI {
		a.close()
	}
	for _, r := range s.rcvs {
		_ = r.stop()
	}
}

// run starts a receiver per provider node on a fresh ledger, a fresh
// sender with the in-flight bound, makes the subscriptions (spread over
// the receivers, each offer naming its receiver's node), measures the
// credits of the window and the CPU of every process, then pauses the
// streams and checks the money.
func (s *scaleOutRun) run(ctx context.Context, c ScaleOutConfig,
	level int) (ScaleOutRun, error) {

	res := ScaleOutRun{Config: c, InFlight: level, Subs: scaleOutSubs,
		Started: time.Now().UTC()}
	defer s.stop()
	var dbArgs []string
	if c.Backend == "postgres" {
		var dsn string
		if err := s.tb.do(func() { dsn = s.srv.NewDatabase(s.tb) }); err != nil {
			return res, err
		}
		dbArgs = []string{"--db.backend=postgres",
			"--db.postgres.dsn=" + dsn}
	}
	// One at a time: the first applies the schema.
	for _, p := range s.providers {
		d, _, err := startDaemon(ctx, filepath.Join(s.binDir,
			"satstream-receiver"), filepath.Join(s.dir, "rcv-"+p.Name),
			p, s.logs, dbArgs...)
		if err != nil {
			return res, fmt.Errorf("receiver beside %s: %w", p.Name, err)
		}
		s.rcvs = append(s.rcvs, d)
		api, err := newAPIClient(d.addr, netDir(d.dir), 4)
		if err != nil {
			return res, err
		}
		s.rcvAPI = append(s.rcvAPI, api)
	}
	planID, err := s.rcvAPI[0].createPlan(ctx, "scaleout", uint64(Amount))
	if err != nil {
		return res, err
	}
	d, _, err := startDaemon(ctx, filepath.Join(s.binDir,
		"satstream-sender"), filepath.Join(s.dir, "sender"), s.nw.alice,
		s.logs, fmt.Sprintf("--payments.maxinflight=%d", level),
		"--payments.backoffmax=5s")
	if err != nil {
		return res, fmt.Errorf("sender: %w", err)
	}
	s.snd = d
	if s.sndAPI, err = newAPIClient(d.addr, netDir(d.dir), 4); err != nil {
		return res, err
	}
	before := make([]uint64, len(s.providers))
	for i, p := range s.providers {
		if before[i], err = lastAddIndex(ctx, p); err != nil {
			return res, err
		}
	}
	for i := range scaleOutSubs {
		at := i % len(s.rcvs)
		var sub struct {
			ID    string `json:"id"`
			Offer string `json:"offer"`
		}
		err := s.rcvAPI[at].do(ctx, "POST", "/v1/subscriptions",
			map[string]any{"plan_id": planID}, &sub)
		if err != nil {
			return res, fmt.Errorf("create subscription: %w", err)
		}
		err = s.sndAPI.do(ctx, "POST", "/v1/subscriptions", map[string]any{
			"offer":         sub.Offer,
			"increment_sec": 1,
			"buffer_sec":    30 * 24 * 3600,
			"fee_limit_ppm": FeeLimitPPM,
		}, nil)
		if err != nil {
			return res, fmt.Errorf("subscribe: %w", err)
		}
		s.subs = append(s.subs, sub.ID)
		s.home = append(s.home, at)
	}

	if err := sleepUntil(ctx, time.Now().Add(s.opts.Warmup)); err != nil {
		return res, err
	}
	n0, err := s.credited(ctx)
	if err != nil {
		return res, err
	}
	cpu0, err := s.cpuSample()
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	if err := sleepUntil(ctx, t0.Add(s.opts.Measure)); err != nil {
		return res, err
	}
	n1, err := s.credited(ctx)
	if err != nil {
		return res, err
	}
	cpu1, err := s.cpuSample()
	if err != nil {
		return res, err
	}
	res.Window = time.Since(t0)
	res.CPU, res.Busy = cpu1.since(cpu0)
	res.PerNode = make([]uint64, len(s.providers))
	for i := range s.subs {
		res.PerNode[s.home[i]] += n1[i] - n0[i]
		res.Credited += n1[i] - n0[i]
	}
	res.Rate = float64(res.Credited) / res.Window.Seconds()
	if res.Credited == 0 {
		return res, errors.New("no payment credited in the window")
	}
	if err := s.checkMoney(ctx, before, &res); err != nil {
		return res, err
	}
	return res, nil
}

// credited returns each subscription's credited payments, as the first
// receiver answers (on PostgreSQL every receiver answers for every
// subscription).
func (s *scaleOutRun) credited(ctx context.Context) ([]uint64, error) {
	out := make([]uint64, len(s.subs))
	for i, id := range s.subs {
		var v struct {
			Payments uint64 `json:"payments"`
		}
		err := s.rcvAPI[0].do(ctx, "GET", "/v1/subscriptions/"+id, nil, &v)
		if err != nil {
			return nil, err
		}
		out[i] = v.Payments
	}
	return out, nil
}

// lastAddIndex is node's newest invoice add index: invoices of a run are
// those added after it.
func lastAddIndex(ctx context.Context, node *regtest.Node) (uint64, error) {
	resp, err := node.RPC().ListInvoices(ctx, &lnrpc.ListInvoiceRequest{
		Reversed: true, NumMaxInvoices: 1,
	})
	if err != nil {
		return 0, fmt.Errorf("%s: list invoices: %w", node.Name, err)
	}
	return resp.LastIndexOffset, nil
}

// checkMoney pauses every stream, waits until nothing is in flight and
// every credit is settled, and compares, subscription by subscription and
// hash by hash, the msat the provider nodes settled since the run began,
// the msat the receivers credited and the msat of the sender's succeeded
// payments. Any difference fails the run.
func (s *scaleOutRun) checkMoney(ctx context.Context, before []uint64,
	res *ScaleOutRun) error {

	for _, id := range s.subs {
		err := s.sndAPI.do(ctx, "POST", "/v1/subscriptions/"+id+"/pause",
			nil, nil)
		if err != nil {
			return fmt.Errorf("pause %s: %w", id, err)
		}
	}
	err := regtest.Poll(ctx, 2*time.Minute, func() error {
		for _, id := range s.subs {
			var sv struct {
				InFlight int `json:"in_flight"`
			}
			err := s.sndAPI.do(ctx, "GET", "/v1/subscriptions/"+id,
				nil, &sv)
			if err != nil {
				return err
			}
			if sv.InFlight != 0 {
				return fmt.Errorf("%s: %d in flight", id, sv.InFlight)
			}
			ps, err := s.receiverPayments(ctx, id)
			if err != nil {
				return err
			}
			for _, p := range ps {
				if p.State == "credited" && !p.Settled {
					return fmt.Errorf("%s seq %d credited, not "+
						"settled yet", id, p.Sequence)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("streams did not go quiet: %w", err)
	}

	settled := map[string]map[string]uint64{}
	for i, p := range s.providers {
		resp, err := p.RPC().ListInvoices(ctx, &lnrpc.ListInvoiceRequest{
			IndexOffset: before[i], NumMaxInvoices: 1_000_000,
		})
		if err != nil {
			return fmt.Errorf("%s: list invoices: %w", p.Name, err)
		}
		for _, inv := range resp.Invoices {
			if inv.State != lnrpc.Invoice_SETTLED || len(inv.Htlcs) == 0 {
				continue
			}
			recs, err := tlv.Decode(inv.Htlcs[0].CustomRecords)
			if err != nil {
				continue
			}
			id := recs.SubscriptionID.PublicID().String()
			if settled[id] == nil {
				settled[id] = map[string]uint64{}
			}
			settled[id][hex.EncodeToString(inv.RHash)] =
				uint64(inv.AmtPaidMsat)
			res.SettledMsat += uint64(inv.AmtPaidMsat)
		}
	}
	var problems []string
	ours := map[string]bool{}
	for _, id := range s.subs {
		ours[id] = true
		credited := map[string]uint64{}
		seqs := map[uint64]bool{}
		ps, err := s.receiverPayments(ctx, id)
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.State != "credited" {
				continue
			}
			if seqs[p.Sequence] {
				problems = append(problems, fmt.Sprintf(
					"%s: sequence %d credited twice", id,
					p.Sequence))
			}
			seqs[p.Sequence] = true
			credited[p.Hash] = p.Amount
			res.CreditedMsat += p.Amount
		}
		paid, err := s.senderPaid(ctx, id)
		if err != nil {
			return err
		}
		for _, a := range paid {
			res.PaidMsat += a
		}
		res.Payments += len(credited)
		problems = append(problems, diffMsat(id, "settled at the "+
			"nodes", settled[id], "credited", credited)...)
		problems = append(problems, diffMsat(id, "paid by the sender",
			paid, "credited", credited)...)
	}
	for id := range settled {
		if !ours[id] {
			problems = append(problems, fmt.Sprintf("%s: settled at "+
				"the nodes, not a subscription of this run", id))
		}
	}
	if len(problems) > 0 {
		if len(problems) > 10 {
			problems = append(problems[:10], fmt.Sprintf("and %d more",
				len(problems)-10))
		}
		return fmt.Errorf("money check failed: settled %d msat, "+
			"credited %d msat, paid %d msat: %s", res.SettledMsat,
			res.CreditedMsat, res.PaidMsat, strings.Join(problems, "; "))
	}
	return nil
}

// diffMsat lists the hashes where two msat-by-hash maps disagree.
func diffMsat(id, an string, a map[string]uint64, bn string,
	b map[string]uint64) []string {

	var out []string
	for h, v := range a {
		if w, ok := b[h]; !ok || w != v {
			out = append(out, fmt.Sprintf("%s: %s %s: %d msat %s, %d "+
				"msat %s", id, an, h, v, an, w, bn))
		}
	}
	for h, w := range b {
		if _, ok := a[h]; !ok {
			out = append(out, fmt.Sprintf("%s: %s: %d msat %s, not %s",
				id, h, w, bn, an))
		}
	}
	return out
}

// rcvPayment is one ledger entry as the receiver's API lists it.
type rcvPayment struct {
	Hash     string `json:"payment_hash"`
	Sequence uint64 `json:"sequence"`
	Amount   uint64 `json:"amount_msat"`
	State    string `json:"state"`
	Settled  bool   `json:"settled"`
}

func (s *scaleOutRun) receiverPayments(ctx context.Context, id string) (
	[]rcvPayment, error) {

	var all []rcvPayment
	after := uint64(0)
	for {
		var page struct {
			Payments []rcvPayment `json:"payments"`
		}
		err := s.rcvAPI[0].do(ctx, "GET", fmt.Sprintf(
			"/v1/subscriptions/%s/payments?limit=1000&after_sequence=%d",
			id, after), nil, &page)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Payments...)
		if len(page.Payments) < 1000 {
			return all, nil
		}
		after = page.Payments[len(page.Payments)-1].Sequence
	}
}

// senderPaid is the msat of the sender's succeeded payments of one
// subscription, by hash.
func (s *scaleOutRun) senderPaid(ctx context.Context, id string) (
	map[string]uint64, error) {

	out := map[string]uint64{}
	after := uint64(0)
	for {
		var page struct {
			Payments []struct {
				Hash   string `json:"payment_hash"`
				State  string `json:"state"`
				Cancel bool   `json:"cancel"`
				Amount uint64 `json:"amount_msat"`
			} `json:"payments"`
			NextAfter string `json:"next_after"`
		}
		err := s.sndAPI.do(ctx, "GET", fmt.Sprintf(
			"/v1/subscriptions/%s/payments?limit=1000&after=%d", id,
			after), nil, &page)
		if err != nil {
			return nil, err
		}
		for _, p := range page.Payments {
			if p.State == "succeeded" && !p.Cancel {
				out[p.Hash] = p.Amount
			}
		}
		if len(page.Payments) < 1000 {
			return out, nil
		}
		if after, err = strconv.ParseUint(page.NextAfter, 10, 64); err != nil {
			return nil, err
		}
	}
}

// cpuSnap is the CPU time of every process of a run, by role, and the
// machine's busy and total time, at one moment.
type cpuSnap struct {
	at         time.Time
	byRole     map[string]time.Duration
	busy, tot  uint64 // /proc/stat jiffies
	processSet map[int]string
}

// since is cores used per role between o and c, and the machine's busy
// fraction. Only processes alive at both moments count.
func (c cpuSnap) since(o cpuSnap) (map[string]float64, float64) {
	out := map[string]float64{}
	wall := c.at.Sub(o.at).Seconds()
	for role, v := range c.byRole {
		out[role] = (v - o.byRole[role]).Seconds() / wall
	}
	busy := 0.0
	if c.tot > o.tot {
		busy = float64(c.busy-o.busy) / float64(c.tot-o.tot)
	}
	return out, busy
}

// cpuSample reads the CPU time of alice, bob, each provider lnd, btcd,
// each receiver, the sender, PostgreSQL (the postmaster and its
// backends) and this process.
func (s *scaleOutRun) cpuSample() (cpuSnap, error) {
	snap := cpuSnap{at: time.Now(), byRole: map[string]time.Duration{}}
	roles := map[int]string{os.Getpid(): "bench process"}
	for i, r := range s.rcvs {
		roles[r.cmd.Process.Pid] = "receiver " + s.providers[i].Name
	}
	roles[s.snd.cmd.Process.Pid] = "sender"
	lndDirs := map[string]string{}
	for _, n := range s.nw.net.Nodes() {
		lndDirs["--lnddir="+n.Dir] = "lnd " + n.Name
	}
	postmaster := 0
	if b, err := os.ReadFile(filepath.Join(s.srv.Dir, "data",
		"postmaster.pid")); err == nil {
		postmaster, _ = strconv.Atoi(strings.SplitN(string(b), "\n",
			2)[0])
	}
	netDir := filepath.Join(s.opts.WorkDir, "network")
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return snap, err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, cpu, err := procStat(pid)
		if err != nil {
			continue
		}
		role := roles[pid]
		if role == "" && postmaster != 0 && (pid == postmaster ||
			ppid == postmaster) {
			role = "postgres"
		}
		if role == "" {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			args := strings.Split(string(cmdline), "\x00")
			for _, a := range args {
				if r, ok := lndDirs[a]; ok {
					role = r
					break
				}
			}
			if role == "" && filepath.Base(args[0]) == "btcd" &&
				strings.Contains(string(cmdline), netDir) {
				role = "btcd"
			}
		}
		if role != "" {
			snap.byRole[role] += cpu
		}
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return snap, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		snap.tot += n
		// idle and iowait are the 4th and 5th fields.
		if i != 3 && i != 4 {
			snap.busy += n
		}
	}
	return snap, nil
}

// procStat is a process's parent and user plus system CPU time.
func procStat(pid int) (int, time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	st := string(b)
	i := strings.LastIndexByte(st, ')')
	if i < 0 || i+2 > len(st) {
		return 0, 0, errors.New("bad stat")
	}
	f := strings.Fields(st[i+2:])
	if len(f) < 13 {
		return 0, 0, errors.New("short stat")
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	sy, _ := strconv.ParseUint(f[12], 10, 64)
	// USER_HZ is 100 on Linux.
	return ppid, time.Duration(ut+sy) * 10 * time.Millisecond, nil
}

// pgTB lets the bench command, which is not a test, use pgtest's
// throw-away servers: pgtest wants a testing.TB for its cleanups and
// failures. Methods pgtest does not call are left to the embedded nil
// interface (and would panic).
type pgTB struct {
	testing.TB
	name     string
	cleanups []func()
	errs     []string
}

// pgFatal is the panic Fatalf and Skipf raise, recovered by do.
type pgFatal struct{}

func (t *pgTB) Helper()             {}
func (t *pgTB) Name() string        { return t.name }
func (t *pgTB) Cleanup(f func())    { t.cleanups = append(t.cleanups, f) }
func (t *pgTB) Logf(string, ...any) {}
func (t *pgTB) Errorf(format string, args ...any) {
	t.errs = append(t.errs, fmt.Sprintf(format, args...))
}
func (t *pgTB) Fatalf(format string, args ...any) {
	t.Errorf(format, args...)
	panic(pgFatal{})
}
func (t *pgTB) Skipf(format string, args ...any) { t.Fatalf(format, args...) }
func (t *pgTB) Failed() bool                     { return len(t.errs) > 0 }
func (t *pgTB) TempDir() string {
	d, err := os.MkdirTemp("", "satstream-bench-pg-*")
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// do runs f, turning a Fatalf or Skipf inside it into an error.
func (t *pgTB) do(f func()) (err error) {
	n := len(t.errs)
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(pgFatal); !ok {
				panic(r)
			}
		}
		if len(t.errs) > n {
			err = errors.New(strings.Join(t.errs[n:], "; "))
		}
	}()
	f()
	return nil
}

// cleanup runs the cleanups, newest first, as testing does.
func (t *pgTB) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		func() {
			defer func() { _ = recover() }()
			t.cleanups[i]()
		}()
	}
	t.cleanups = nil
}
