package bench

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/satstream/satstream/itest/stack"
	"github.com/satstream/satstream/sender"
	"github.com/satstream/satstream/store"
)

// tailWait is how long one long poll of the event list waits for a new
// event (wait_sec): the receiver answers as soon as one is on disk, so
// the tailer sees a credit as soon as a client of the API could, without
// polling in a loop beside lnd.
const tailWait = 10

// tailRetry is the pause after a failed list before the next.
const tailRetry = 50 * time.Millisecond

// tailer follows the receiver's event list and notes when each
// payment.received event (a credit) first became visible in the API.
type tailer struct {
	api *apiClient

	mu      sync.Mutex
	visible map[string]time.Time // payment hash -> first seen
	// recorded is the payment.received event's created_at: written in
	// the credit's step, before its fsync and before the settle.
	recorded map[string]time.Time
	after    uint64
	polls    int
	errs     int
}

// run long-polls the event list until ctx ends.
func (t *tailer) run(ctx context.Context) {
	for ctx.Err() == nil {
		if t.poll(ctx, tailWait) {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(tailRetry):
		}
	}
}

// poll lists the events after the last one seen, waiting up to wait
// seconds for one if there is none, and pages on while pages are full. It
// reports whether the list answered.
func (t *tailer) poll(ctx context.Context, wait int) bool {
	for {
		var resp struct {
			Events []struct {
				Seq       uint64    `json:"sequence"`
				Type      string    `json:"type"`
				CreatedAt time.Time `json:"created_at"`
				Data      struct {
					Payment *struct {
						Hash string `json:"payment_hash"`
					} `json:"payment"`
				} `json:"data"`
			} `json:"events"`
		}
		t.mu.Lock()
		after := t.after
		t.mu.Unlock()
		err := t.api.do(ctx, "GET", fmt.Sprintf("/v1/events?limit=1000"+
			"&after=%d&wait_sec=%d", after, wait), nil, &resp)
		now := time.Now()
		t.mu.Lock()
		t.polls++
		if err != nil {
			t.errs++
			t.mu.Unlock()
			return false
		}
		for _, ev := range resp.Events {
			t.after = max(t.after, ev.Seq)
			if ev.Type == "payment.received" && ev.Data.Payment != nil {
				if _, ok := t.visible[ev.Data.Payment.Hash]; !ok {
					t.visible[ev.Data.Payment.Hash] = now
					t.recorded[ev.Data.Payment.Hash] = ev.CreatedAt
				}
			}
		}
		t.mu.Unlock()
		if len(resp.Events) < 1000 {
			return true
		}
	}
}

// seen returns when hash was first seen credited.
func (t *tailer) seen(hash string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.visible[hash]
	return v, ok
}

// creditLag is how long after its credit was recorded (before the fsync
// and the settle) a payment was first seen in the API: an upper bound of
// "settle -> credit visible", since the settle comes after the credit.
func (t *tailer) creditLag(hash string) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.visible[hash]
	r, rok := t.recorded[hash]
	if !ok || !rok || r.IsZero() {
		return 0, false
	}
	return v.Sub(r), true
}

// streamBench is benchmark B: satstream-sender beside alice streaming at
// full speed to satstream-receiver beside carol (in hold mode). The
// receiver runs only during B's windows (up, down): A and A' run between
// them on the same carol, A' with its own settling program.
type streamBench struct {
	dir        string
	logs       io.Writer
	alice      *regtest.Node
	carol      *regtest.Node
	stack      *stack.Stack
	rcvAPI     *apiClient
	tail       *tailer
	planID     string
	amt        uint64 // msat per payment
	feePPM     uint32
	cancelTail context.CancelFunc
	tailDone   chan struct{}
	// hold says whether carol runs with --keysend-hold-time now.
	hold bool
}

// up runs the receiver beside carol (its ledger kept from the last up)
// and, the first time, creates the plan: a payment of one second costs
// amt, and a subscription may hold 60 days ahead so the sender never runs
// out of things to pay for.
func (b *streamBench) up(ctx context.Context) error {
	st, err := stack.Start(ctx, b.dir, b.carol, nil, b.logs)
	if err != nil {
		return err
	}
	b.stack = st
	b.rcvAPI, err = newAPIClient(st.Receiver.APIAddr(),
		st.ReceiverCfg.NetworkDir(), 8)
	if err != nil {
		return err
	}
	// Offers name carol's node, which the receiver knows once it has
	// reached lnd.
	err = regtest.Poll(ctx, 2*time.Minute, func() error {
		var h struct {
			LndConnected bool `json:"lnd_connected"`
		}
		if err := b.rcvAPI.do(ctx, "GET", "/v1/health", nil, &h); err != nil {
			return err
		}
		if !h.LndConnected {
			return errors.New("receiver not connected to lnd yet")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if b.planID == "" {
		if b.planID, err = b.rcvAPI.createPlan(ctx, "bench",
			b.amt); err != nil {

			return err
		}
	}
	if b.tail == nil {
		b.tail = &tailer{visible: map[string]time.Time{},
			recorded: map[string]time.Time{}}
	}
	// The tailer keeps its place in the event list across ups.
	b.tail.api = b.rcvAPI
	tctx, cancel := context.WithCancel(ctx)
	b.cancelTail = cancel
	b.tailDone = make(chan struct{})
	go func() {
		defer close(b.tailDone)
		b.tail.run(tctx)
	}()
	return nil
}

// down stops the tailer and the receiver.
func (b *streamBench) down() error {
	if b.cancelTail != nil {
		b.cancelTail()
		<-b.tailDone
		b.cancelTail = nil
	}
	if b.rcvAPI != nil {
		b.rcvAPI.close()
		b.rcvAPI = nil
	}
	if b.stack != nil {
		err := b.stack.Stop()
		b.stack = nil
		return err
	}
	return nil
}

// level runs B at one in-flight level in round (from 0): the receiver up,
// the sender streaming, the receiver down. The first round's run at the
// profiled level writes its profiles to profDir.
func (b *streamBench) level(ctx context.Context, opts Options, round,
	l int, profDir string) (LevelResult, error) {

	opts.say("B: satstream-sender -> satstream-receiver, %d in flight "+
		"(round %d of %d)", l, round+1, opts.Rounds)
	if err := b.up(ctx); err != nil {
		return LevelResult{}, err
	}
	prof := ""
	if round == 0 && l == opts.profileLevel() {
		prof = profDir
	}
	r, err := b.run(ctx, round, l, opts.Warmup, opts.Measure, prof)
	if derr := b.down(); err == nil && derr != nil {
		err = fmt.Errorf("stop receiver: %w", derr)
	}
	if err != nil {
		return r, err
	}
	opts.say("  %.1f credited/s, credit visible p50 %v p99 %v, "+
		"sender p50 %v p99 %v, load %s", r.Rate, r.Lat.Pct(50),
		r.Lat.Pct(99), r.SenderLat.Pct(50), r.SenderLat.Pct(99),
		loadAvg())
	return r, nil
}

// startSender runs a fresh sender beside alice with the in-flight bound.
func (b *streamBench) startSender(ctx context.Context, round, level int) (
	*sender.Daemon, *sender.Config, error) {

	cfg := sender.DefaultConfig()
	cfg.DataDir = filepath.Join(b.dir, fmt.Sprintf("sender-r%d-%d", round,
		level))
	cfg.ConfigFile = filepath.Join(cfg.DataDir, "sender.conf")
	cfg.Network = "regtest"
	cfg.API.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen = ""
	cfg.Lnd = stack.LndConfig(b.alice)
	cfg.Payments.MaxInFlight = level
	cfg.Payments.BackoffMax = 5 * time.Second
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	d, err := sender.New(cfg, common.NewLogManager(b.logs))
	if err != nil {
		return nil, nil, err
	}
	if err := d.Start(ctx); err != nil {
		return nil, nil, fmt.Errorf("start sender: %w", err)
	}
	return d, cfg, nil
}

// subsFor is how many subscriptions saturate level: each carries at most
// the sender's per-subscription bound (4) in flight.
func subsFor(level int) int {
	return max(4, level)
}

// run streams at one in-flight level, in round (from 0), with the
// receiver up. With profDir set it writes a CPU profile and an allocation
// profile of the measure window there.
func (b *streamBench) run(ctx context.Context, round, level int, warmup,
	measure time.Duration, profDir string) (LevelResult, error) {

	res := LevelResult{InFlight: level}
	snd, cfg, err := b.startSender(ctx, round, level)
	if err != nil {
		return res, err
	}
	stopped := false
	stopSender := func() error {
		if stopped {
			return nil
		}
		stopped = true
		return snd.Stop()
	}
	defer stopSender()

	sndAPI, err := newAPIClient(snd.APIAddr(), cfg.NetworkDir(), 8)
	if err != nil {
		return res, err
	}
	defer sndAPI.close()
	for range subsFor(level) {
		var sub struct {
			Offer string `json:"offer"`
		}
		err := b.rcvAPI.do(ctx, "POST", "/v1/subscriptions",
			map[string]any{"plan_id": b.planID}, &sub)
		if err != nil {
			return res, fmt.Errorf("create subscription: %w", err)
		}
		if sub.Offer == "" {
			return res, errors.New("create subscription: no offer " +
				"in the receiver's answer")
		}
		err = sndAPI.do(ctx, "POST", "/v1/subscriptions", map[string]any{
			"offer":         sub.Offer,
			"increment_sec": 1,
			"buffer_sec":    30 * 24 * 3600,
			"fee_limit_ppm": b.feePPM,
		}, nil)
		if err != nil {
			return res, fmt.Errorf("subscribe: %w", err)
		}
	}
	// The sender pays from its first subscription on; the warm-up
	// counts from the last.
	start := time.Now()
	w := window{start.Add(warmup), start.Add(warmup + measure)}
	if err := sleepUntil(ctx, w.start); err != nil {
		return res, err
	}
	var stopProf func() error
	if profDir != "" {
		stopProf, err = startProfiles(profDir, "b")
		if err != nil {
			return res, err
		}
	}
	if err := sleepUntil(ctx, w.end); err != nil {
		return res, err
	}
	if stopProf != nil {
		if err := stopProf(); err != nil {
			return res, err
		}
	}
	if err := stopSender(); err != nil {
		return res, fmt.Errorf("stop sender: %w", err)
	}
	// Let the tail catch up with credits of the window's last payments.
	b.tail.poll(ctx, 0)

	db, err := store.Open(ctx, filepath.Join(cfg.NetworkDir(), "ledger"),
		store.DefaultOptions())
	if err != nil {
		return res, fmt.Errorf("open sender ledger: %w", err)
	}
	defer db.Close()
	err = db.Sender().View(ctx, func(tx store.SenderTx) error {
		res.Count, res.Failed = 0, 0
		res.Lat, res.SenderLat, res.VisLag = nil, nil, nil
		return tx.ForEachSubscription(0, store.Page{},
			func(s *store.SenderSubscription) error {
				return tx.ForEachAttempt(s.ID, 0,
					func(a *store.Attempt) error {
						b.account(&res, a, w)
						return nil
					})
			})
	})
	if err != nil {
		return res, err
	}
	res.Rate = float64(res.Count) / w.seconds()
	if res.Count == 0 {
		return res, fmt.Errorf("no payment credited in the window")
	}
	return res, nil
}

// account adds one sender attempt to the level's figures.
func (b *streamBench) account(res *LevelResult, a *store.Attempt, w window) {
	switch a.State {
	case store.AttemptSucceeded:
	case store.AttemptFailed, store.AttemptRefused:
		if w.has(a.UpdatedAt) {
			res.Failed++
		}
		return
	default:
		return
	}
	vis, ok := b.tail.seen(hex.EncodeToString(a.Hash[:]))
	if !ok || !w.has(vis) {
		return
	}
	res.Count++
	if a.CreatedAt.Before(w.start) {
		return
	}
	res.Lat = append(res.Lat, vis.Sub(a.CreatedAt))
	res.SenderLat = append(res.SenderLat, a.UpdatedAt.Sub(a.CreatedAt))
	if lag, ok := b.tail.creditLag(hex.EncodeToString(a.Hash[:])); ok {
		res.VisLag = append(res.VisLag, lag)
	}
}

func sleepUntil(ctx context.Context, t time.Time) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(t)):
		return nil
	}
}

// startProfiles starts a CPU profile and notes the allocation profile, so
// the returned stop writes <name>.cpu.pprof and <name>.alloc.pprof (and
// <name>.alloc-base.pprof, the allocations before) covering the window.
func startProfiles(dir, name string) (func() error, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// The allocation profile is only brought up to date by a GC.
	runtime.GC()
	base, err := os.Create(filepath.Join(dir, name+".alloc-base.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.Lookup("allocs").WriteTo(base, 0); err != nil {
		base.Close()
		return nil, err
	}
	base.Close()
	cpu, err := os.Create(filepath.Join(dir, name+".cpu.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		cpu.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		cpu.Close()
		runtime.GC()
		f, err := os.Create(filepath.Join(dir, name+".alloc.pprof"))
		if err != nil {
			return err
		}
		defer f.Close()
		return pprof.Lookup("allocs").WriteTo(f, 0)
	}, nil
}

// PrintParts prints the in-flight figures of a partial run (--only): each
// level of A, A' and B, and B's ratios to whichever of A and A' ran.
func (r *Result) PrintParts(w io.Writer) {
	for _, part := range []struct {
		name string
		ls   []LevelResult
	}{{"A", r.A}, {"A'", r.A2}, {"B", r.B}} {
		for _, l := range part.ls {
			fmt.Fprintf(w, "%-2s %2d in flight: %5.1f/s p50 %4d ms p99 %4d ms",
				part.name, l.InFlight, l.Rate, l.Lat.Pct(50).Milliseconds(),
				l.Lat.Pct(99).Milliseconds())
			if len(l.SenderLat) > 0 {
				fmt.Fprintf(w, ", sender p50 %4d ms p99 %4d ms",
					l.SenderLat.Pct(50).Milliseconds(),
					l.SenderLat.Pct(99).Milliseconds())
			}
			fmt.Fprintln(w)
		}
	}
	for i, b := range r.B {
		if i < len(r.A) {
			fmt.Fprintf(w, "B/A  at %2d in flight: %s\n", b.InFlight,
				ratioText(ratio(b, r.A[i]), b, r.A[i]))
		}
		if i < len(r.A2) {
			fmt.Fprintf(w, "B/A' at %2d in flight: %s\n", b.InFlight,
				ratioText(ratio(b, r.A2[i]), b, r.A2[i]))
		}
	}
	fmt.Fprintf(w, "load average at start %s, at end %s\n",
		r.Machine.LoadStart, r.Machine.LoadEnd)
}
