package receiver

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/satstream/satstream/receiver/core"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

const paidTestTimeout = 20 * time.Second

// heldFsync holds the store's group-commit fsync while armed, so a test
// can look at a step that is committed but not yet on disk.
type heldFsync struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	enterMu sync.Once
}

func newHeldFsync() *heldFsync {
	return &heldFsync{entered: make(chan struct{}),
		release: make(chan struct{})}
}

func (h *heldFsync) hook(p store.FaultPoint) error {
	if p != store.FaultSync || !h.armed.Load() {
		return nil
	}
	h.enterMu.Do(func() { close(h.entered) })
	<-h.release
	return nil
}

func (h *heldFsync) letGo() { h.once.Do(func() { close(h.release) }) }

// openPaidLedger opens a badger ledger in dir with the fsync hook, puts
// plan if not there yet, and wraps its receiver store in a paid index.
func openPaidLedger(t *testing.T, dir string, held *heldFsync) (*store.DB,
	*paidIndex) {

	t.Helper()
	opts := store.DefaultOptions()
	if held != nil {
		opts.FaultHook = held.hook
	}
	db, err := store.Open(context.Background(), dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db, newPaidIndex(db.Receiver())
}

var paidTestNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// putPaidSub makes an active subscription paid until paidUntil.
func putPaidSub(t *testing.T, rs store.ReceiverStore, id store.SubID,
	paidUntil time.Time) {

	t.Helper()
	plan := &store.Plan{ID: "p", Label: "p", Terms: store.Terms{
		RatePerSecond: 10, MinPayment: 1000, Grace: time.Minute,
		MaxPrepay: 24 * time.Hour}}
	require.NoError(t, rs.Update(context.Background(),
		func(tx store.ReceiverTx) error {
			if err := tx.PutPlan(plan); err != nil {
				return err
			}
			s := core.NewSubscription(id, plan, paidTestNow)
			s.State = store.SubActive
			s.PaidUntil = paidUntil
			return tx.PutSubscription(s)
		}))
}

// changeSub rewrites a subscription in one step, as a credit, expiry,
// cancel or PATCH does.
func changeSub(ctx context.Context, rs store.ReceiverStore, id store.SubID,
	f func(s *store.ReceiverSubscription)) error {

	return rs.Update(ctx, func(tx store.ReceiverTx) error {
		s, err := tx.Subscription(id)
		if err != nil {
			return err
		}
		f(s)
		return tx.PutSubscription(s)
	})
}

// checkPaid is the paid check's answer through the index.
func checkPaid(t *testing.T, idx *paidIndex, id store.SubID) paidView {
	t.Helper()
	e, err := idx.paid(context.Background(), id.PublicID())
	require.NoError(t, err)
	return newPaidView(id.PublicID(), &e, paidTestNow)
}

// ledgerPaid is the answer read from the ledger, without the index.
func ledgerPaid(t *testing.T, rs store.ReceiverStore, id store.SubID) paidView {
	t.Helper()
	e, err := viewPaid(context.Background(), rs, id.PublicID())
	require.NoError(t, err)
	return newPaidView(id.PublicID(), &e, paidTestNow)
}

func testSubID(b byte) store.SubID {
	var id store.SubID
	id[0], id[15] = b, 0x5a
	return id
}

// TestPaidIndexShowsCreditNotYetOnDisk: the paid check answers from
// memory; a credit committed but not yet fsynced must not show (a crash
// would take it back), and it must show once its step is on disk.
func TestPaidIndexShowsCreditNotYetOnDisk(t *testing.T) {
	t.Parallel()
	held := newHeldFsync()
	t.Cleanup(held.letGo)
	_, idx := openPaidLedger(t, t.TempDir(), held)
	id := testSubID(1)
	old := paidTestNow.Add(-time.Hour) // past its grace: not paid
	putPaidSub(t, idx, id, old)
	require.False(t, checkPaid(t, idx, id).Paid) // now in the index

	held.armed.Store(true)
	credited := make(chan error, 1)
	go func() {
		credited <- changeSub(context.Background(), idx, id,
			func(s *store.ReceiverSubscription) {
				s.PaidUntil = paidTestNow.Add(time.Hour)
			})
	}()
	select {
	case <-held.entered:
	case <-time.After(paidTestTimeout):
		t.Fatal("the credit's fsync never started")
	}
	// Committed, not on disk: the check still shows the old paid time.
	v := checkPaid(t, idx, id)
	require.False(t, v.Paid)
	require.Equal(t, old, *v.PaidUntil)

	held.letGo()
	select {
	case err := <-credited:
		require.NoError(t, err)
	case <-time.After(paidTestTimeout):
		t.Fatal("the credit did not return after its fsync")
	}
	// On disk: the check follows at once.
	v = checkPaid(t, idx, id)
	require.True(t, v.Paid)
	require.Equal(t, paidTestNow.Add(time.Hour), *v.PaidUntil)
}

// TestPaidIndexMissWaitsForUnsyncedCredit: a subscription not in the index
// is read from the ledger, whose View does not show the unsynced credit
// either: the check returns only once the credit is on disk, with it.
func TestPaidIndexMissWaitsForUnsyncedCredit(t *testing.T) {
	t.Parallel()
	held := newHeldFsync()
	t.Cleanup(held.letGo)
	_, idx := openPaidLedger(t, t.TempDir(), held)
	id := testSubID(2)
	putPaidSub(t, idx, id, paidTestNow.Add(-time.Hour))

	held.armed.Store(true)
	credited := make(chan error, 1)
	go func() {
		credited <- changeSub(context.Background(), idx, id,
			func(s *store.ReceiverSubscription) {
				s.PaidUntil = paidTestNow.Add(time.Hour)
			})
	}()
	select {
	case <-held.entered:
	case <-time.After(paidTestTimeout):
		t.Fatal("the credit's fsync never started")
	}
	answer := make(chan paidEntry, 1)
	go func() {
		e, err := idx.paid(context.Background(), id.PublicID())
		if err == nil {
			answer <- e
		}
		close(answer)
	}()
	select {
	case e := <-answer:
		t.Fatalf("answered %v before the credit was on disk", e.paidUntil)
	case <-time.After(50 * time.Millisecond):
	}
	held.letGo()
	select {
	case e, ok := <-answer:
		require.True(t, ok, "check failed")
		require.Equal(t, paidTestNow.Add(time.Hour), e.paidUntil)
	case <-time.After(paidTestTimeout):
		t.Fatal("no answer after the fsync")
	}
	require.NoError(t, <-credited)
}

// pausedViews wraps a store so a test can stop a View after it read,
// before the paid index keeps what it read.
type pausedViews struct {
	store.ReceiverStore
	read   chan struct{}
	resume chan struct{}
}

func (p *pausedViews) View(ctx context.Context,
	fn func(store.ReceiverTx) error) error {

	err := p.ReceiverStore.View(ctx, fn)
	p.read <- struct{}{}
	<-p.resume
	return err
}

// TestPaidIndexKeepsReadOlderThanConcurrentCredit reproduces a stale
// index: a check that read a subscription just before a credit, and kept
// what it read after the credit's step had forgotten the entry, would
// answer with the old paid time until the next write.
func TestPaidIndexKeepsReadOlderThanConcurrentCredit(t *testing.T) {
	t.Parallel()
	db, _ := openPaidLedger(t, t.TempDir(), nil)
	paused := &pausedViews{ReceiverStore: db.Receiver(),
		read: make(chan struct{}), resume: make(chan struct{})}
	idx := newPaidIndex(paused)
	id := testSubID(3)
	old := paidTestNow.Add(-time.Hour)
	putPaidSub(t, idx, id, old)

	first := make(chan paidEntry, 1)
	go func() {
		e, _ := idx.paid(context.Background(), id.PublicID())
		first <- e
	}()
	select {
	case <-paused.read: // read the old paid time, not yet kept
	case <-time.After(paidTestTimeout):
		t.Fatal("the check never read")
	}
	require.NoError(t, changeSub(context.Background(), idx, id,
		func(s *store.ReceiverSubscription) {
			s.PaidUntil = paidTestNow.Add(time.Hour)
		}))
	close(paused.resume)
	require.Equal(t, old, (<-first).paidUntil)

	// The next check must see the credit, from the ledger.
	go func() {
		for range paused.read {
		}
	}()
	require.True(t, checkPaid(t, idx, id).Paid)
	require.True(t, checkPaid(t, idx, id).Paid)
}

// TestPaidIndexFollowsEveryWrite: whatever a step changes (credit,
// expiry, pause to past due, cancel, a PATCH of the grace period), the
// check answers as the ledger does once the step returned.
func TestPaidIndexFollowsEveryWrite(t *testing.T) {
	t.Parallel()
	changes := []struct {
		name string
		f    func(s *store.ReceiverSubscription)
	}{
		{"credit", func(s *store.ReceiverSubscription) {
			s.PaidUntil = s.PaidUntil.Add(2 * time.Hour)
		}},
		{"past due", func(s *store.ReceiverSubscription) {
			s.State = store.SubPastDue
			s.PaidUntil = paidTestNow.Add(-30 * time.Second)
		}},
		{"expired", func(s *store.ReceiverSubscription) {
			s.State = store.SubExpired
		}},
		{"cancelled by provider", func(s *store.ReceiverSubscription) {
			s.State = store.SubCancelledByProvider
			s.CancelledAt = paidTestNow
		}},
		{"cancelled by payer", func(s *store.ReceiverSubscription) {
			s.State = store.SubCancelledByPayer
			s.CancelledAt = paidTestNow.Add(-time.Minute)
		}},
		{"grace patched", func(s *store.ReceiverSubscription) {
			s.PaidUntil = paidTestNow.Add(-10 * time.Minute)
			s.Terms.Grace = time.Hour
		}},
	}
	_, idx := openPaidLedger(t, t.TempDir(), nil)
	for i, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			id := testSubID(byte(10 + i))
			putPaidSub(t, idx, id, paidTestNow.Add(time.Minute))
			require.Equal(t, ledgerPaid(t, idx.ReceiverStore, id),
				checkPaid(t, idx, id))
			require.NoError(t, changeSub(context.Background(), idx, id,
				c.f))
			require.Equal(t, ledgerPaid(t, idx.ReceiverStore, id),
				checkPaid(t, idx, id))
		})
	}
}

// TestPaidIndexSameAnswerAfterRestart: the index is memory only; after a
// restart the check answers from the ledger exactly as before it.
func TestPaidIndexSameAnswerAfterRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, idx := openPaidLedger(t, dir, nil)
	ids := []store.SubID{testSubID(30), testSubID(31)}
	putPaidSub(t, idx, ids[0], paidTestNow.Add(time.Hour))
	putPaidSub(t, idx, ids[1], paidTestNow.Add(-time.Hour))
	require.NoError(t, changeSub(context.Background(), idx, ids[1],
		func(s *store.ReceiverSubscription) {
			s.State = store.SubCancelledByProvider
			s.CancelledAt = paidTestNow
		}))
	var before []paidView
	for _, id := range ids {
		before = append(before, checkPaid(t, idx, id))
	}
	require.NoError(t, db.Close())

	_, idx = openPaidLedger(t, dir, nil)
	for i, id := range ids {
		require.Equal(t, before[i], checkPaid(t, idx, id))
	}
	_, err := idx.paid(context.Background(), tlv.PublicID{1})
	require.ErrorIs(t, err, store.ErrNotFound)
}

// TestPaidIndexBounded: past its bound the index drops entries instead of
// growing, and a dropped one is read again.
func TestPaidIndexBounded(t *testing.T) {
	t.Parallel()
	_, idx := openPaidLedger(t, t.TempDir(), nil)
	idx.max = 2
	var ids []store.SubID
	for i := range 5 {
		id := testSubID(byte(40 + i))
		putPaidSub(t, idx, id, paidTestNow.Add(time.Hour))
		ids = append(ids, id)
	}
	for _, id := range ids {
		require.True(t, checkPaid(t, idx, id).Paid)
	}
	require.LessOrEqual(t, len(idx.m), 2)
	for _, id := range ids {
		require.True(t, checkPaid(t, idx, id).Paid)
	}
}

// BenchmarkPaidCheck is the paid check through the API handler (auth,
// mux, lookup, JSON) with and without the paid index, over 20,000
// subscriptions checked at random.
func BenchmarkPaidCheck(b *testing.B) {
	for _, withIndex := range []bool{false, true} {
		name := "view"
		if withIndex {
			name = "index"
		}
		b.Run(name, func(b *testing.B) {
			a := newAPIHarness(b)
			if !withIndex {
				a.api.paidIdx = nil
			}
			const n = 20_000
			paths := make([]string, n)
			for lo := 0; lo < n; lo += 500 {
				require.NoError(b, a.db.Update(context.Background(),
					func(tx store.ReceiverTx) error {
						plan := &store.Plan{ID: "p", Label: "p"}
						if err := tx.PutPlan(plan); err != nil {
							return err
						}
						for i := lo; i < lo+500; i++ {
							var id store.SubID
							id[0], id[1], id[2] = byte(i), byte(i>>8), 7
							s := core.NewSubscription(id, plan, paidTestNow)
							s.State = store.SubActive
							s.PaidUntil = paidTestNow.Add(time.Hour)
							paths[i] = "/v1/subscriptions/" +
								id.String() + "/paid"
							if err := tx.PutSubscription(s); err != nil {
								return err
							}
						}
						return nil
					}))
			}
			for _, p := range paths { // fills the index
				a.call(a.tokens.ReadOnly, "GET", p, nil)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				code, _ := a.call(a.tokens.ReadOnly, "GET",
					paths[(i*7919)%n], nil)
				if code != 200 {
					b.Fatalf("status %d", code)
				}
			}
		})
	}
}
