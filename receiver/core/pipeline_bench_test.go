package core_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/satstream/satstream/receiver/core"
	rt "github.com/satstream/satstream/receiver/receivertest"
	"github.com/satstream/satstream/store"
)

// BenchmarkPipelineCredits feeds keysends through the real pipeline
// (decision, durable store, event outbox) behind the fake lnd, 64 held at
// once, spread over 1 or 10,000 subscriptions: durable credits per second
// and p99 from HTLC accepted to settle done. go run ./itest/cmd/bench runs
// the same measurement for docs/benchmarks.md.
func BenchmarkPipelineCredits(b *testing.B) {
	for _, subs := range []int{1, 10_000} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			benchPipeline(b, subs, 64)
		})
	}
}

func benchPipeline(b *testing.B, subs, outstanding int) {
	db := rt.OpenStore(b).Receiver()
	terms := store.Terms{RatePerSecond: 1000, MinPayment: 1000,
		Grace: time.Minute, MaxPrepay: 10 * 365 * 24 * time.Hour}
	plan := &store.Plan{ID: "bench", Terms: terms}
	ids := make([]store.SubID, subs)
	now := time.Now()
	for lo := 0; lo < subs; lo += 500 {
		err := db.Update(context.Background(), func(tx store.ReceiverTx) error {
			if err := tx.PutPlan(plan); err != nil {
				return err
			}
			for i := lo; i < min(subs, lo+500); i++ {
				ids[i] = store.SubID{byte(i >> 16), byte(i >> 8), byte(i), 1}
				s := core.NewSubscription(ids[i], plan, now)
				s.State, s.PaidUntil = store.SubActive, now
				if err := tx.PutSubscription(s); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}

	lnd := rt.NewFakeLnd()
	sem := make(chan struct{}, outstanding)
	var (
		mu      sync.Mutex
		lat     []time.Duration
		refused int
		all     sync.WaitGroup
	)
	p := core.NewPipeline(core.PipelineConfig{
		Store: db, Source: lnd, Log: btclog.Disabled,
		OnOutcome: func(out core.Outcome, d time.Duration) {
			mu.Lock()
			if out.Credited {
				lat = append(lat, d)
			} else {
				refused++
			}
			mu.Unlock()
			<-sem
			all.Done()
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	seqs := make([]uint64, subs)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sem <- struct{}{}
		all.Add(1)
		s := i % subs
		seqs[s]++
		lnd.Keysend(1000, rt.Records(b, ids[s], seqs[s], nil, false))
	}
	all.Wait()
	b.StopTimer()
	if refused > 0 {
		b.Fatalf("%d payments refused", refused)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "credits/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000,
		"p99-ms")
}
