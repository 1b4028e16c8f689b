package postgres_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/store/postgres"
	"github.com/satstream/satstream/store/postgres/pgtest"
	"github.com/satstream/satstream/store/storetest"
	"github.com/stretchr/testify/require"
)

// nodeKey returns the n-th test node's identity key.
func nodeKey(n byte) [33]byte {
	var k [33]byte
	k[0], k[32] = 0x02, n
	return k
}

// open opens a store of node n on dsn, closed at t's cleanup.
func open(t testing.TB, dsn string, n byte) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(storetest.Ctx(t), postgres.Config{DSN: dsn,
		NodePubkey: nodeKey(n)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// testReceiverSuite runs the ReceiverStore conformance suite on
// PostgreSQL, a fresh database per test.
func testReceiverSuite(t *testing.T, srv *pgtest.Server) {
	storetest.RunReceiverSuite(t, func(t testing.TB) store.ReceiverStore {
		return open(t, srv.NewDatabase(t), 1)
	})
}

// testTwoNodesCreditOneSubscriptionTwice reproduces two receivers (two
// provider nodes, one database) crediting the same subscription at the
// same time, each payment reported at both: every payment must be credited
// once, and no credit may overwrite another's (paid-until and totals
// exact).
func testTwoNodesCreditOneSubscriptionTwice(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	nodes := []*postgres.Store{open(t, dsn, 1), open(t, dsn, 2)}
	ctx := storetest.Ctx(t)
	sub := storetest.SubID(1)
	require.NoError(t, storetest.PutActiveSub(ctx, nodes[0], sub))
	before, err := storetest.Summarize(ctx, nodes[0], sub)
	require.NoError(t, err)

	const (
		workers = 12 // per node
		each    = 10
		amount  = 1777
	)
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for w := 0; w < workers; w++ {
		for _, node := range nodes {
			wg.Add(1)
			go func(rs store.ReceiverStore, w int) {
				defer wg.Done()
				// Both nodes credit the same payments, in the
				// same order.
				for i := 0; i < each; i++ {
					n := uint64(w*each + i + 1)
					err := storetest.Credit(ctx, rs, sub, n, amount)
					if err != nil {
						errs <- err
						return
					}
				}
			}(node, w)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	s, err := storetest.Summarize(ctx, nodes[1], sub)
	require.NoError(t, err)
	storetest.CheckConsistent(t, s)
	const total = workers * each * amount
	require.Len(t, s.Payments, workers*each)
	require.EqualValues(t, total, s.Sub.TotalPaid)
	require.EqualValues(t, total/1000, s.Sub.TotalSeconds)
	require.EqualValues(t, total%1000, s.Sub.Remainder)
	require.True(t, s.Sub.PaidUntil.Equal(before.Sub.PaidUntil.Add(
		total/1000*time.Second)), "paid until %v", s.Sub.PaidUntil)
	require.EqualValues(t, workers*each, s.Sub.Payments)
}

// testCreditedSequenceTwiceAcceptedByDatabase reproduces exactly-once
// resting on code alone: two credited payments of one subscription with
// one sequence (or a payment hash twice) must be refused by the database's
// own constraints, whatever the caller does.
func testCreditedSequenceTwiceAcceptedByDatabase(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	s := open(t, dsn, 1)
	ctx := storetest.Ctx(t)
	sub := storetest.SubID(1)
	require.NoError(t, storetest.PutActiveSub(ctx, s, sub))
	put := func(h store.Hash, state store.PaymentState) error {
		return s.Update(ctx, func(tx store.ReceiverTx) error {
			return tx.PutPayment(&store.Payment{Hash: h, SubID: sub,
				Seq: 7, Amount: 1000, State: state})
		})
	}
	require.NoError(t, put(storetest.HashOf(1), store.PaymentCredited))
	// A refused payment may repeat the sequence (a duplicate, refused).
	require.NoError(t, put(storetest.HashOf(2), store.PaymentRefused))
	require.ErrorIs(t, put(storetest.HashOf(3), store.PaymentCredited),
		store.ErrConflict)

	// Straight SQL, bypassing the store: the database itself refuses.
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	h1, h4 := storetest.HashOf(1), storetest.HashOf(4)
	_, err = conn.Exec(ctx, `INSERT INTO payments (hash, sub_id, seq,
		amount_msat, seconds, settle_index, state, reason, received_ns,
		rate_msat, before_paid_until_ns, before_remainder_msat,
		before_state, credit_no) VALUES ($1, $2, 7, 1, 0, 0, 1, '', 0, 0,
		0, 0, 0, 0)`, h4[:], sub[:])
	require.ErrorContains(t, err, "payments_credited_seq")
	_, err = conn.Exec(ctx, `INSERT INTO payments (hash, sub_id, seq,
		amount_msat, seconds, settle_index, state, reason, received_ns,
		rate_msat, before_paid_until_ns, before_remainder_msat,
		before_state, credit_no) VALUES ($1, $2, 8, 1, 0, 0, 1, '', 0, 0,
		0, 0, 0, 0)`, h1[:], sub[:])
	require.ErrorContains(t, err, "payments_pkey")
	_, err = conn.Exec(ctx, `UPDATE subscriptions SET total_paid_msat = -1`)
	require.ErrorContains(t, err, "total_paid_msat_check")
}

// testNodesShareResumePoints reproduces one node's lnd indices and held
// HTLCs leaking to another node of the same ledger: each node must resume
// from its own settle and add index, and see only its own held payments,
// while subscriptions and payments are shared.
func testNodesShareResumePoints(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	a, b := open(t, dsn, 1), open(t, dsn, 2)
	ctx := storetest.Ctx(t)
	sub := storetest.SubID(1)
	require.NoError(t, storetest.PutActiveSub(ctx, a, sub))
	require.NoError(t, a.Update(ctx, func(tx store.ReceiverTx) error {
		if err := tx.SetSettleIndex(10); err != nil {
			return err
		}
		if err := tx.SetAddIndex(20); err != nil {
			return err
		}
		if err := tx.MarkHeld(storetest.HashOf(1)); err != nil {
			return err
		}
		return tx.PutPayment(&store.Payment{Hash: storetest.HashOf(1),
			SubID: sub, Seq: 1, Amount: 1000,
			State: store.PaymentCredited})
	}))
	check := func(s *postgres.Store, settle, add uint64, held int) {
		t.Helper()
		require.NoError(t, s.View(ctx, func(tx store.ReceiverTx) error {
			v, err := tx.SettleIndex()
			require.NoError(t, err)
			require.Equal(t, settle, v)
			v, err = tx.AddIndex()
			require.NoError(t, err)
			require.Equal(t, add, v)
			n := 0
			require.NoError(t, tx.ForEachHeld(func(store.Hash) error {
				n++
				return nil
			}))
			require.Equal(t, held, n)
			// Shared: the payment is visible to every node.
			_, err = tx.Payment(storetest.HashOf(1))
			require.NoError(t, err)
			return nil
		}))
	}
	check(a, 10, 20, 1)
	check(b, 0, 0, 0)
}

// testTwoReceiversMigrateAtOnce reproduces two receivers starting together
// on an empty database: both must open, the schema applied once.
func testTwoReceiversMigrateAtOnce(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	ctx := storetest.Ctx(t)

	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s, err := postgres.Open(ctx, postgres.Config{DSN: dsn,
				NodePubkey: nodeKey(byte(i + 1))})
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var rows, maxV int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*), max(version) "+
		"FROM satstream_schema").Scan(&rows, &maxV))
	require.Equal(t, postgres.SchemaVersion(), rows)
	require.Equal(t, postgres.SchemaVersion(), maxV)
}

// testNewerSchemaOpened reproduces an older binary opening a database a
// newer one migrated: it must refuse with the badger store's sentinel.
func testNewerSchemaOpened(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	ctx := storetest.Ctx(t)
	require.NoError(t, open(t, dsn, 1).Close())

	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "INSERT INTO satstream_schema (version, name) "+
		"VALUES ($1, 'from_the_future.sql')", postgres.SchemaVersion()+1)
	require.NoError(t, err)

	_, err = postgres.Open(ctx, postgres.Config{DSN: dsn,
		NodePubkey: nodeKey(1)})
	require.ErrorIs(t, err, store.ErrSchemaTooNew)
}

// TestStoreDeadAfterDatabaseRestart reproduces a store whose pooled
// connections died with a database restart: the next steps must work on
// fresh connections, not fail until the daemon restarts. (pgxpool pings a
// connection idle for a second before handing it out; the store also runs
// a step once more when its connection failed before sending anything.)
func TestStoreDeadAfterDatabaseRestart(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t) // its own server: the test restarts it
	dsn := srv.NewDatabase(t)
	ctx := storetest.Ctx(t)
	s := open(t, dsn, 1)
	sub := storetest.SubID(1)
	require.NoError(t, storetest.PutActiveSub(ctx, s, sub))
	require.NoError(t, storetest.Credit(ctx, s, sub, 1, 1000))

	srv.Restart(t)

	require.NoError(t, storetest.Credit(ctx, s, sub, 2, 1000))
	sum, err := storetest.Summarize(ctx, s, sub)
	require.NoError(t, err)
	require.Len(t, sum.Payments, 2)
	require.NoError(t, s.Ping(ctx))
}

// TestDatabaseDownCreditsAnyway reproduces a receiver that, with its
// database gone, would settle payments it cannot record: every step must
// fail with store.ErrUnavailable, so the receiver refuses.
func TestDatabaseDownCreditsAnyway(t *testing.T) {
	t.Parallel()
	// Its own server: the test stops it.
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ctx := storetest.Ctx(t)
	s, err := postgres.Open(ctx, postgres.Config{DSN: dsn,
		NodePubkey: nodeKey(1), ConnectTimeout: 2 * time.Second})
	require.NoError(t, err)
	defer s.Close()
	sub := storetest.SubID(1)
	require.NoError(t, storetest.PutActiveSub(ctx, s, sub))
	require.NoError(t, storetest.Credit(ctx, s, sub, 1, 1000))

	srv.Stop(t)

	err = storetest.Credit(ctx, s, sub, 2, 1000)
	require.ErrorIs(t, err, store.ErrUnavailable)
	err = s.View(ctx, func(tx store.ReceiverTx) error {
		_, err := tx.Subscription(sub)
		return err
	})
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.ErrorIs(t, s.Ping(ctx), store.ErrUnavailable)
	require.False(t, errors.Is(err, store.ErrNotFound))

	_, err = postgres.Open(ctx, postgres.Config{DSN: dsn,
		NodePubkey: nodeKey(1), ConnectTimeout: 2 * time.Second})
	require.ErrorIs(t, err, store.ErrUnavailable)
}

// testLedgerOfAnotherNodeIsRefused reproduces a receiver following lnd
// node B with the store of node A (whose resume points it would use), and
// a ledger mixing networks.
func testLedgerOfAnotherNodeIsRefused(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	ctx := storetest.Ctx(t)
	a, b := open(t, dsn, 1), open(t, dsn, 2)

	bound, err := a.Bind(ctx, store.Binding{Node: nodeKey(1),
		Network: "regtest"})
	require.NoError(t, err)
	require.True(t, bound)
	bound, err = a.Bind(ctx, store.Binding{Node: nodeKey(1),
		Network: "regtest"})
	require.NoError(t, err)
	require.False(t, bound)

	_, err = a.Bind(ctx, store.Binding{Node: nodeKey(2),
		Network: "regtest"})
	require.ErrorIs(t, err, store.ErrWrongNode)
	_, err = b.Bind(ctx, store.Binding{Node: nodeKey(2),
		Network: "mainnet"})
	require.ErrorIs(t, err, store.ErrWrongNode)
	bound, err = b.Bind(ctx, store.Binding{Node: nodeKey(2),
		Network: "regtest"})
	require.NoError(t, err)
	require.True(t, bound)

	got, found, err := b.NodeBinding(ctx)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, store.Binding{Node: nodeKey(2), Network: "regtest"}, got)
}

// testIdempotencyKeySharedByNodes reproduces a POST retried at another
// receiver of the cluster being executed twice: the key begun at one node
// is found at the other.
func testIdempotencyKeySharedByNodes(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	ctx := storetest.Ctx(t)
	a, b := open(t, dsn, 1), open(t, dsn, 2)
	rec := &store.IdemRecord{Scope: [32]byte{1}, BodyHash: [32]byte{2},
		Seed: [16]byte{3}, CreatedAt: storetest.At(1000)}

	got, created, err := a.IdemBegin(ctx, rec, time.Hour, 10)
	require.NoError(t, err)
	require.True(t, created)
	done := *got
	done.Done, done.Status, done.ContentType = true, 201, "application/json"
	done.Body = []byte(`{"ok":true}`)
	require.NoError(t, a.IdemFinish(ctx, &done, storetest.At(1001)))

	again := *rec
	again.Seed = [16]byte{9}
	again.CreatedAt = storetest.At(1010)
	got, created, err = b.IdemBegin(ctx, &again, time.Hour, 10)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, &done, got)

	// Past its time to live the key is new again; at the cap a new key
	// is refused.
	later := again
	later.CreatedAt = storetest.At(1000 + 3601)
	_, created, err = b.IdemBegin(ctx, &later, time.Hour, 10)
	require.NoError(t, err)
	require.True(t, created)
	other := later
	other.Scope = [32]byte{7}
	_, _, err = b.IdemBegin(ctx, &other, time.Hour, 1)
	require.ErrorIs(t, err, store.ErrIdemFull)
	n, err := a.IdemCount(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}

// testAppliedKeyLostItsSeedPastItsTTL reproduces, on PostgreSQL, a key
// whose request took effect but was never answered being pruned or
// replaced after its time to live: its retry would run with a new seed and
// create a second subscription. The write marks the key applied in the
// same commit; the record then outlives its time to live until answered,
// and a write for a key whose record is gone commits nothing.
func testAppliedKeyLostItsSeedPastItsTTL(t *testing.T, srv *pgtest.Server) {
	dsn := srv.NewDatabase(t)
	ctx := storetest.Ctx(t)
	a, b := open(t, dsn, 1), open(t, dsn, 2)
	rec := &store.IdemRecord{Scope: [32]byte{1}, BodyHash: [32]byte{2},
		Seed: [16]byte{3}, CreatedAt: storetest.At(1000)}
	_, created, err := a.IdemBegin(ctx, rec, time.Hour, 10)
	require.NoError(t, err)
	require.True(t, created)

	var active atomic.Bool
	active.Store(true)
	under := store.WithIdemKey(ctx, rec.Scope, rec.Seed, &active)
	require.NoError(t, a.Update(under, func(tx store.ReceiverTx) error {
		return tx.SetAddIndex(7)
	}))

	// Another key past the first one's time to live prunes what it may:
	// not the applied one.
	other := &store.IdemRecord{Scope: [32]byte{5}, BodyHash: [32]byte{6},
		Seed: [16]byte{7}, CreatedAt: storetest.At(1000 + 7200)}
	_, created, err = b.IdemBegin(ctx, other, time.Hour, 10)
	require.NoError(t, err)
	require.True(t, created)

	retry := *rec
	retry.Seed = [16]byte{9}
	retry.CreatedAt = storetest.At(1000 + 7201)
	got, created, err := b.IdemBegin(ctx, &retry, time.Hour, 10)
	require.NoError(t, err)
	require.False(t, created, "the applied key was replaced")
	require.Equal(t, rec.Seed, got.Seed)
	require.True(t, got.Applied)

	// Answered, it is replayed a time to live from its answer.
	done := *got
	done.Done, done.Status = true, 201
	require.NoError(t, b.IdemFinish(ctx, &done, storetest.At(9000)))
	got, created, err = a.IdemBegin(ctx, &retry, time.Hour, 10)
	require.NoError(t, err)
	require.False(t, created)
	require.True(t, got.Done)
	require.Equal(t, storetest.At(9000), got.CreatedAt)

	// A write for a key no record remembers is refused whole.
	lost := store.WithIdemKey(ctx, [32]byte{42}, [16]byte{1}, &active)
	err = a.Update(lost, func(tx store.ReceiverTx) error {
		return tx.SetAddIndex(8)
	})
	require.ErrorIs(t, err, store.ErrIdemLost)
	require.NoError(t, a.View(ctx, func(tx store.ReceiverTx) error {
		v, err := tx.AddIndex()
		require.EqualValues(t, 7, v)
		return err
	}))
}

// TestPostgresStore runs the PostgreSQL store's tests on one throw-away
// server (starting one costs seconds), each test in its own database.
func TestPostgresStore(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	tests := []struct {
		name string
		run  func(*testing.T, *pgtest.Server)
	}{
		{"ReceiverSuite", testReceiverSuite},
		{"TwoNodesCreditOneSubscriptionTwice", testTwoNodesCreditOneSubscriptionTwice},
		{"CreditedSequenceTwiceAcceptedByDatabase", testCreditedSequenceTwiceAcceptedByDatabase},
		{"NodesShareResumePoints", testNodesShareResumePoints},
		{"TwoReceiversMigrateAtOnce", testTwoReceiversMigrateAtOnce},
		{"NewerSchemaOpened", testNewerSchemaOpened},
		{"LedgerOfAnotherNodeIsRefused", testLedgerOfAnotherNodeIsRefused},
		{"IdempotencyKeySharedByNodes", testIdempotencyKeySharedByNodes},
		{"AppliedKeyLostItsSeedPastItsTTL", testAppliedKeyLostItsSeedPastItsTTL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, srv)
		})
	}
}

// TestHeldAtSeesAnotherNodesHold: the held table is per node; HeldAt tells
// a node whether another node's lnd holds a hash, so it neither settles nor
// reverses a credit it does not hold.
func TestHeldAtSeesAnotherNodesHold(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	a, b := open(t, dsn, 1), open(t, dsn, 2)
	ctx := storetest.Ctx(t)
	h, sub := storetest.HashOf(1), storetest.SubID(1)
	require.NoError(t, storetest.PutActiveSub(ctx, a, sub))
	require.NoError(t, a.Update(ctx, func(tx store.ReceiverTx) error {
		if err := tx.MarkHeld(h); err != nil {
			return err
		}
		return tx.PutPayment(&store.Payment{Hash: h, SubID: sub, Seq: 1,
			Amount: 1000, State: store.PaymentCredited})
	}))
	for _, c := range []struct {
		name            string
		s               *postgres.Store
		here, elsewhere bool
	}{{"holder", a, true, false}, {"other", b, false, true}} {
		require.NoError(t, c.s.View(ctx, func(tx store.ReceiverTx) error {
			here, elsewhere, err := tx.HeldAt(h)
			require.NoError(t, err)
			require.Equal(t, c.here, here, c.name)
			require.Equal(t, c.elsewhere, elsewhere, c.name)
			return nil
		}), c.name)
	}
}
