package postgres_test

import (
	"context"
	"os"
	"strconv"

	"github.com/jackc/pgx/v5"
	"sync/atomic"
	"testing"

	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/store/postgres"
	"github.com/satstream/satstream/store/postgres/pgtest"
	"github.com/satstream/satstream/store/storetest"
)

// benchParallelism is goroutines per GOMAXPROCS in the concurrent cases,
// as in store's BenchmarkCredit.
const benchParallelism = 32

// BenchmarkDurableCredits measures durable credits per second, the
// receiver's whole step (dedupe by hash, credit the subscription, ledger
// entry, settle index, event) acknowledged only once it is on disk: the
// badger store (group commit) against PostgreSQL (SERIALIZABLE, COMMIT
// with synchronous_commit=on) on the same machine, one payer at a time
// and many at once (64 subscriptions).
func BenchmarkDurableCredits(b *testing.B) {

	srv := pgtest.Start(b)
	backends := []struct {
		name string
		open func(b *testing.B) store.ReceiverStore
	}{
		{"badger", func(b *testing.B) store.ReceiverStore {
			db, err := store.Open(context.Background(), b.TempDir(),
				store.DefaultOptions())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			return db.Receiver()
		}},
		{"postgres", func(b *testing.B) store.ReceiverStore {
			rs := open(b, srv.NewDatabase(b), 1)
			prefill(b, rs)
			return rs
		}},
	}
	b.Run("postgres/two-nodes-concurrent", func(b *testing.B) {
		// Two receivers (nodes) on one database, each crediting its
		// own payments: each node's settle index is its own row.
		dsn := srv.NewDatabase(b)
		nodes := []store.ReceiverStore{open(b, dsn, 1), open(b, dsn, 2)}
		prefill(b, nodes[0])
		ctx := context.Background()
		const subs = 64
		for i := uint64(0); i < subs; i++ {
			err := storetest.PutActiveSub(ctx, nodes[0],
				storetest.SubID(i))
			if err != nil {
				b.Fatal(err)
			}
		}
		var n atomic.Uint64
		before := statsOf(nodes...)
		b.ResetTimer()
		b.SetParallelism(benchParallelism)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				k := n.Add(1)
				err := storetest.Credit(ctx, nodes[k%2],
					storetest.SubID(k%subs), k, 1500)
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "credits/s")
		reportConflicts(b, before, nodes...)
	})
	for _, be := range backends {
		for _, parallel := range []bool{false, true} {
			name := be.name + "/single"
			if parallel {
				name = be.name + "/concurrent"
			}
			b.Run(name, func(b *testing.B) {
				rs, ctx := be.open(b), context.Background()
				const subs = 64
				for i := uint64(0); i < subs; i++ {
					err := storetest.PutActiveSub(ctx, rs,
						storetest.SubID(i))
					if err != nil {
						b.Fatal(err)
					}
				}
				var n atomic.Uint64
				one := func() error {
					k := n.Add(1)
					return storetest.Credit(ctx, rs,
						storetest.SubID(k%subs), k, 1500)
				}
				before := statsOf(rs)
				b.ResetTimer()
				if parallel {
					b.SetParallelism(benchParallelism)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := one(); err != nil {
								b.Error(err)
								return
							}
						}
					})
				} else {
					for i := 0; i < b.N; i++ {
						if err := one(); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(),
					"credits/s")
				reportConflicts(b, before, rs)

			})
		}
	}
}

// reportConflicts reports, per credit, what the PostgreSQL stores among
// rss cost in conflicts during the benchmark: retries (serialization
// failures, deadlocks, unique violations) and slow-lane entries.
func reportConflicts(b *testing.B, before []postgres.Stats,
	rss ...store.ReceiverStore) {

	var sum postgres.Stats
	for i, rs := range rss {
		s, ok := rs.(*postgres.Store)
		if !ok {
			return
		}
		st := s.Stats()
		sum.Attempts += st.Attempts - before[i].Attempts
		sum.Steps += st.Steps - before[i].Steps
		sum.Serialization += st.Serialization - before[i].Serialization
		sum.Deadlocks += st.Deadlocks - before[i].Deadlocks
		sum.Uniques += st.Uniques - before[i].Uniques
		sum.SlowLane += st.SlowLane - before[i].SlowLane
		sum.EventOrderWait += st.EventOrderWait -
			before[i].EventOrderWait
		sum.Commit += st.Commit - before[i].Commit
	}
	n := float64(b.N)
	b.ReportMetric(float64(sum.Attempts-sum.Steps)/n, "retries/credit")
	b.ReportMetric(float64(sum.Serialization)/n, "40001/credit")
	b.ReportMetric(float64(sum.Deadlocks)/n, "40P01/credit")
	b.ReportMetric(float64(sum.Uniques)/n, "23505/credit")
	b.ReportMetric(float64(sum.SlowLane)/n, "slowlane/credit")
	b.ReportMetric(float64(sum.EventOrderWait.Microseconds())/n,
		"eventlock-us/credit")
	b.ReportMetric(float64(sum.Commit.Microseconds())/n,
		"commit-us/credit")
}

// statsOf snapshots the stats of the PostgreSQL stores among rss.
func statsOf(rss ...store.ReceiverStore) []postgres.Stats {
	out := make([]postgres.Stats, len(rss))
	for i, rs := range rss {
		if s, ok := rs.(*postgres.Store); ok {
			out[i] = s.Stats()
		}
	}
	return out
}

// prefillPayments is the size of the ledger a benchmark starts from. A
// fresh, empty ledger is not what a receiver runs on, and on PostgreSQL it
// measures the wrong thing: SERIALIZABLE's predicate locks on an index are
// per page, and an index of a few pages makes every lookup of a new
// payment hash conflict with every insert.
const prefillPayments = 20_000

// prefill writes prefillPayments credited payments of another
// subscription.
func prefill(b *testing.B, rs store.ReceiverStore) {
	b.Helper()
	sub := storetest.SubID(1 << 40)
	err := rs.Update(context.Background(), func(tx store.ReceiverTx) error {
		for i := uint64(1); i <= prefillPayments; i++ {
			err := tx.PutPayment(&store.Payment{
				Hash: storetest.HashOf(1<<40 + i), SubID: sub,
				Seq: i, Amount: 1000, State: store.PaymentCredited,
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// streamBatch is how many credits BenchmarkReceiverCreditShapes records
// per step in its stream case; the receiver's invoice stream records up to
// 256 waiting events per step (receiver/core maxStreamBatch), as many as
// queued up behind the last step.
const streamBatch = 16

// BenchmarkReceiverCreditShapes measures PostgreSQL durable credits/s in
// the two shapes the receiver really writes them (receiver/core): a held
// HTLC's decision, one payment per step, concurrently, not moving the
// settle index (only the stream does); and the invoice stream's step,
// one goroutine, several payments per step, moving the settle index.
// Both from a 20,000-payment ledger, over 64 subscriptions.
func BenchmarkReceiverCreditShapes(b *testing.B) {
	srv := pgtest.Start(b)
	subs := uint64(64)
	if v, _ := strconv.Atoi(os.Getenv("XP_SUBS")); v > 0 {
		subs = uint64(v)
	}
	setup := func(b *testing.B) store.ReceiverStore {
		dsn := srv.NewDatabase(b)
		rs := open(b, dsn, 1)
		if os.Getenv("XP_DROP_DUE") == "1" {
			c, err := pgx.Connect(context.Background(), dsn)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Exec(context.Background(), "DROP INDEX subscriptions_due"); err != nil {
				b.Fatal(err)
			}
			c.Close(context.Background())
		}
		prefill(b, rs)
		for i := uint64(0); i < subs; i++ {
			err := storetest.PutActiveSub(context.Background(), rs,
				storetest.SubID(i))
			if err != nil {
				b.Fatal(err)
			}
		}
		return rs
	}
	b.Run("held-decisions-concurrent", func(b *testing.B) {
		rs, ctx := setup(b), context.Background()
		var n atomic.Uint64
		before := statsOf(rs)
		b.ResetTimer()
		b.SetParallelism(benchParallelism)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				k := n.Add(1)
				err := rs.Update(ctx, func(tx store.ReceiverTx) error {
					return storetest.CreditTx(tx,
						storetest.SubID(k%subs), k, 1500, false)
				})
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "credits/s")
		reportConflicts(b, before, rs)
	})
	b.Run("stream-batch", func(b *testing.B) {
		rs, ctx := setup(b), context.Background()
		before := statsOf(rs)
		b.ResetTimer()
		for i := 0; i < b.N; i += streamBatch {
			err := rs.Update(ctx, func(tx store.ReceiverTx) error {
				for j := i; j < min(i+streamBatch, b.N); j++ {
					k := uint64(j + 1)
					err := storetest.CreditTx(tx,
						storetest.SubID(k%subs), k, 1500, true)
					if err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "credits/s")
		reportConflicts(b, before, rs)
	})
}
