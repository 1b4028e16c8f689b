// Package bench measures satstream against plain keysend on one regtest
// network, in one run (issue 13): A, a keysend loop to a carol without hold
// time; A', the same with carol in hold mode and a program that settles at
// once; B, satstream-sender streaming to satstream-receiver; the receiver
// without lnd; the daemons at scale; and writes docs/benchmarks.md with its
// charts. go run ./itest/cmd/bench runs it; --quick runs a short version
// that the itests run so it never rots.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/itest/bins"
	"github.com/satstream/satstream/sender"
)

// Options say what to run and where to write.
type Options struct {
	// Quick runs a short version: levels 1 and 8, seconds per level,
	// smaller scale runs.
	Quick bool
	// OutDir receives benchmarks.md and bench/*.svg.
	OutDir string
	// OperatorsDoc, if set, gets its capacity section rewritten.
	OperatorsDoc string
	// WorkDir holds the network and daemons' data (a temp dir if empty,
	// removed at the end).
	WorkDir string
	// Log receives progress lines and daemon logs go to WorkDir.
	Log io.Writer
	// Levels overrides the in-flight bounds.
	Levels []int
	// Warmup and Measure override the per-level durations.
	Warmup, Measure time.Duration
	// Only, if not empty, runs just these parts ("a", "a2", "b",
	// "synthetic", "scale") and writes no report, for profiling one part
	// back to back with another; or, with OnlyScaleOut, the scale-out
	// section alone, written to its own file in OutDir (not
	// benchmarks.md).
	Only map[string]bool
	// ProfileDir, with Only scale alone, receives the receiver's profiles.
	ProfileDir string
}

// Parts are the values --only takes.
var Parts = []string{"a", "a2", "b", "synthetic", OnlyScale, OnlyScaleOut}

// IsPart says whether s is one of Parts.
func IsPart(s string) bool { return slices.Contains(Parts, s) }

// runs says whether part is run.
func (o *Options) runs(part string) bool {
	return len(o.Only) == 0 || o.Only[part]
}

// Amount is every payment of A, A' and B: above lnd's dust limit, so each
// HTLC is a real output of the commitment transactions as in production.
const Amount = lnwire.MilliSatoshi(500_000)

// FeeLimitPPM is the routing fee limit of every payment (the demo's).
const FeeLimitPPM = 50_000

// Result is everything a run measured.
type Result struct {
	Opts      Options
	Machine   Machine
	Started   time.Time
	Took      time.Duration
	A, A2, B  []LevelResult
	Synthetic []SyntheticResult
	RcvScale  *ReceiverScale
	SndScale  *SenderScale
	FeeBase   int64
	FeePPM    int64
	Profiles  map[string]string // name -> pprof top text
	Notes     []string
	Serialise string
	ScaleOut  *ScaleOut
}

// scaleSizes are the scale runs' sizes: full, quick.
type scaleSizes struct {
	rcvSubs, expiring, clients, sndSubs int
	load, idle                          time.Duration
}

func (o *Options) fill() {
	if len(o.Levels) == 0 {
		o.Levels = []int{1, 4, 8, 16, 32}
		if o.Quick {
			o.Levels = []int{1, 8}
		}
	}
	if o.Warmup == 0 {
		o.Warmup = 3 * time.Second
		if o.Quick {
			o.Warmup = time.Second
		}
	}
	if o.Measure == 0 {
		o.Measure = 20 * time.Second
		if o.Quick {
			o.Measure = 3 * time.Second
		}
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

func (o *Options) sizes() scaleSizes {
	if o.Quick {
		return scaleSizes{rcvSubs: 10_000, expiring: 1_000, clients: 200,
			sndSubs: 1_000, load: 3 * time.Second,
			idle: 5 * time.Second}
	}
	return scaleSizes{rcvSubs: 100_000, expiring: 10_000, clients: 200,
		sndSubs: 10_000, load: 20 * time.Second, idle: time.Minute}
}

// profileLevel is the B level profiled: the highest one run at most 16.
func (o *Options) profileLevel() int {
	best := o.Levels[0]
	for _, l := range o.Levels {
		if l <= 16 {
			best = l
		}
	}
	return best
}

func (o *Options) say(format string, args ...any) {
	fmt.Fprintf(o.Log, "==> "+format+"\n", args...)
}

// Run runs every benchmark and writes the report.
func Run(ctx context.Context, opts Options) (*Result, error) {
	opts.fill()
	res := &Result{Opts: opts, Started: time.Now().UTC(),
		Profiles: map[string]string{}}
	if opts.WorkDir == "" {
		dir, err := os.MkdirTemp("", "satstream-bench-*")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		opts.WorkDir = dir
	}
	if err := os.MkdirAll(opts.WorkDir, 0o755); err != nil {
		return nil, err
	}
	if opts.OutDir != "" {
		if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
			return nil, err
		}
	}
	logf, err := os.Create(filepath.Join(opts.WorkDir, "daemons.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	profDir := filepath.Join(opts.WorkDir, "profiles")
	if len(opts.Only) == 1 && opts.Only[OnlyScale] {
		err := runScaleOnly(ctx, opts, res, filepath.Join(opts.WorkDir,
			"bin"), logf)
		return res, err
	}

	opts.say("building or reusing lnd and btcd")
	paths, err := bins.Ensure(ctx, opts.Log)
	if err != nil {
		return nil, err
	}
	res.Machine = describeMachine(ctx, opts.WorkDir, paths.Lnd)
	opts.say("machine: %d cores, load %s", res.Machine.Cores,
		res.Machine.LoadStart)

	opts.say("building satstream-receiver and satstream-sender")
	binDir := filepath.Join(opts.WorkDir, "bin")
	if err := buildDaemons(ctx, binDir, logf); err != nil {
		return nil, err
	}
	if opts.Only[OnlyScaleOut] {
		return runScaleOutOnly(ctx, opts, res, paths, binDir, logf)
	}

	// The synthetic receiver needs no network: run it first, on a
	// quiet machine.
	synD := 10 * time.Second
	if opts.Quick {
		synD = 2 * time.Second
	}
	for _, subs := range []int{1, 10_000} {
		if !opts.runs("synthetic") {
			break
		}
		opts.say("synthetic receiver, %d subscriptions", subs)
		prof := ""
		if subs == 10_000 {
			prof = profDir
		}
		r, err := synthetic(ctx, filepath.Join(opts.WorkDir,
			fmt.Sprintf("synthetic-%d", subs)), subs, syntheticOutstanding,
			synD, prof)
		if err != nil {
			return nil, fmt.Errorf("synthetic receiver: %w", err)
		}
		opts.say("  %.0f credits/s, p99 %v", r.Rate, r.Lat.Pct(99))
		res.Synthetic = append(res.Synthetic, r)
	}

	opts.say("starting btcd, alice -> bob -> carol")
	nw, err := startNetwork(ctx, opts.WorkDir, paths)
	if nw != nil {
		defer nw.net.Close()
	}
	if err != nil {
		return nil, err
	}
	if res.FeeBase, res.FeePPM, err = nw.feePolicy(ctx); err != nil {
		return nil, err
	}
	carolKey := nw.carol.PubKey
	maxFee := sender.MaxFee(Amount, FeeLimitPPM, sender.DefaultFeeLimit)
	router := nw.alice.Services().Router

	for _, l := range opts.Levels {
		if !opts.runs("a") {
			break
		}
		opts.say("A: keysend loop, %d in flight", l)
		r, err := keysendLoop(ctx, router, carolKey, Amount, maxFee, l,
			opts.Warmup, opts.Measure)
		if err != nil {
			return nil, fmt.Errorf("A at %d: %w", l, err)
		}
		opts.say("  %.1f payments/s, p50 %v p99 %v, load %s", r.Rate,
			r.Lat.Pct(50), r.Lat.Pct(99), loadAvg())
		res.A = append(res.A, r)
	}

	// The receiver's latency when not saturated: payments arriving at
	// 20x the best plain keysend rate, the target's load.
	bestA := 0.0
	for _, a := range res.A {
		bestA = max(bestA, a.Rate)
	}
	for i := range res.Synthetic {
		s := &res.Synthetic[i]
		s.Offered = 20 * bestA
		opts.say("synthetic receiver, %d subscriptions, %.0f payments/s "+
			"offered", s.Subs, s.Offered)
		s.OpenRate, s.OpenLat, err = syntheticOpen(ctx,
			filepath.Join(opts.WorkDir, fmt.Sprintf("synthetic-open-%d",
				s.Subs)), s.Subs, s.Offered, synD)
		if err != nil {
			return nil, fmt.Errorf("synthetic receiver, open loop: %w", err)
		}
		opts.say("  %.0f credits/s, p50 %v p99 %v", s.OpenRate,
			s.OpenLat.Pct(50), s.OpenLat.Pct(99))
	}

	if !opts.runs("a2") && !opts.runs("b") {
		return res, nil
	}
	opts.say("restarting carol with %s", holdTime)
	if err := nw.setHold(ctx, true); err != nil {
		return nil, err
	}
	settler := &settleAtOnce{lnd: nw.carol.Services()}
	sctx, stopSettler := context.WithCancel(ctx)
	if err := settler.run(sctx); err != nil {
		stopSettler()
		return nil, err
	}
	for _, l := range opts.Levels {
		if !opts.runs("a2") {
			break
		}
		opts.say("A': keysend loop, hold mode, settle at once, %d in "+
			"flight", l)
		r, err := keysendLoop(ctx, router, carolKey, Amount, maxFee, l,
			opts.Warmup, opts.Measure)
		if err != nil {
			stopSettler()
			return nil, fmt.Errorf("A' at %d: %w", l, err)
		}
		opts.say("  %.1f payments/s, p50 %v p99 %v, load %s", r.Rate,
			r.Lat.Pct(50), r.Lat.Pct(99), loadAvg())
		res.A2 = append(res.A2, r)
	}
	stopSettler()
	settler.wg.Wait()

	sb := &streamBench{dir: opts.WorkDir, logs: logf, alice: nw.alice,
		amt: uint64(Amount), feePPM: FeeLimitPPM}
	if err := sb.start(ctx, nw.carol); err != nil {
		sb.stop()
		return nil, err
	}
	for _, l := range opts.Levels {
		if !opts.runs("b") {
			break
		}
		opts.say("B: satstream-sender -> satstream-receiver, %d in "+
			"flight", l)
		prof := ""
		if l == opts.profileLevel() {
			prof = profDir
		}
		r, err := sb.run(ctx, l, opts.Warmup, opts.Measure, prof)
		if err != nil {
			sb.stop()
			return nil, fmt.Errorf("B at %d: %w", l, err)
		}
		opts.say("  %.1f credited/s, credit visible p50 %v p99 %v, "+
			"sender p50 %v p99 %v, load %s", r.Rate, r.Lat.Pct(50),
			r.Lat.Pct(99), r.SenderLat.Pct(50), r.SenderLat.Pct(99),
			loadAvg())
		res.B = append(res.B, r)
	}

	if !opts.runs("scale") {
		res.Machine.LoadEnd = loadAvg()
		res.Took = time.Since(res.Started)
		return res, sb.stop()
	}
	sz := opts.sizes()
	opts.say("sender with %d idle subscriptions for %v", sz.sndSubs, sz.idle)
	ss, err := senderScale(ctx, filepath.Join(binDir, "satstream-sender"),
		filepath.Join(opts.WorkDir, "scale-sender"), nw.alice, sb.rcvAPI,
		sz.sndSubs, sz.idle, logf)
	if err != nil {
		sb.stop()
		return nil, fmt.Errorf("sender scale: %w", err)
	}
	res.SndScale = &ss
	if err := sb.stop(); err != nil {
		return nil, fmt.Errorf("stop receiver: %w", err)
	}

	opts.say("receiver with %d subscriptions (%d expiring), %d clients",
		sz.rcvSubs, sz.expiring, sz.clients)
	rsc, err := receiverScale(ctx, filepath.Join(binDir,
		"satstream-receiver"), filepath.Join(opts.WorkDir,
		"scale-receiver"), nw.carol, sz.rcvSubs, sz.expiring,
		sz.clients, sz.load, logf)
	if err != nil {
		return nil, fmt.Errorf("receiver scale: %w", err)
	}
	res.RcvScale = &rsc

	if res.ScaleOut, err = scaleOut(ctx, opts, nw, binDir, logf); err != nil {
		return nil, fmt.Errorf("scale-out: %w", err)
	}

	res.Profiles = summariseProfiles(ctx, profDir)
	res.Machine.LoadEnd = loadAvg()
	res.Took = time.Since(res.Started)
	if err := writeReport(res); err != nil {
		return res, err
	}
	return res, nil
}
