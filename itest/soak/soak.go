// Package soak runs satstream for a long while on a regtest network and
// checks that it holds up: many subscriptions stream from a
// satstream-sender process to a satstream-receiver process while a hostile
// payer sends keysends with random subscription ids; both daemons' resident
// memory and goroutines must stay flat after warm-up, the receiver's
// ledger must not grow with the hostile keysends, and the ledger invariant
// must hold exactly at the end. `go run ./itest/cmd/soak` runs it (10
// minutes, 1,000 subscriptions, 10,000 hostile keysends); TestSoakQuick
// runs the --quick settings in the test command so the code never rots.
package soak

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/record"
	"github.com/satstream/satstream/itest/bins"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/satstream/satstream/tlv"
)

// Config is one soak run.
type Config struct {
	// Subs is the number of subscriptions streaming.
	Subs int
	// Duration is how long they stream at least (from the moment all
	// are subscribed); the streams go on until the hostile payer has
	// sent its keysends too, up to twice Duration.
	Duration time.Duration
	// Increment is each payment's paid time; Subs/Increment is the
	// honest payment rate.
	Increment time.Duration
	// Hostile is the number of keysends with random subscription ids
	// the hostile payer sends, paced over Duration (as fast as lnd
	// takes them, when that is slower).
	Hostile int
	// HostileWorkers is how many of them are in flight at once.
	HostileWorkers int
	// SampleEvery is the interval between RSS/goroutine samples.
	SampleEvery time.Duration
	// AssertFlat fails the run when RSS or goroutines grow after
	// warm-up (see flat); a run too short to warm up only reports.
	AssertFlat bool
	// HoldTime is the provider lnd's --keysend-hold-time.
	HoldTime time.Duration
	// Dir holds the network and daemon directories ("" = a temporary
	// one, removed after a run that passed).
	Dir string
}

// DefaultConfig is the full soak: 1,000 subscriptions for 10 minutes and
// 10,000 hostile keysends.
func DefaultConfig() Config {
	return Config{
		Subs: 1000, Duration: 10 * time.Minute, Increment: 5 * time.Minute,
		Hostile: 10_000, HostileWorkers: 32, SampleEvery: 10 * time.Second,
		AssertFlat: true, HoldTime: 30 * time.Second,
	}
}

// QuickConfig is the --quick soak the test command runs: about a minute,
// a few subscriptions, ~300 hostile keysends; flatness is reported only
// (a minute is too short to tell growth from warm-up).
func QuickConfig() Config {
	return Config{
		Subs: 10, Duration: time.Minute, Increment: 10 * time.Second,
		Hostile: 300, HostileWorkers: 8, SampleEvery: 2 * time.Second,
		AssertFlat: false, HoldTime: 30 * time.Second,
	}
}

// Tolerances of the flatness check (see flat).
const (
	// flatRatio is how much the last third's mean may exceed the
	// middle third's.
	flatRatio = 0.15
	// rssSlackKiB and goroutineSlack are absolute allowances on top,
	// for small processes where 15% is a few pages or goroutines.
	rssSlackKiB    = 8 * 1024
	goroutineSlack = 20
	// hostileRowBound is the largest share of the hostile keysends that
	// may leave a payment row in the receiver's ledger.
	hostileRowBound = 0.01
)

// Series is one daemon's samples, summarised.
type Series struct {
	Name string
	// RSSWarmKiB and GoroutinesWarm are the medians of the middle
	// third (after warm-up), RSSEndKiB and GoroutinesEnd of the last
	// third; the maxima are over both.
	RSSWarmKiB, RSSEndKiB         float64
	GoroutinesWarm, GoroutinesEnd float64
	RSSMaxKiB, GoroutinesMax      uint64
	Samples                       int
	// Flat is empty when both figures stayed flat, else why not.
	Flat string
}

// Result is what a soak run measured.
type Result struct {
	Config   Config
	Streamed time.Duration
	// Credited is the number of payments the receiver credited (and
	// lnd settled, and the sender paid), CreditedMsat their sum.
	Credited     int
	CreditedMsat uint64
	// MinPerSub is the fewest payments any one subscription got.
	MinPerSub int
	// HostileSent, HostileRefused, HostileSettled, HostileOther:
	// keysends the hostile payer sent, those lnd failed back with
	// incorrect_payment_details (refused), those that settled (kept
	// money for nothing: must be none), and any other outcome (another
	// failure reason or an RPC error, e.g. under load).
	HostileSent, HostileRefused, HostileSettled, HostileOther int
	// RefusalsCounted is the receiver's own count of
	// unknown_subscription refusals during the run.
	RefusalsCounted uint64
	// Ledger rows before streaming and at the end: all keys, and
	// payment rows.
	RowsBefore, RowsAfter, PaymentRowsBefore, PaymentRowsAfter int
	Receiver, Sender                                           Series
	Invariant                                                  string
}

// soak is a run in progress.
type soak struct {
	cfg   Config
	out   io.Writer
	dir   string
	net   *regtest.Network
	alice *regtest.Node
	bob   *regtest.Node
	carol *regtest.Node
	rcv   *daemon
	snd   *daemon
	subs  []string
}

func (s *soak) logf(format string, args ...any) {
	fmt.Fprintf(s.out, "soak: "+format+"\n", args...)
}

// Run runs a soak and returns what it measured; the error says which
// promise broke (the Result is filled as far as the run got).
func Run(ctx context.Context, cfg Config, out io.Writer) (res *Result,
	err error) {

	res = &Result{Config: cfg}
	s := &soak{cfg: cfg, out: out, dir: cfg.Dir}
	if s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "satstream-soak-*"); err != nil {
			return res, err
		}
		defer func() {
			if err == nil {
				os.RemoveAll(s.dir)
			} else {
				s.logf("kept %s", s.dir)
			}
		}()
	}
	paths, err := bins.Ensure(ctx, out)
	if err != nil {
		return res, err
	}
	defer func() {
		if s.snd != nil {
			s.snd.kill()
		}
		if s.rcv != nil {
			s.rcv.kill()
		}
		if s.net != nil {
			if cerr := s.net.Close(); err == nil && cerr != nil {
				err = cerr
			}
		}
	}()
	if err := s.setUp(ctx, paths); err != nil {
		return res, err
	}
	return res, s.run(ctx, res)
}

// setUp starts alice -> bob -> carol (carol holding keysends), the
// receiver beside carol and the sender beside alice.
func (s *soak) setUp(ctx context.Context, paths *bins.Paths) error {
	start := time.Now()
	net, err := regtest.New(ctx, regtest.Config{
		Dir: filepath.Join(s.dir, "net"), Bins: paths})
	if err != nil {
		return err
	}
	s.net = net
	nodes, err := net.AddNodes(ctx,
		regtest.NodeConfig{Name: "alice"},
		regtest.NodeConfig{Name: "bob"},
		regtest.NodeConfig{Name: "carol", ExtraArgs: []string{
			"--keysend-hold-time=" + s.cfg.HoldTime.String(),
		}},
	)
	if err != nil {
		return err
	}
	s.alice, s.bob, s.carol = nodes[0], nodes[1], nodes[2]
	if err := net.Line(ctx, 50_000_000, 10_000_000, nodes...); err != nil {
		return err
	}
	s.logf("network up in %v", time.Since(start).Round(time.Second))

	binDir := filepath.Join(s.dir, "bin")
	var rbin, sbin string
	if rbin, err = buildDaemon(ctx, binDir, "satstream-receiver"); err != nil {
		return err
	}
	if sbin, err = buildDaemon(ctx, binDir, "satstream-sender"); err != nil {
		return err
	}
	lnd := func(n *regtest.Node) []string {
		return []string{
			"--lnd.host=" + n.RPCAddr,
			"--lnd.tlspath=" + n.TLSCertPath,
			"--lnd.macaroonpath=" + n.AdminMacPath,
			"--debuglevel=info",
		}
	}
	s.rcv, err = newDaemon("satstream-receiver", rbin,
		filepath.Join(s.dir, "receiver"), lnd(s.carol))
	if err != nil {
		return err
	}
	s.rcv.ready = func(h map[string]any) error {
		if h["lnd_connected"] != true {
			return errors.New("receiver: lnd not connected yet")
		}
		return nil
	}
	s.snd, err = newDaemon("satstream-sender", sbin,
		filepath.Join(s.dir, "sender"), append(lnd(s.alice),
			"--payments.maxinflight=200",
			"--payments.backoffmax=5s"))
	if err != nil {
		return err
	}
	s.snd.ready = func(h map[string]any) error {
		if st, _ := h["lnd"].(string); len(st) < 9 ||
			st[:9] != "connected" {
			return fmt.Errorf("sender lnd: %v", h["lnd"])
		}
		return nil
	}
	return s.rcv.start(ctx)
}

// run creates the subscriptions, streams them with the hostile payer
// going, samples both daemons, and checks everything at the end.
func (s *soak) run(ctx context.Context, res *Result) error {
	inc := int(s.cfg.Increment / time.Second)
	var plan struct {
		ID string `json:"id"`
	}
	if code := s.rcv.do(ctx, "POST", "/v1/plans", map[string]any{
		"label": "soak", "price_msat_per_sec": 100,
		"min_payment_msat": 100, "max_prepay_sec": 4 * inc,
		"default_increment_sec": inc, "grace_period_sec": inc,
	}, &plan); code != 201 {
		return fmt.Errorf("create plan: HTTP %d", code)
	}
	offers := make([]string, 0, s.cfg.Subs)
	for i := 0; i < s.cfg.Subs; i++ {
		var sub struct {
			ID    string `json:"id"`
			Offer string `json:"offer"`
		}
		if code := s.rcv.do(ctx, "POST", "/v1/subscriptions",
			map[string]any{"plan_id": plan.ID}, &sub); code != 201 {
			return fmt.Errorf("create subscription %d: HTTP %d", i, code)
		}
		s.subs = append(s.subs, sub.ID)
		offers = append(offers, sub.Offer)
	}

	// The ledger before streaming: the receiver stops for the count.
	if err := s.rcv.stop(); err != nil {
		return err
	}
	ledger := filepath.Join(s.rcv.dir, "data", "regtest", "ledger")
	var err error
	res.RowsBefore, res.PaymentRowsBefore, err = ledgerRows(ctx, ledger)
	if err != nil {
		return fmt.Errorf("count ledger rows: %w", err)
	}
	if err := s.rcv.start(ctx); err != nil {
		return err
	}
	refusalsBefore, err := s.refusals(ctx)
	if err != nil {
		return err
	}

	if err := s.snd.start(ctx); err != nil {
		return err
	}
	for i, offer := range offers {
		code := s.snd.do(ctx, "POST", "/v1/subscriptions", map[string]any{
			"offer":         offer,
			"increment_sec": uint64(s.cfg.Increment / time.Second),
			"buffer_sec":    uint64(s.cfg.Increment / 2 / time.Second),
			"fee_limit_ppm": 1_000_000, "fee_limit_msat": 10_000,
		}, nil)
		if code != 201 {
			return fmt.Errorf("subscribe %s: HTTP %d", s.subs[i], code)
		}
	}
	s.logf("%d subscriptions streaming for %v, %d hostile keysends "+
		"on the way", len(s.subs), s.cfg.Duration, s.cfg.Hostile)

	// Stream, with the hostile payer and the sampler going, for
	// Duration and until the hostile payer is done (at most twice
	// Duration: then it is stopped and the judge says how far it got).
	began := time.Now()
	var (
		wg                    sync.WaitGroup
		sent, refused, other  atomic.Int64
		settled               atomic.Int64
		rSamples, sSamples    []sample
		sampleErr, hostileErr error
	)
	hostileCtx, stopHostile := context.WithTimeout(ctx, 2*s.cfg.Duration)
	defer stopHostile()
	hostileDone := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		hostileErr = s.hostile(hostileCtx, &sent, &refused,
			&settled, &other)
	}()
	go func() { wg.Wait(); close(hostileDone) }()
	minEnd := time.NewTimer(s.cfg.Duration)
	defer minEnd.Stop()
	tick := time.NewTicker(s.cfg.SampleEvery)
	nextReport := began.Add(time.Minute)
	durationOver, hostileOver := false, false
	for !durationOver || !hostileOver {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-minEnd.C:
			durationOver = true
			if !hostileOver {
				s.logf("%v streamed; waiting for the hostile "+
					"payer (%d of %d sent)", s.cfg.Duration,
					sent.Load(), s.cfg.Hostile)
			}
			continue
		case <-hostileDone:
			hostileOver = true
			hostileDone = nil
			continue
		case <-tick.C:
		}
		at := time.Since(began)
		rs, err := s.rcv.sample(ctx, at)
		if err != nil {
			sampleErr = err
			break
		}
		ss, err := s.snd.sample(ctx, at)
		if err != nil {
			sampleErr = err
			break
		}
		rSamples = append(rSamples, rs)
		sSamples = append(sSamples, ss)
		if time.Now().After(nextReport) {
			nextReport = nextReport.Add(time.Minute)
			s.logf("%v: receiver %d MiB %d goroutines, sender %d "+
				"MiB %d goroutines, hostile %d sent", at.Round(
				time.Second), rs.rssKiB/1024, rs.goroutines,
				ss.rssKiB/1024, ss.goroutines, sent.Load())
		}
	}
	tick.Stop()
	res.Streamed = time.Since(began)
	stopHostile()
	wg.Wait()
	res.HostileSent = int(sent.Load())
	res.HostileRefused = int(refused.Load())
	res.HostileOther = int(other.Load())
	res.HostileSettled = int(settled.Load())
	res.Receiver = summarise("receiver", rSamples)
	res.Sender = summarise("sender", sSamples)
	if err := writeSamples(s.dir, rSamples, sSamples); err != nil {
		s.logf("keeping samples: %v", err)
	}
	if sampleErr != nil {
		return fmt.Errorf("sampling: %w", sampleErr)
	}
	if hostileErr != nil {
		return fmt.Errorf("hostile payer: %w", hostileErr)
	}

	inv, err := s.checkInvariant(ctx)
	if err != nil {
		res.Invariant = "BROKEN: " + err.Error()
		return fmt.Errorf("ledger invariant: %w", err)
	}
	res.Invariant = fmt.Sprintf("holds: %d subscriptions, %d payments, "+
		"%d msat settled = credited = paid, hash by hash; sender's "+
		"paid_until at most %v behind the receiver's", inv.subs,
		inv.credited, inv.msat, inv.maxBehind.Round(time.Millisecond))
	res.Credited, res.CreditedMsat = inv.credited, inv.msat
	res.MinPerSub = math.MaxInt
	for _, id := range s.subs {
		var rv struct {
			Payments int `json:"payments"`
		}
		if s.rcv.do(ctx, "GET", "/v1/subscriptions/"+id, nil, &rv) != 200 {
			return fmt.Errorf("receiver subscription %s", id)
		}
		res.MinPerSub = min(res.MinPerSub, rv.Payments)
	}
	refusalsAfter, err := s.refusals(ctx)
	if err != nil {
		return err
	}
	res.RefusalsCounted = refusalsAfter["unknown_subscription"] -
		refusalsBefore["unknown_subscription"]

	if err := s.snd.stop(); err != nil {
		return err
	}
	if err := s.rcv.stop(); err != nil {
		return err
	}
	res.RowsAfter, res.PaymentRowsAfter, err = ledgerRows(ctx, ledger)
	if err != nil {
		return fmt.Errorf("count ledger rows: %w", err)
	}
	return s.judge(res)
}

// judge checks the run's figures against the soak's promises.
func (s *soak) judge(res *Result) error {
	var errs []error
	if res.MinPerSub < 2 {
		errs = append(errs, fmt.Errorf("a subscription got only %d "+
			"payments: the streams did not flow", res.MinPerSub))
	}
	if res.HostileSent < s.cfg.Hostile*9/10 {
		errs = append(errs, fmt.Errorf("the hostile payer sent only "+
			"%d of %d keysends", res.HostileSent, s.cfg.Hostile))
	}
	if res.HostileSettled > 0 {
		errs = append(errs, fmt.Errorf("%d hostile keysends settled: "+
			"the receiver kept money it could not credit",
			res.HostileSettled))
	}
	// Failures other than a refusal (a timeout under load) prove
	// nothing either way, but must stay rare.
	if res.HostileOther > res.HostileSent/100 {
		errs = append(errs, fmt.Errorf("%d of %d hostile keysends "+
			"neither refused nor settled", res.HostileOther,
			res.HostileSent))
	}
	// Every credited payment has its payment row; anything beyond that
	// came from refusals, and the hostile ones must leave (almost) none.
	extra := res.PaymentRowsAfter - res.PaymentRowsBefore - res.Credited
	if bound := int(hostileRowBound * float64(s.cfg.Hostile)); extra > bound {
		errs = append(errs, fmt.Errorf("the receiver's ledger kept %d "+
			"payment rows beyond its %d credits (bound %d for %d "+
			"hostile keysends)", extra, res.Credited, bound,
			res.HostileSent))
	}
	for _, sr := range []Series{res.Receiver, res.Sender} {
		if sr.Flat != "" && s.cfg.AssertFlat {
			errs = append(errs, fmt.Errorf("%s not flat after "+
				"warm-up: %s", sr.Name, sr.Flat))
		}
	}
	return errors.Join(errs...)
}

// refusals reads the receiver's refusal counters by reason.
func (s *soak) refusals(ctx context.Context) (map[string]uint64, error) {
	var v struct {
		Refusals map[string]uint64 `json:"refusals"`
	}
	if code := s.rcv.do(ctx, "GET", "/v1/refusals", nil, &v); code != 200 {
		return nil, fmt.Errorf("refusals: HTTP %d", code)
	}
	return v.Refusals, nil
}

// hostile sends cfg.Hostile keysends of 1 sat from bob to carol, each
// with well-formed records for a random subscription id nobody made,
// paced over the duration, and counts how lnd answered.
func (s *soak) hostile(ctx context.Context, sent, refused, settled,
	other *atomic.Int64) error {

	if s.cfg.Hostile == 0 {
		return nil
	}
	pace := s.cfg.Duration * 9 / 10 / time.Duration(s.cfg.Hostile)
	tick := time.NewTicker(max(pace, time.Millisecond))
	defer tick.Stop()
	sem := make(chan struct{}, s.cfg.HostileWorkers)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for i := 0; i < s.cfg.Hostile; i++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			st, err := s.junkKeysend(ctx)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				other.Add(1)
			case st.State == lnrpc.Payment_FAILED && st.FailureReason ==
				lnrpc.PaymentFailureReason_FAILURE_REASON_INCORRECT_PAYMENT_DETAILS:
				refused.Add(1)
			case st.State == lnrpc.Payment_SUCCEEDED:
				settled.Add(1)
			default:
				other.Add(1)
			}
			sent.Add(1)
		}()
	}
	wg.Wait()
	if firstErr != nil {
		s.logf("hostile payer: first error: %v", firstErr)
	}
	return nil
}

// junkKeysend pays carol 1 sat from bob with records for a random
// subscription id.
func (s *soak) junkKeysend(ctx context.Context) (lndclient.PaymentStatus,
	error) {

	id, err := tlv.NewSubscriptionID()
	if err != nil {
		return lndclient.PaymentStatus{}, err
	}
	r := tlv.Records{Version: 1, SubscriptionID: id, Sequence: 1}
	recs, err := r.Encode()
	if err != nil {
		return lndclient.PaymentStatus{}, err
	}
	var preimage lntypes.Preimage
	if _, err := rand.Read(preimage[:]); err != nil {
		return lndclient.PaymentStatus{}, err
	}
	hash := preimage.Hash()
	recs[record.KeySendType] = preimage[:]
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	statuses, errs, err := s.bob.Services().Router.SendPayment(ctx,
		lndclient.SendPaymentRequest{
			Target: s.carol.PubKey, Amount: btcutil.Amount(1),
			PaymentHash: &hash, CustomRecords: recs, MaxFee: 10,
			Timeout: time.Minute,
		})
	if err != nil {
		return lndclient.PaymentStatus{}, err
	}
	for {
		select {
		case st := <-statuses:
			if st.State == lnrpc.Payment_SUCCEEDED ||
				st.State == lnrpc.Payment_FAILED {
				return st, nil
			}
		case err := <-errs:
			return lndclient.PaymentStatus{}, err
		case <-ctx.Done():
			return lndclient.PaymentStatus{}, ctx.Err()
		}
	}
}

// summarise reduces samples to warm-up and end figures and judges
// flatness. The first third of the samples is warm-up. After it, for RSS
// and for goroutines alike:
//   - the median of the last third may exceed the median of the middle
//     third by at most flatRatio, plus a small absolute slack;
//   - there is no sustained growth of the floor: the post-warm-up
//     samples are cut into floorWindows windows, and the least-squares
//     trend of the windows' minima, taken over their span, may add at
//     most flatRatio of their mean, plus the same slack.
//
// Medians and floors, not means: the sender pays in bursts (subscriptions
// made together pay together), so its goroutines are ~40 between bursts
// and ~630 during one, and how many bursts a third happens to sample
// moved its mean five-fold in the first full soak. A leak raises the
// floor and the median; a burst raises neither. The slack allows what
// climbs a few MiB and stops (badger filling its memtable and log pages).
func summarise(name string, samples []sample) Series {
	sr := Series{Name: name, Samples: len(samples)}
	if len(samples) < 2*floorWindows {
		sr.Flat = fmt.Sprintf("only %d samples", len(samples))
		return sr
	}
	third := len(samples) / 3
	mid, last, after := samples[third:2*third], samples[2*third:],
		samples[third:]
	median := func(ss []sample, f func(sample) uint64) float64 {
		v := make([]float64, len(ss))
		for i, s := range ss {
			v[i] = float64(f(s))
		}
		sort.Float64s(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	// floorTrend is the least-squares slope of the windows' minima
	// (at each window's middle) times their span, and their mean.
	floorTrend := func(ss []sample, f func(sample) uint64) (float64,
		float64) {

		var xs, ys []float64
		for w := 0; w < floorWindows; w++ {
			win := ss[w*len(ss)/floorWindows : (w+1)*len(ss)/floorWindows]
			lo := f(win[0])
			for _, s := range win {
				lo = min(lo, f(s))
			}
			xs = append(xs, (win[0].at+win[len(win)-1].at).Seconds()/2)
			ys = append(ys, float64(lo))
		}
		var mx, my float64
		for i := range xs {
			mx += xs[i]
			my += ys[i]
		}
		n := float64(len(xs))
		mx, my = mx/n, my/n
		var sxy, sxx float64
		for i := range xs {
			sxy += (xs[i] - mx) * (ys[i] - my)
			sxx += (xs[i] - mx) * (xs[i] - mx)
		}
		if sxx == 0 {
			return 0, my
		}
		return sxy / sxx * (xs[len(xs)-1] - xs[0]), my
	}
	rss := func(s sample) uint64 { return s.rssKiB }
	gor := func(s sample) uint64 { return s.goroutines }
	sr.RSSWarmKiB, sr.RSSEndKiB = median(mid, rss), median(last, rss)
	sr.GoroutinesWarm, sr.GoroutinesEnd = median(mid, gor),
		median(last, gor)
	for _, s := range after {
		sr.RSSMaxKiB = max(sr.RSSMaxKiB, s.rssKiB)
		sr.GoroutinesMax = max(sr.GoroutinesMax, s.goroutines)
	}
	var why []string
	for _, m := range []struct {
		what  string
		f     func(sample) uint64
		slack float64
		warm  float64
		end   float64
	}{
		{"RSS (KiB)", rss, rssSlackKiB, sr.RSSWarmKiB, sr.RSSEndKiB},
		{"goroutines", gor, goroutineSlack, sr.GoroutinesWarm,
			sr.GoroutinesEnd},
	} {
		if m.end > m.warm*(1+flatRatio)+m.slack {
			why = append(why, fmt.Sprintf("%s median %.0f -> %.0f",
				m.what, m.warm, m.end))
		}
		if tr, mean := floorTrend(after, m.f); tr > mean*flatRatio+
			m.slack {
			why = append(why, fmt.Sprintf("%s floor trend +%.0f "+
				"after warm-up", m.what, tr))
		}
	}
	if len(why) > 0 {
		sr.Flat = strings.Join(why, "; ")
	}
	return sr
}

// floorWindows is how many windows the floor trend is taken over.
const floorWindows = 6

// writeSamples keeps the raw samples as CSV in dir, for a second look.
func writeSamples(dir string, rs, ss []sample) error {
	var b strings.Builder
	b.WriteString("seconds,receiver_rss_kib,receiver_goroutines," +
		"sender_rss_kib,sender_goroutines\n")
	for i := range rs {
		fmt.Fprintf(&b, "%.0f,%d,%d,%d,%d\n", rs[i].at.Seconds(),
			rs[i].rssKiB, rs[i].goroutines, ss[i].rssKiB,
			ss[i].goroutines)
	}
	return os.WriteFile(filepath.Join(dir, "samples.csv"),
		[]byte(b.String()), 0o644)
}

// Print writes the run's summary table.
func (r *Result) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	c := r.Config
	fmt.Fprintf(tw, "subscriptions\t%d (increment %v, hold time %v)\n",
		c.Subs, c.Increment, c.HoldTime)
	fmt.Fprintf(tw, "streamed\t%v\n", r.Streamed.Round(time.Second))
	fmt.Fprintf(tw, "payments credited\t%d (%d msat; fewest per "+
		"subscription %d)\n", r.Credited, r.CreditedMsat, r.MinPerSub)
	fmt.Fprintf(tw, "hostile keysends\t%d sent, %d refused, %d settled, "+
		"%d other (receiver counted %d unknown_subscription)\n",
		r.HostileSent, r.HostileRefused, r.HostileSettled, r.HostileOther,
		r.RefusalsCounted)
	fmt.Fprintf(tw, "ledger keys\t%d before, %d after (payment rows %d "+
		"-> %d: +%d for %d credits)\n", r.RowsBefore, r.RowsAfter,
		r.PaymentRowsBefore, r.PaymentRowsAfter,
		r.PaymentRowsAfter-r.PaymentRowsBefore, r.Credited)
	fmt.Fprintf(tw, "\n")
	fmt.Fprintf(tw, "daemon\tsamples\tRSS warm-up\tRSS end\tRSS max\t"+
		"goroutines warm-up\tgoroutines end\tgoroutines max\tflat\n")
	for _, s := range []Series{r.Receiver, r.Sender} {
		flat := "yes"
		if s.Flat != "" {
			flat = "no: " + s.Flat
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f MiB\t%.1f MiB\t%.1f MiB\t%.0f\t"+
			"%.0f\t%d\t%s\n", s.Name, s.Samples, s.RSSWarmKiB/1024,
			s.RSSEndKiB/1024, float64(s.RSSMaxKiB)/1024,
			s.GoroutinesWarm, s.GoroutinesEnd, s.GoroutinesMax, flat)
	}
	fmt.Fprintf(tw, "\ninvariant\t%s\n", r.Invariant)
	tw.Flush()
}
