package store

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// mountTmpfs mounts a tmpfs of size bytes on a fresh directory and unmounts
// it at cleanup; it skips the test, saying why, where mounting is not
// allowed (not root, no CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (%v): a full disk needs "+
			"root or CAP_SYS_ADMIN", err)
	}
	t.Cleanup(func() {
		// Lazily: a store left open on a full disk (see Close) still
		// maps its files until the process exits.
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes a filler file into dir until the filesystem refuses
// with ENOSPC, and returns its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		_, err := f.Write(buf)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		require.NoError(t, err)
	}
	// The last pages may be half used: fill them too.
	for {
		_, err := f.Write(buf[:512])
		if errors.Is(err, syscall.ENOSPC) {
			return path
		}
		require.NoError(t, err)
	}
}

// TestFullDiskRefusesStepsInsteadOfSIGBUS: what a full disk did to a
// daemon: badger appends to its write-ahead log through a memory map of a
// sparse file, so the first write to a page the filesystem cannot back
// is a SIGBUS, which Go turns into "fatal error: fault" and the process
// dies (badger never sees an ENOSPC it could return). Now the store keeps
// a reserve: below it every write step is refused with ErrDiskFull (which
// wraps ENOSPC and names the directory), nothing of the step is visible,
// the store does not fail, and writes resume when space returns; Open and
// Close on a full disk refuse instead of writing.
func TestFullDiskRefusesStepsInsteadOfSIGBUS(t *testing.T) {
	mnt := mountTmpfs(t, "48m")
	dir := filepath.Join(mnt, "ledger")
	opts := DefaultOptions()
	opts.MinFreeBytes = 8 << 20
	ctx := testCtx(t)
	db, err := Open(ctx, dir, opts)
	require.NoError(t, err)
	rs := db.Receiver()
	require.NoError(t, putActiveSub(ctx, rs, subID(1)))
	require.NoError(t, credit(ctx, rs, subID(1), 1, 1500))

	filler := fillDisk(t, mnt)
	// Enough steps to cross many pages of the write-ahead log: without
	// the reserve one of them faults.
	for n := uint64(2); n < 2000; n++ {
		err := credit(ctx, rs, subID(1), n, 1500)
		require.ErrorIs(t, err, ErrDiskFull, "step %d", n)
		require.ErrorIs(t, err, syscall.ENOSPC)
		require.ErrorContains(t, err, dir)
	}
	require.NoError(t, db.Err(), "a refused step must not fail the store")
	require.ErrorIs(t, db.SpaceErr(), ErrDiskFull)
	s, err := summarize(ctx, rs, subID(1))
	require.NoError(t, err)
	require.Len(t, s.payments, 1, "a refused step left something behind")
	checkConsistent(t, s)

	// Space returns: the same store takes writes again.
	require.NoError(t, os.Remove(filler))
	require.NoError(t, db.SpaceErr())
	for n := uint64(2); n <= 50; n++ {
		require.NoError(t, credit(ctx, rs, subID(1), n, 1500))
	}

	// Full again: a second ledger is not opened on it (badger would
	// write its tables at open), and Close does not write badger's
	// memtable out (a fault too): everything acknowledged is in the
	// synced write-ahead log, replayed by the next process.
	filler = fillDisk(t, mnt)
	_, err = Open(ctx, filepath.Join(mnt, "other"), opts)
	require.ErrorIs(t, err, ErrDiskFull)
	require.ErrorIs(t, err, syscall.ENOSPC)
	err = db.Close()
	require.ErrorIs(t, err, ErrDiskFull)
	require.NoError(t, os.Remove(filler))
}

// TestStepRefusedForSpaceFailsStoreForGood checks the reserve without a
// real filesystem (any user): a step refused for want of space is not a
// store failure (Failed stays open, the daemon keeps running) and the
// next step after space returns goes through; Open refuses below the
// reserve.
func TestStepRefusedForSpaceFailsStoreForGood(t *testing.T) {
	t.Parallel()
	var free atomic.Uint64
	free.Store(1 << 30)
	statfs := func(string) (uint64, error) { return free.Load(), nil }
	db, dir := openTestDB(t, func(o *Options) {
		o.MinFreeBytes = 1 << 20
		o.statfs = statfs
	})
	rs, ctx := db.Receiver(), testCtx(t)
	require.NoError(t, putActiveSub(ctx, rs, subID(1)))

	free.Store(1<<20 - 1)
	err := credit(ctx, rs, subID(1), 1, 1500)
	require.ErrorIs(t, err, ErrDiskFull)
	require.ErrorIs(t, err, syscall.ENOSPC)
	require.NotErrorIs(t, err, ErrFailed)
	require.NoError(t, db.Err())
	select {
	case <-db.Failed():
		t.Fatal("a refused step failed the store")
	default:
	}
	// Reads go on.
	s, err := summarize(ctx, rs, subID(1))
	require.NoError(t, err)
	require.Empty(t, s.payments)

	opts := DefaultOptions()
	opts.MinFreeBytes = 1 << 20
	opts.statfs = statfs
	_, err = Open(ctx, filepath.Join(filepath.Dir(dir), "second"), opts)
	require.ErrorIs(t, err, ErrDiskFull)

	free.Store(1 << 20)
	require.NoError(t, db.SpaceErr())
	require.NoError(t, credit(ctx, rs, subID(1), 1, 1500))
	s, err = summarize(ctx, rs, subID(1))
	require.NoError(t, err)
	require.Len(t, s.payments, 1)
	checkConsistent(t, s)
}
