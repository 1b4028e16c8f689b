package store

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// benchParallelism is goroutines per GOMAXPROCS in the concurrent cases:
// the receiver credits many payers' payments at once.
const benchParallelism = 32

// reportRate adds the figure the issue asks for: durable commits per second.
func reportRate(b *testing.B, db *DB) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
	if db != nil {
		if st := db.Stats(); st.Syncs > 0 {
			b.ReportMetric(float64(st.Commits)/float64(st.Syncs), "commits/fsync")
		}
	}
}

// BenchmarkBadgerSyncWrites is the baseline: plain badger with SyncWrites,
// one small write per transaction, no store on top.
func BenchmarkBadgerSyncWrites(b *testing.B) {
	run := func(b *testing.B, parallel bool) {
		bdb, err := badger.Open(badger.DefaultOptions(b.TempDir()).
			WithSyncWrites(true).WithLogger(nil))
		if err != nil {
			b.Fatal(err)
		}
		defer bdb.Close()
		var n atomic.Uint64
		write := func() error {
			return bdb.Update(func(txn *badger.Txn) error {
				return txn.Set(be64(n.Add(1)), []byte("credit"))
			})
		}
		b.ResetTimer()
		if parallel {
			b.SetParallelism(benchParallelism)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := write(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		} else {
			for i := 0; i < b.N; i++ {
				if err := write(); err != nil {
					b.Fatal(err)
				}
			}
		}
		reportRate(b, nil)
	}
	b.Run("single", func(b *testing.B) { run(b, false) })
	b.Run("concurrent", func(b *testing.B) { run(b, true) })
}

// BenchmarkCredit measures the receiver's real step (dedupe, credit the
// subscription, ledger entry, settle index, event) acknowledged durably,
// with badger syncing each write versus the store's group commit.
func BenchmarkCredit(b *testing.B) {
	modes := []struct {
		name string
		d    Durability
	}{
		{"sync-writes", SyncEachWrite},
		{"group-commit", GroupCommit},
	}
	for _, m := range modes {
		for _, parallel := range []bool{false, true} {
			name := m.name + "/single"
			if parallel {
				name = m.name + "/concurrent"
			}
			b.Run(name, func(b *testing.B) {
				db, _ := openTestDB(b, func(o *Options) { o.Durability = m.d })
				rs, ctx := db.Receiver(), context.Background()
				subs := 64
				for i := 0; i < subs; i++ {
					if err := putActiveSub(ctx, rs, subID(uint64(i))); err != nil {
						b.Fatal(err)
					}
				}
				st0 := db.Stats()
				var n atomic.Uint64
				one := func() error {
					k := n.Add(1)
					return credit(ctx, rs, subID(k%uint64(subs)), k, 1500)
				}
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
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
				st := db.Stats()
				if syncs := st.Syncs - st0.Syncs; syncs > 0 {
					b.ReportMetric(float64(st.Commits-st0.Commits)/float64(syncs),
						"commits/fsync")
				}
			})
		}
	}
}

// BenchmarkGroupCommitView measures a View of a credited subscription when
// every step is already on disk: the read path's check for unsynced steps
// must cost nothing measurable next to the read itself.
func BenchmarkGroupCommitView(b *testing.B) {
	db, _ := openTestDB(b)
	rs, ctx := db.Receiver(), context.Background()
	if err := putActiveSub(ctx, rs, subID(1)); err != nil {
		b.Fatal(err)
	}
	if err := credit(ctx, rs, subID(1), 1, 1500); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			err := rs.View(ctx, func(tx ReceiverTx) error {
				_, err := tx.Subscription(subID(1))
				return err
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}
