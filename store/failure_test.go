package store

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// errDiskOnFire is the injected disk error.
var errDiskOnFire = errors.New("disk on fire")

// TestDiskFailureLeavesStepVisible reproduces what a failed fsync or badger
// write used to leave behind: the step's Update returned an error, yet the
// step stayed in badger's memtable, so the next read served a credit that
// may not be on disk, and later writes went on as if nothing happened. Now
// the store fails for good: the failing Update and every later operation
// return ErrFailed (wrapping the cause), Failed is closed, and a reopened
// store holds a consistent ledger.
func TestDiskFailureLeavesStepVisible(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		point FaultPoint
		cause error
	}{
		{"fsync fails", FaultSync, ErrSyncFailed},
		{"badger write fails", FaultCommit, errDiskOnFire},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var (
				armed atomic.Bool
				hits  atomic.Int32
			)
			db, dir := openTestDB(t, func(o *Options) {
				o.FaultHook = func(p FaultPoint) error {
					if p == tc.point && armed.Load() {
						hits.Add(1)
						return errDiskOnFire
					}
					return nil
				}
			})
			rs, ctx := db.Receiver(), testCtx(t)
			require.NoError(t, putActiveSub(ctx, rs, subID(1)))
			require.NoError(t, db.Err())

			armed.Store(true)
			err := credit(ctx, rs, subID(1), 1, 1500)
			require.ErrorIs(t, err, ErrFailed)
			require.ErrorIs(t, err, tc.cause)
			require.ErrorContains(t, err, "disk on fire")
			t.Log(err)

			select {
			case <-db.Failed():
			case <-time.After(testTimeout):
				t.Fatal("Failed not closed")
			}
			require.ErrorIs(t, db.Err(), ErrFailed)
			require.ErrorIs(t, db.Err(), tc.cause)

			// Nothing is served or written any more; the hook is
			// not reached again (fail fast, no retries).
			for name, err := range map[string]error{
				"view": rs.View(ctx, func(ReceiverTx) error { return nil }),
				"update": rs.Update(ctx, func(tx ReceiverTx) error {
					return tx.SetSettleIndex(99)
				}),
				"sender": db.Sender().View(ctx, func(SenderTx) error { return nil }),
				"backup": db.Backup(ctx, io.Discard),
			} {
				require.ErrorIs(t, err, ErrFailed, name)
			}
			require.EqualValues(t, 1, hits.Load())
			require.NoError(t, db.Close())

			// The restart reads what is on disk: whether or not the
			// failed step made it, the ledger is consistent.
			db2, err := Open(ctx, dir, DefaultOptions())
			require.NoError(t, err)
			defer db2.Close()
			s, err := summarize(ctx, db2.Receiver(), subID(1))
			require.NoError(t, err)
			checkConsistent(t, s)
		})
	}
}

// TestFsyncFailureFailsEveryWaiterOfTheRound checks that all steps sharing a
// failed fsync get the error, none of them a false acknowledgement.
func TestFsyncFailureFailsEveryWaiterOfTheRound(t *testing.T) {
	t.Parallel()
	const workers = 16
	var armed atomic.Bool
	db, _ := openTestDB(t, func(o *Options) {
		o.FaultHook = func(p FaultPoint) error {
			if p == FaultSync && armed.Load() {
				return errDiskOnFire
			}
			return nil
		}
	})
	rs, ctx := db.Receiver(), testCtx(t)
	for i := 0; i < workers; i++ {
		require.NoError(t, putActiveSub(ctx, rs, subID(uint64(i))))
	}
	armed.Store(true)

	var wg sync.WaitGroup
	errs := make([]error, workers)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = credit(ctx, rs, subID(uint64(i)), uint64(i+1), 1500)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		require.ErrorIs(t, err, ErrFailed, "worker %d", i)
	}
}

// TestCancelledUpdateIsNotAFailure checks that the caller's own errors and
// a cancelled context leave the store working.
func TestCancelledUpdateIsNotAFailure(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	rs, ctx := db.Receiver(), testCtx(t)
	mine := errors.New("mine")
	require.ErrorIs(t, rs.Update(ctx, func(ReceiverTx) error { return mine }), mine)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, rs.Update(cctx, func(ReceiverTx) error { return nil }),
		context.Canceled)
	require.NoError(t, db.Err())
	require.NoError(t, putActiveSub(ctx, rs, subID(1)))
}
