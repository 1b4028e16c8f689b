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
	// Rounds is how many times A, A' and B run at each level (default 3;
	// quick 1): a level's figure is the median of its rounds.
	Rounds int
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
	if o.Rounds == 0 {
		o.Rounds = 3
		if o.Quick {
			o.Rounds = 1
		}
	}
	if o.Warmup == 0 {
		o.Warmup = 3 * time.Second
		if o.Quick {
			o.Warmup = time.Second
		}
	}
	if o.Measure == 0 {
		o.Measure = 15 * time.Second
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
	sb := &streamBench{dir: opts.WorkDir, logs: logf, alice: nw.alice,
		carol: nw.carol, amt: uint64(Amount), feePPM: FeeLimitPPM}
	defer sb.down()
	if err := runRounds(ctx, opts, res, nw, sb, profDir); err != nil {
		return nil, err
	}

	// The receiver's latency when not saturated: payments arriving at
	// 20x the best plain keysend rate, the target's load.
	bestA := 0.0
	for _, a := range res.A {
		bestA = max(bestA, a.Rate)
	}
	for i := range res.Synthetic {
		if bestA == 0 {
			break
		}
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

	if !opts.runs("scale") {
		res.Machine.LoadEnd = loadAvg()
		res.Took = time.Since(res.Started)
		return res, nil
	}
	if err := refill(ctx, opts, nw); err != nil {
		return nil, err
	}
	if !sb.hold {
		opts.say("restarting carol with %s", holdTime)
		if err := nw.setHold(ctx, true); err != nil {
			return nil, err
		}
	}
	sz := opts.sizes()
	opts.say("sender with %d idle subscriptions for %v", sz.sndSubs, sz.idle)
	if err := sb.up(ctx); err != nil {
		return nil, err
	}
	ss, err := senderScale(ctx, filepath.Join(binDir, "satstream-sender"),
		filepath.Join(opts.WorkDir, "scale-sender"), nw.alice, sb.rcvAPI,
		sz.sndSubs, sz.idle, logf)
	if err != nil {
		return nil, fmt.Errorf("sender scale: %w", err)
	}
	res.SndScale = &ss
	if err := sb.down(); err != nil {
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

// runRounds runs A, A' and B at every level, opts.Rounds times. Each round
// runs A at every level (carol without hold time), then, carol in hold
// mode, A' and B at each level back to back: their order alternates from
// round to round, the settling program runs only in the windows of A' and
// the receiver only in those of B. Each round starts with alice's channel
// refilled. A level's figure is the median of its rounds and B's ratios
// the median of the rounds' ratios (mergeRounds, ratio).
func runRounds(ctx context.Context, opts Options, res *Result, nw *network,
	sb *streamBench, profDir string) error {

	carolKey := nw.carol.PubKey
	maxFee := sender.MaxFee(Amount, FeeLimitPPM, sender.DefaultFeeLimit)
	router := nw.alice.Services().Router
	n := len(opts.Levels)
	a, a2, b := make([][]LevelResult, n), make([][]LevelResult, n),
		make([][]LevelResult, n)
	loop := func(name string, round, l int) (LevelResult, error) {
		opts.say("%s, %d in flight (round %d of %d)", name, l, round+1,
			opts.Rounds)
		r, err := keysendLoop(ctx, router, carolKey, Amount, maxFee, l,
			opts.Warmup, opts.Measure)
		if err != nil {
			return r, err
		}
		opts.say("  %.1f payments/s, p50 %v p99 %v, load %s", r.Rate,
			r.Lat.Pct(50), r.Lat.Pct(99), loadAvg())
		return r, nil
	}
	setHold := func(hold bool) error {
		if sb.hold == hold {
			return nil
		}
		if hold {
			opts.say("restarting carol with %s", holdTime)
		} else {
			opts.say("restarting carol without hold time")
		}
		if err := nw.setHold(ctx, hold); err != nil {
			return err
		}
		sb.hold = hold
		return nil
	}
	for round := range opts.Rounds {
		if err := refill(ctx, opts, nw); err != nil {
			return err
		}
		for i, l := range opts.Levels {
			if !opts.runs("a") {
				break
			}
			if err := setHold(false); err != nil {
				return err
			}
			r, err := loop("A: keysend loop", round, l)
			if err != nil {
				return fmt.Errorf("A at %d: %w", l, err)
			}
			a[i] = append(a[i], r)
		}
		if !opts.runs("a2") && !opts.runs("b") {
			continue
		}
		if err := setHold(true); err != nil {
			return err
		}
		for i, l := range opts.Levels {
			parts := []string{"a2", "b"}
			if round%2 == 1 {
				parts = []string{"b", "a2"}
			}
			for _, part := range parts {
				if !opts.runs(part) {
					continue
				}
				if part == "a2" {
					_, stop, err := startSettler(ctx,
						nw.carol.Services())
					if err != nil {
						return err
					}
					r, err := loop("A': keysend loop, hold mode, "+
						"settle at once", round, l)
					stop()
					if err != nil {
						return fmt.Errorf("A' at %d: %w", l, err)
					}
					a2[i] = append(a2[i], r)
					continue
				}
				r, err := sb.level(ctx, opts, round, l, profDir)
				if err != nil {
					return fmt.Errorf("B at %d: %w", l, err)
				}
				b[i] = append(b[i], r)
			}
		}
	}
	for i := range opts.Levels {
		if len(a[i]) > 0 {
			res.A = append(res.A, mergeRounds(a[i]))
		}
		if len(a2[i]) > 0 {
			res.A2 = append(res.A2, mergeRounds(a2[i]))
		}
		if len(b[i]) > 0 {
			res.B = append(res.B, mergeRounds(b[i]))
		}
	}
	return nil
}

// refill brings alice's channel back to full and says how much moved.
func refill(ctx context.Context, opts Options, nw *network) error {
	moved, err := nw.refill(ctx)
	if err != nil {
		return err
	}
	if moved > 0 {
		opts.say("refilled alice's channel: %d sat back from carol",
			int64(moved))
	}
	return nil
}
