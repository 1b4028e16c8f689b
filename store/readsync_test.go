package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// heldSync is a FaultHook that, once armed, holds every fsync at p until
// released, then fails it with err (nil lets it go on).
type heldSync struct {
	p        FaultPoint
	armed    atomic.Bool
	entered  chan struct{}
	enterOne sync.Once
	release  chan struct{}
	released atomic.Bool
	err      error
}

func newHeldSync(p FaultPoint, err error) *heldSync {
	return &heldSync{p: p, entered: make(chan struct{}),
		release: make(chan struct{}), err: err}
}

func (h *heldSync) hook(p FaultPoint) error {
	if p != h.p || !h.armed.Load() {
		return nil
	}
	h.enterOne.Do(func() { close(h.entered) })
	<-h.release
	return h.err
}

// letGo releases the held operation; released is set first, so whoever
// runs after the release sees it.
func (h *heldSync) letGo() {
	if h.released.CompareAndSwap(false, true) {
		close(h.release)
	}
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(testTimeout):
		t.Fatalf("%s did not happen", what)
	}
}

// TestReadSeesCreditBeforeItsSync reproduces a read acting on a step that
// is committed but not yet on disk: a View (the webhook dispatcher, an API
// read) or an Update that wrote nothing, started while the credit's fsync
// was still running, saw the credit at once. Had that fsync failed (or the
// power gone) the provider would have been told about a credit that no
// longer exists. Now the read returns only after the round that makes the
// credit durable, and fails with ErrFailed when that round fails.
func TestReadSeesCreditBeforeItsSync(t *testing.T) {
	t.Parallel()
	// A View's fn may act (send a webhook) as it reads, so it must not
	// even run before the sync; an Update's fn has no effects outside its
	// transaction (it may be re-run), so only its return must wait.
	reads := map[string]struct {
		read func(context.Context, ReceiverStore,
			func(ReceiverTx) error) error
		fnWaits bool
	}{
		"view": {func(ctx context.Context, rs ReceiverStore,
			fn func(ReceiverTx) error) error {

			return rs.View(ctx, fn)
		}, true},
		"update that writes nothing": {func(ctx context.Context,
			rs ReceiverStore, fn func(ReceiverTx) error) error {

			return rs.Update(ctx, fn)
		}, false},
	}
	for name, r := range reads {
		read := r.read
		for _, syncErr := range []error{nil, errDiskOnFire} {
			t.Run(fmt.Sprintf("%s/sync error %v", name, syncErr), func(t *testing.T) {
				t.Parallel()
				held := newHeldSync(FaultSync, syncErr)
				db, _ := openTestDB(t, func(o *Options) {
					o.FaultHook = held.hook
				})
				t.Cleanup(held.letGo)
				rs, ctx := db.Receiver(), testCtx(t)
				require.NoError(t, putActiveSub(ctx, rs, subID(1)))

				held.armed.Store(true)
				credited := make(chan error, 1)
				go func() { credited <- credit(ctx, rs, subID(1), 1, 1500) }()
				waitClosed(t, held.entered, "the credit's fsync")

				var (
					ran, sawCredit, syncedFirst bool
					syncedBeforeReturn          bool
					readDone                    = make(chan error, 1)
				)
				go func() {
					err := read(ctx, rs, func(tx ReceiverTx) error {
						ran = true
						_, err := tx.Payment(hashOf(1))
						sawCredit = err == nil
						// A View's read hands the credit
						// over only once it is on disk.
						syncedFirst = held.released.Load()
						return nil
					})
					syncedBeforeReturn = held.released.Load()
					readDone <- err
				}()

				// The read either returned (the bug) or waits for
				// the next round.
				var readErr error
				returned := false
				require.Eventually(t, func() bool {
					select {
					case readErr = <-readDone:
						returned = true
						return true
					default:
					}
					db.syncer.mu.Lock()
					defer db.syncer.mu.Unlock()
					return db.syncer.next != nil
				}, testTimeout, time.Millisecond)
				if returned {
					require.False(t, sawCredit && !syncedBeforeReturn,
						"read returned the credit before its fsync finished")
				}

				held.letGo()
				if !returned {
					select {
					case readErr = <-readDone:
					case <-time.After(testTimeout):
						t.Fatal("read did not return after the sync")
					}
				}
				creditErr := <-credited
				if syncErr == nil {
					require.NoError(t, creditErr)
					require.NoError(t, readErr)
					require.True(t, ran)
					require.True(t, sawCredit)
					require.True(t, syncedBeforeReturn,
						"read returned the credit before its fsync finished")
					if r.fnWaits {
						require.True(t, syncedFirst,
							"view saw the credit before its fsync finished")
					}
					return
				}
				require.ErrorIs(t, creditErr, ErrFailed)
				require.ErrorIs(t, readErr, ErrFailed)
				require.ErrorIs(t, readErr, ErrSyncFailed)
				if r.fnWaits {
					require.False(t, sawCredit, "view saw a credit whose sync failed")
				}
			})
		}
	}
}

// TestReadWithNothingUnsyncedDoesNotSync checks the common case stays
// cheap: a read with every step on disk starts no sync round.
func TestReadWithNothingUnsyncedDoesNotSync(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	rs, ctx := db.Receiver(), testCtx(t)
	require.NoError(t, putActiveSub(ctx, rs, subID(1)))
	require.NoError(t, credit(ctx, rs, subID(1), 1, 1500))
	before := db.Stats().Syncs
	for i := 0; i < 10; i++ {
		require.NoError(t, rs.View(ctx, func(ReceiverTx) error { return nil }))
		require.NoError(t, rs.Update(ctx, func(ReceiverTx) error { return nil }))
	}
	require.Equal(t, before, db.Stats().Syncs)
}

// TestStuckDiskWedgesStore reproduces disk failures that never returned an
// error: an fsync or a badger commit (badger blocks writes once its
// memtable flushes keep failing) that never finishes held the step's
// Update, every writer behind it and Close forever, and the daemon never
// learnt the ledger was broken. Now an operation that takes longer than
// StallTimeout fails the store with ErrStalled, every waiter returns, and
// Close returns within its bound.
func TestStuckDiskWedgesStore(t *testing.T) {
	t.Parallel()
	for _, p := range []FaultPoint{FaultSync, FaultCommit} {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			held := newHeldSync(p, nil)
			db, _ := openTestDB(t, func(o *Options) {
				o.FaultHook = held.hook
				o.StallTimeout = 200 * time.Millisecond
			})
			// Registered after openTestDB, so it runs before its
			// Close: the stuck goroutine may go once we are done.
			t.Cleanup(held.letGo)
			rs, ctx := db.Receiver(), testCtx(t)
			require.NoError(t, putActiveSub(ctx, rs, subID(1)))
			require.NoError(t, putActiveSub(ctx, rs, subID(2)))

			held.armed.Store(true)
			const writers = 2
			errs := make(chan error, writers)
			for i := 1; i <= writers; i++ {
				go func() {
					errs <- credit(ctx, rs, subID(uint64(i)), uint64(i), 1500)
				}()
			}
			waitClosed(t, held.entered, "the stuck "+string(p))
			for i := 0; i < writers; i++ {
				select {
				case err := <-errs:
					require.ErrorIs(t, err, ErrFailed)
					// A writer that joined a round before the stall
					// may get the stall itself, or the refusal.
				case <-time.After(testTimeout):
					t.Fatal("a writer is still stuck behind the disk")
				}
			}
			waitClosed(t, db.Failed(), "the store failing")
			require.ErrorIs(t, db.Err(), ErrStalled)

			closed := make(chan error, 1)
			go func() { closed <- db.Close() }()
			select {
			case err := <-closed:
				// The stuck goroutine still holds badger or the
				// syncer: Close gives up on it with the failure.
				if err != nil {
					require.ErrorIs(t, err, ErrFailed)
				}
			case <-time.After(testTimeout):
				t.Fatal("Close is stuck behind the disk")
			}
		})
	}
}

// TestCloseHangsOnHealthyStore checks that Close is bounded before any
// failure too: an operation that never returns makes Close fail the store
// with ErrStalled after StallTimeout.
func TestCloseHangsOnHealthyStore(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t, func(o *Options) {
		o.StallTimeout = 200 * time.Millisecond
	})
	rs, ctx := db.Receiver(), testCtx(t)
	stuck, inView := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	go func() {
		_ = rs.View(ctx, func(ReceiverTx) error {
			close(inView)
			<-stuck
			return nil
		})
	}()
	waitClosed(t, inView, "the view")
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	select {
	case err := <-closed:
		require.ErrorIs(t, err, ErrFailed)
		require.ErrorIs(t, err, ErrStalled)
	case <-time.After(testTimeout):
		t.Fatal("Close waits forever for a stuck operation")
	}
}

// TestBadgerOnlyLogsFlushFailure reproduces the disk failures badger
// reports only in its log: a memtable flush (or the MANIFEST write that
// records it) that fails is retried every second forever, and the store
// carried on until writes blocked. Now those messages fail the store;
// badger's other complaints do not.
func TestBadgerOnlyLogsFlushFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		warn  bool
		f     string
		v     []interface{}
		fails bool
	}{
		{"memtable flush", false, "error flushing memtable to disk: %v, retrying",
			[]interface{}{errDiskOnFire}, true},
		{"flush at close", false, "While trying to flush memtable: %v",
			[]interface{}{errDiskOnFire}, true},
		{"manifest write", true, "While running doCompact: %v\n",
			[]interface{}{fmt.Errorf("MANIFEST: %w", errDiskOnFire)}, true},
		{"manifest double delete", true,
			"MANIFEST delete: table %d has already been removed",
			[]interface{}{7}, false},
		{"cache too small", true, "%s might be too small. Metrics: %s\n",
			[]interface{}{"block cache", "x"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, _ := openTestDB(t)
			if tc.warn {
				db.blog.Warningf(tc.f, tc.v...)
			} else {
				db.blog.Errorf(tc.f, tc.v...)
			}
			if !tc.fails {
				require.NoError(t, db.Err())
				return
			}
			require.ErrorIs(t, db.Err(), ErrFailed)
			err := db.Receiver().View(testCtx(t),
				func(ReceiverTx) error { return nil })
			require.ErrorIs(t, err, ErrFailed)
			require.ErrorContains(t, err, "disk on fire")
		})
	}
}

// TestOpenServesStepsNobodySynced reproduces Open trusting badger's logs
// as they were left: steps a killed process committed but never synced
// were replayed and served without ever being made durable. Open now runs
// a sync round before it returns, and fails when that sync fails.
func TestOpenServesStepsNobodySynced(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := testCtx(t)
	db, err := Open(ctx, dir, DefaultOptions())
	require.NoError(t, err)
	require.NoError(t, putActiveSub(ctx, db.Receiver(), subID(1)))
	require.NoError(t, db.Close())

	var syncs atomic.Int32
	opts := DefaultOptions()
	opts.FaultHook = func(p FaultPoint) error {
		if p == FaultSync {
			syncs.Add(1)
			return errDiskOnFire
		}
		return nil
	}
	_, err = Open(ctx, dir, opts)
	require.ErrorIs(t, err, ErrSyncFailed)
	require.ErrorIs(t, err, errDiskOnFire)
	require.EqualValues(t, 1, syncs.Load())

	// The failed Open let go of the directory.
	db, err = Open(ctx, dir, DefaultOptions())
	require.NoError(t, err)
	require.NoError(t, db.Close())
}

// TestNewLedgerDirectoryNameNotSynced reproduces Open creating the ledger
// directory without syncing its parent, so a power cut could take the
// directory, and everything acknowledged in it, away. Each directory Open
// creates now has its parent synced, and a failing sync fails Open.
func TestNewLedgerDirectoryNameNotSynced(t *testing.T) {
	t.Parallel()
	var (
		hits atomic.Int32
		fail atomic.Bool
	)
	opts := DefaultOptions()
	opts.FaultHook = func(p FaultPoint) error {
		if p != FaultCreateDir {
			return nil
		}
		hits.Add(1)
		if fail.Load() {
			return errDiskOnFire
		}
		return nil
	}
	db, err := Open(testCtx(t), filepath.Join(t.TempDir(), "data", "ledger"), opts)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	require.EqualValues(t, 2, hits.Load(), "one parent per created directory")

	fail.Store(true)
	_, err = Open(testCtx(t), filepath.Join(t.TempDir(), "ledger"), opts)
	require.ErrorIs(t, err, ErrSyncFailed)
	require.ErrorIs(t, err, errDiskOnFire)
}

// TestPaidCheckWaitsForUnrelatedCommitsFsync reproduces the paid check's
// tail: a View waited until every step its snapshot could see was on disk,
// so a read of a subscription written long ago waited for the fsync of an
// unrelated credit (or expiry) that happened to commit just before. A read
// of records already on disk must not wait; a read of the unsynced step
// still does, and a read that finds nothing (the absence may be a deletion
// not yet on disk) too.
func TestPaidCheckWaitsForUnrelatedCommitsFsync(t *testing.T) {
	t.Parallel()
	held := newHeldSync(FaultSync, nil)
	db, _ := openTestDB(t, func(o *Options) { o.FaultHook = held.hook })
	t.Cleanup(held.letGo)
	rs, ctx := db.Receiver(), testCtx(t)
	require.NoError(t, putActiveSub(ctx, rs, subID(1)))
	require.NoError(t, putActiveSub(ctx, rs, subID(2)))

	held.armed.Store(true)
	credited := make(chan error, 1)
	go func() { credited <- credit(ctx, rs, subID(2), 1, 1500) }()
	waitClosed(t, held.entered, "the unrelated credit's fsync")

	// The durable subscription is read while the fsync is held.
	require.NoError(t, rs.View(ctx, func(tx ReceiverTx) error {
		s, err := tx.Subscription(subID(1))
		require.NoError(t, err)
		require.Equal(t, subID(1), s.ID)
		return nil
	}))
	require.False(t, held.released.Load())

	// The credited subscription and a missing record wait for it.
	reads := map[string]func(tx ReceiverTx) error{
		"unsynced step": func(tx ReceiverTx) error {
			_, err := tx.Subscription(subID(2))
			return err
		},
		"absent record": func(tx ReceiverTx) error {
			_, err := tx.Subscription(subID(3))
			if !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("want ErrNotFound, got %w", err)
			}
			return nil
		},
	}
	done := map[string]chan error{}
	for name, read := range reads {
		ch := make(chan error, 1)
		done[name] = ch
		go func() { ch <- rs.View(ctx, read) }()
	}
	for name, ch := range done {
		select {
		case err := <-ch:
			t.Fatalf("%s: read returned (%v) before the fsync", name, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	held.letGo()
	for name, ch := range done {
		select {
		case err := <-ch:
			require.NoError(t, err, name)
		case <-time.After(testTimeout):
			t.Fatalf("%s: read did not return after the fsync", name)
		}
	}
	require.NoError(t, <-credited)
}

// TestEventListShowsEventBeforeItsSync holds the event list (ForEachEvent,
// GET /v1/events) to the read gating: an event whose step is committed but
// not yet on disk is not listed before its fsync returns, and never if the
// fsync fails (an operator or a poller would act on an event that no
// longer exists).
func TestEventListShowsEventBeforeItsSync(t *testing.T) {
	t.Parallel()
	for _, syncErr := range []error{nil, errDiskOnFire} {
		t.Run(fmt.Sprintf("sync error %v", syncErr), func(t *testing.T) {
			t.Parallel()
			held := newHeldSync(FaultSync, syncErr)
			db, _ := openTestDB(t, func(o *Options) {
				o.FaultHook = held.hook
			})
			t.Cleanup(held.letGo)
			rs, ctx := db.Receiver(), testCtx(t)
			require.NoError(t, putActiveSub(ctx, rs, subID(1)))

			held.armed.Store(true)
			credited := make(chan error, 1)
			go func() { credited <- credit(ctx, rs, subID(1), 1, 1500) }()
			waitClosed(t, held.entered, "the credit's fsync")

			var (
				listed         []EventID
				listedUnsynced bool
				readDone       = make(chan error, 1)
			)
			go func() {
				readDone <- rs.View(ctx, func(tx ReceiverTx) error {
					return tx.ForEachEvent(0, 100, func(ev *Event) error {
						listed = append(listed, ev.ID)
						if !held.released.Load() {
							listedUnsynced = true
						}
						return nil
					})
				})
			}()
			// The list waits for the next sync round (or, wrongly,
			// has returned already).
			require.Eventually(t, func() bool {
				if len(readDone) > 0 {
					return true
				}
				db.syncer.mu.Lock()
				defer db.syncer.mu.Unlock()
				return db.syncer.next != nil
			}, testTimeout, time.Millisecond)
			held.letGo()
			var readErr error
			select {
			case readErr = <-readDone:
			case <-time.After(testTimeout):
				t.Fatal("the list did not return after the sync")
			}
			creditErr := <-credited
			require.False(t, listedUnsynced,
				"listed an event before its fsync finished")
			if syncErr == nil {
				require.NoError(t, creditErr)
				require.NoError(t, readErr)
				require.Equal(t, []EventID{1}, listed)
				return
			}
			require.ErrorIs(t, creditErr, ErrFailed)
			require.ErrorIs(t, readErr, ErrFailed)
			require.Empty(t, listed, "listed an event whose sync failed")
		})
	}
}
