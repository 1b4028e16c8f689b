package store

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/require"
)

// rawBadger writes keys straight into a badger directory, to fake stores
// written by something else or by a newer satstream.
func rawBadger(t *testing.T, dir string, kv map[string][]byte) {
	t.Helper()
	bdb, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	require.NoError(t, err)
	require.NoError(t, bdb.Update(func(txn *badger.Txn) error {
		for k, v := range kv {
			if err := txn.Set([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, bdb.Close())
}

// closedStore creates a store with one subscription and closes it.
func closedStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	db, err := Open(context.Background(), dir, DefaultOptions())
	require.NoError(t, err)
	require.NoError(t, putActiveSub(context.Background(), db.Receiver(), subID(1)))
	require.NoError(t, db.Close())
	return dir
}

// TestOpenErrors checks that every way a directory can be unusable gives
// its own sentinel and a message naming the problem.
func TestOpenErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		setup   func(t *testing.T) string
		want    error
		message string
	}{
		{"stray file", func(t *testing.T) string {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hi"), 0o600))
			return dir
		}, ErrForeign, "notes.txt"},
		{"path is a file", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "f")
			require.NoError(t, os.WriteFile(p, nil, 0o600))
			return p
		}, ErrForeign, "not a directory"},
		{"other badger database", func(t *testing.T) string {
			dir := t.TempDir()
			rawBadger(t, dir, map[string][]byte{"user/1": []byte("x")})
			return dir
		}, ErrForeign, "without a satstream schema"},
		{"newer schema", func(t *testing.T) string {
			dir := closedStore(t)
			rawBadger(t, dir, map[string][]byte{string(keySchemaVersion): be32(SchemaVersion + 1)})
			return dir
		}, ErrSchemaTooNew, "upgrade satstream"},
		{"garbage schema", func(t *testing.T) string {
			dir := closedStore(t)
			rawBadger(t, dir, map[string][]byte{string(keySchemaVersion): {1}})
			return dir
		}, ErrCorrupt, "schema version"},
		{"corrupt manifest", func(t *testing.T) string {
			dir := closedStore(t)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "MANIFEST"),
				[]byte("this is not a manifest at all"), 0o600))
			return dir
		}, ErrCorrupt, "badger cannot open"},
		{"missing manifest", func(t *testing.T) string {
			dir := closedStore(t)
			require.NoError(t, os.Remove(filepath.Join(dir, "MANIFEST")))
			return dir
		}, ErrCorrupt, "no MANIFEST"},
		{"unreadable", func(t *testing.T) string {
			if os.Geteuid() == 0 {
				t.Skip("root ignores permissions")
			}
			dir := closedStore(t)
			require.NoError(t, os.Chmod(dir, 0))
			t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
			return dir
		}, ErrUnreadable, "permission"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := tc.setup(t)
			db, err := Open(context.Background(), dir, DefaultOptions())
			require.ErrorIs(t, err, tc.want)
			require.Nil(t, db)
			require.Contains(t, err.Error(), tc.message)
			t.Log(err)
		})
	}
}

// TestOpenLocked checks that a second opener of a live directory is refused
// with ErrLocked, and that the directory opens again after Close.
func TestOpenLocked(t *testing.T) {
	t.Parallel()
	db, dir := openTestDB(t)
	_, err := Open(context.Background(), dir, DefaultOptions())
	require.ErrorIs(t, err, ErrLocked)
	require.Contains(t, err.Error(), "another satstream daemon")
	t.Log(err)

	require.NoError(t, db.Close())
	db2, err := Open(context.Background(), dir, DefaultOptions())
	require.NoError(t, err)
	require.NoError(t, db2.Close())
}

// TestReopenKeepsData checks that a step written before Close is there after
// reopening, and that the schema is stamped only once.
func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	dir := closedStore(t)
	db, err := Open(context.Background(), dir, DefaultOptions())
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Receiver().View(testCtx(t), func(tx ReceiverTx) error {
		s, err := tx.Subscription(subID(1))
		require.NoError(t, err)
		require.Equal(t, SubActive, s.State)
		return nil
	}))
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Options)
	}{
		{"durability", func(o *Options) { o.Durability = 9 }},
		{"discard ratio", func(o *Options) { o.GCDiscardRatio = 1 }},
		{"retries", func(o *Options) { o.MaxConflictRetries = -1 }},
		{"memtable", func(o *Options) { o.MemTableSize = 1 }},
		{"vlog", func(o *Options) { o.ValueLogFileSize = 1 }},
		{"cache", func(o *Options) { o.BlockCacheSize = 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			tc.mutate(&o)
			_, err := Open(context.Background(), t.TempDir(), o)
			require.ErrorContains(t, err, "store:")
		})
	}
}

// TestCloseWaitsForUsers checks that Close returns only after running
// steps have, and that later calls fail with ErrClosed.
func TestCloseWaitsForUsers(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	rs, ctx := db.Receiver(), testCtx(t)

	inside, release := make(chan struct{}), make(chan struct{})
	updateDone := make(chan error, 1)
	go func() {
		updateDone <- rs.Update(ctx, func(tx ReceiverTx) error {
			close(inside)
			<-release
			return tx.SetSettleIndex(7)
		})
	}()
	<-inside

	closeDone := make(chan error, 1)
	go func() { closeDone <- db.Close() }()

	// Wait until Close has started refusing newcomers, then check it is
	// still waiting for the running step.
	require.Eventually(t, func() bool {
		return errors.Is(rs.View(ctx, func(ReceiverTx) error { return nil }), ErrClosed)
	}, testTimeout, time.Millisecond)
	select {
	case <-closeDone:
		t.Fatal("Close returned while a step was running")
	default:
	}

	close(release)
	require.NoError(t, <-updateDone)
	require.NoError(t, <-closeDone)

	for name, err := range map[string]error{
		"update": rs.Update(ctx, func(ReceiverTx) error { return nil }),
		"sender": db.Sender().View(ctx, func(SenderTx) error { return nil }),
		"backup": db.Backup(ctx, io.Discard),
		"close":  db.Close(),
	} {
		require.ErrorIs(t, err, ErrClosed, name)
	}
}

// TestInMemory checks the mode the daemons' unit tests use.
func TestInMemory(t *testing.T) {
	t.Parallel()
	db, err := Open(context.Background(), "", func() Options {
		o := DefaultOptions()
		o.InMemory = true
		return o
	}())
	require.NoError(t, err)
	defer db.Close()
	ctx := testCtx(t)
	require.NoError(t, putActiveSub(ctx, db.Receiver(), subID(1)))
	require.NoError(t, credit(ctx, db.Receiver(), subID(1), 1, 1500))
	s, err := summarize(ctx, db.Receiver(), subID(1))
	require.NoError(t, err)
	checkConsistent(t, s)
}

// TestValueLogGC checks that a GC pass over a store with rewritten values
// runs without error (badger usually finds nothing worth rewriting in a
// small store; what matters is that the call path works).
func TestValueLogGC(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	ctx := testCtx(t)
	big := make([]byte, 2<<20)
	for i := 0; i < 4; i++ {
		require.NoError(t, db.Receiver().Update(ctx, func(tx ReceiverTx) error {
			return tx.AppendEvent(&Event{Type: EventPaymentReceived, Payload: big})
		}))
	}
	_, err := db.runValueLogGC()
	require.NoError(t, err)
}

// TestConcurrentCredits has many goroutines credit one subscription at once:
// every credit must count exactly once, and the group commit must have
// shared fsyncs between them.
func TestConcurrentCredits(t *testing.T) {
	t.Parallel()
	const (
		workers = 32
		each    = 40
	)
	db, _ := openTestDB(t)
	rs, ctx := db.Receiver(), testCtx(t)
	sub := subID(1)
	require.NoError(t, putActiveSub(ctx, rs, sub))

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				n := uint64(w*each + i + 1)
				// Every credit is sent twice: the second must be a no-op.
				for r := 0; r < 2; r++ {
					if err := credit(ctx, rs, sub, n, 1234); err != nil {
						errs <- err
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	s, err := summarize(ctx, rs, sub)
	require.NoError(t, err)
	checkConsistent(t, s)
	require.Len(t, s.payments, workers*each)
	require.EqualValues(t, workers*each*1234, s.sub.TotalPaid)
	require.EqualValues(t, workers*each*1234/1000, s.sub.TotalSeconds+
		uint64(s.sub.Remainder)/1000)
	require.EqualValues(t, workers*each, s.sub.LastSeq)

	st := db.Stats()
	require.EqualValues(t, workers*each+1, st.Commits)
	require.Less(t, st.Syncs, st.Commits, "group commit shares fsyncs")
	t.Logf("%d commits, %d fsyncs", st.Commits, st.Syncs)
}

// TestPanicInStepLeavesSyncerWaiting: a step whose callback panicked still
// counted as committing, so every later sync round gathered for the full
// MaxCommitDelay waiting for a commit that would never come.
func TestPanicInStepLeavesSyncerWaiting(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	func() {
		defer func() { require.NotNil(t, recover()) }()
		_ = db.Receiver().Update(ctx, func(ReceiverTx) error {
			panic("step failed")
		})
	}()
	require.Zero(t, db.committing.Load())

	// The store still takes and syncs steps.
	require.NoError(t, db.Receiver().Update(ctx, func(tx ReceiverTx) error {
		return tx.SetAddIndex(7)
	}))
	require.Zero(t, db.committing.Load())
}
