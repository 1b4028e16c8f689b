package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/receiver/core"
	"github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
)

// SyntheticResult is the receiver without lnd at one subscription count.
type SyntheticResult struct {
	Subs int
	// Outstanding is the payments held at once in the saturation run.
	Outstanding int
	// Rate is durable credits per second at saturation (Outstanding
	// payments held at once), Lat their latency.
	Rate     float64
	Credited int
	Refused  int
	Lat      Latencies
	Commits  uint64
	Syncs    uint64
	// Offered is the fixed rate of the open-loop run (payments arrive
	// on a schedule, as from many payers), OpenLat its latencies and
	// OpenRate what was credited.
	Offered  float64
	OpenRate float64
	OpenLat  Latencies
}

// benchPlan is the plan synthetic and scale runs seed: a second costs
// 1 sat, and a subscription may hold ten years ahead so a lone
// subscription can take every payment of a run.
func benchPlan(now time.Time) (*store.Plan, error) {
	pid, err := tlv.NewPlanID()
	if err != nil {
		return nil, err
	}
	return &store.Plan{
		ID:    store.PlanID(pid.String()),
		Label: "bench",
		Terms: store.Terms{
			RatePerSecond: 1000,
			MinPayment:    1000,
			Grace:         time.Minute,
			MaxPrepay:     10 * 365 * 24 * time.Hour,
		},
		OpenEnrolment:    false,
		CreatedAt:        now,
		UpdatedAt:        now,
		DefaultIncrement: time.Second,
	}, nil
}

// seedSubs writes the plan and n active subscriptions, paid until
// paidUntil(i), in batches, through the store API.
func seedSubs(ctx context.Context, rs store.ReceiverStore, plan *store.Plan,
	n int, now time.Time, paidUntil func(i int) time.Time) ([]store.SubID,
	error) {

	err := rs.Update(ctx, func(tx store.ReceiverTx) error {
		return tx.PutPlan(plan)
	})
	if err != nil {
		return nil, err
	}
	ids := make([]store.SubID, n)
	for i := range ids {
		if _, err := rand.Read(ids[i][:]); err != nil {
			return nil, err
		}
	}
	const batch = 500
	for lo := 0; lo < n; lo += batch {
		hi := min(n, lo+batch)
		err := rs.Update(ctx, func(tx store.ReceiverTx) error {
			for i := lo; i < hi; i++ {
				s := core.NewSubscription(ids[i], plan, now)
				s.State = store.SubActive
				s.PaidUntil = paidUntil(i)
				if err := tx.PutSubscription(s); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("seed subscriptions %d-%d: %w",
				lo, hi, err)
		}
	}
	return ids, nil
}

// synthetic feeds keysend payments through the real pipeline (decision,
// store with its durable group commit, event outbox) behind a fake lnd,
// keeping outstanding payments held at once, for d.
func synthetic(ctx context.Context, dir string, subs, outstanding int,
	d time.Duration, profDir string) (SyntheticResult, error) {

	res := SyntheticResult{Subs: subs, Outstanding: outstanding}
	r, err := feedPipeline(ctx, dir, subs, outstanding, 0, d, profDir)
	if err != nil {
		return res, err
	}
	res.Rate, res.Credited, res.Refused, res.Lat = r.rate, r.credited,
		r.refused, r.lat
	res.Commits, res.Syncs = r.commits, r.syncs
	return res, nil
}

// syntheticOpen feeds payments at a fixed rate (open loop) and returns the
// latencies: what a payment waits when the receiver is not saturated.
func syntheticOpen(ctx context.Context, dir string, subs int, rate float64,
	d time.Duration) (float64, Latencies, error) {

	// lnd holds at most 483 HTLCs per channel direction.
	r, err := feedPipeline(ctx, dir, subs, 483, rate, d, "")
	if err != nil {
		return 0, nil, err
	}
	if r.refused > 0 {
		return 0, nil, fmt.Errorf("%d payments refused", r.refused)
	}
	return r.rate, r.lat, nil
}

// feedResult is one feedPipeline run.
type feedResult struct {
	rate              float64
	credited, refused int
	lat               Latencies
	commits, syncs    uint64
}

// feedPipeline runs the real pipeline on a fresh ledger behind a fake lnd
// and feeds it keysends for d after a short warm-up: closed loop with
// outstanding payments held at once (rate 0), or at rate per second with
// at most outstanding held.
func feedPipeline(ctx context.Context, dir string, subs, outstanding int,
	rate float64, d time.Duration, profDir string) (feedResult, error) {

	var res feedResult
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	db, err := store.Open(ctx, dir, store.DefaultOptions())
	if err != nil {
		return res, err
	}
	defer db.Close()
	rs := db.Receiver()
	now := time.Now()
	plan, err := benchPlan(now)
	if err != nil {
		return res, err
	}
	ids, err := seedSubs(ctx, rs, plan, subs, now,
		func(int) time.Time { return now })
	if err != nil {
		return res, err
	}
	seqs := make([]atomic.Uint64, subs)

	lnd := receivertest.NewFakeLnd()
	sem := make(chan struct{}, outstanding)
	var (
		mu       sync.Mutex
		counting atomic.Bool
	)
	p := core.NewPipeline(core.PipelineConfig{
		Store:  rs,
		Source: lnd,
		Log:    btclog.Disabled,
		OnOutcome: func(out core.Outcome, lat time.Duration) {
			if counting.Load() {
				mu.Lock()
				if out.Credited {
					res.credited++
					res.lat = append(res.lat, lat)
				} else {
					res.refused++
				}
				mu.Unlock()
			}
			<-sem
		},
	})
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- p.Run(pctx) }()

	// A short warm-up, then the measured run.
	warm := time.Now().Add(min(d/5, time.Second))
	end := warm.Add(d)
	var stopProf func() error
	before := db.Stats()
	first := time.Now()
	for n := 0; time.Now().Before(end); n++ {
		if rate > 0 {
			next := first.Add(time.Duration(float64(n) / rate *
				float64(time.Second)))
			if wait := time.Until(next); wait > 0 {
				time.Sleep(wait)
			}
		}
		if !counting.Load() && !time.Now().Before(warm) {
			before = db.Stats()
			counting.Store(true)
			if profDir != "" {
				if stopProf, err = startProfiles(profDir,
					"synthetic"); err != nil {
					return res, err
				}
			}
		}
		select {
		case sem <- struct{}{}:
		case err := <-runErr:
			return res, fmt.Errorf("pipeline ended: %w", err)
		case <-ctx.Done():
			return res, ctx.Err()
		}
		i := 0
		if subs > 1 {
			n, _ := rand.Int(rand.Reader, big.NewInt(int64(subs)))
			i = int(n.Int64())
		}
		seq := seqs[i].Add(1)
		recs := tlv.Records{Version: tlv.Version1,
			SubscriptionID: tlv.SubscriptionID(ids[i]), Sequence: seq}
		custom, err := recs.Encode()
		if err != nil {
			return res, err
		}
		lnd.Keysend(lnwire.MilliSatoshi(plan.Terms.RatePerSecond), custom)
	}
	counting.Store(false)
	elapsed := time.Since(warm)
	if stopProf != nil {
		if err := stopProf(); err != nil {
			return res, err
		}
	}
	after := db.Stats()
	res.commits = after.Commits - before.Commits
	res.syncs = after.Syncs - before.Syncs
	mu.Lock()
	res.rate = float64(res.credited) / elapsed.Seconds()
	mu.Unlock()
	cancel()
	if err := <-runErr; err != nil && !errors.Is(err, context.Canceled) {
		return res, err
	}
	if res.credited == 0 {
		return res, errors.New("nothing credited")
	}
	return res, nil
}

// syntheticOutstanding is how many payments the saturation run holds at
// once: enough to keep the group commit's batches full.
const syntheticOutstanding = 64
