package store

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/require"
)

// dirtyMappedKB reads /proc/self/smaps and returns, for every file under dir
// with the given suffix that this process has mapped, how many kB of the
// mapping the kernel still counts as dirty: written, but not yet written
// back to the disk. Badger writes its logs through memory maps, and an fsync
// of the file writes those pages back and clears their dirty state, so a
// dirty page of a log that holds an acknowledged step is a step a power cut
// would lose.
func dirtyMappedKB(t *testing.T, dir, suffix string) map[string]int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("needs Linux /proc/self/smaps: %v", err)
	}
	defer f.Close()

	out := map[string]int{}
	cur := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		// A mapping header: "addr-addr perms offset dev inode [path]".
		if strings.Contains(fields[0], "-") && len(fields) >= 5 &&
			!strings.HasSuffix(fields[0], ":") {

			cur = ""
			if len(fields) >= 6 {
				p := fields[5]
				if strings.HasPrefix(p, dir+string(filepath.Separator)) &&
					strings.HasSuffix(p, suffix) {

					cur = filepath.Base(p)
					out[cur] += 0
				}
			}
			continue
		}
		if cur == "" || len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "Shared_Dirty:", "Private_Dirty:":
			kb, err := strconv.Atoi(fields[1])
			require.NoError(t, err)
			out[cur] += kb
		}
	}
	require.NoError(t, sc.Err())
	return out
}

// memFiles lists the write-ahead logs (one per memtable) in dir.
func memFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.mem"))
	require.NoError(t, err)
	return m
}

// fillAndRotate writes straight into badger until the active memtable is
// full and a new one (a new .mem file) takes its place.
func fillAndRotate(bdb *badger.DB, dir string) error {
	before, err := filepath.Glob(filepath.Join(dir, "*.mem"))
	if err != nil {
		return err
	}
	val := make([]byte, 100<<10)
	for i := 0; i < 64; i++ {
		err := bdb.Update(func(txn *badger.Txn) error {
			return txn.Set([]byte(fmt.Sprintf("\xfffill/%d", i)), val)
		})
		if err != nil {
			return err
		}
		now, err := filepath.Glob(filepath.Join(dir, "*.mem"))
		if err != nil {
			return err
		}
		if len(now) > len(before) {
			return nil
		}
	}
	return fmt.Errorf("memtable did not rotate")
}

// TestMemtableRotatedBeforeFsyncLosesAckedStep reproduces a hole in group
// commit: a step commits into the active memtable, then, before its round's
// fsync, other writes fill that memtable and badger rotates to a new one.
// badger's DB.Sync syncs only the new memtable's write-ahead log, so the
// step was acknowledged while its log pages were still only in the page
// cache. After the acknowledgement no write-ahead log may hold a dirty page.
func TestMemtableRotatedBeforeFsyncLosesAckedStep(t *testing.T) {
	t.Parallel()
	var (
		db      *DB
		rotate  atomic.Bool
		hookErr = make(chan error, 1)
	)
	db, dir := openTestDB(t, func(o *Options) {
		o.MemTableSize = 1 << 20
		o.GCInterval = 0
		o.FaultHook = func(p FaultPoint) error {
			if p == FaultSync && rotate.CompareAndSwap(true, false) {
				// The round has taken its steps and is about to
				// fsync: rotate the memtable now.
				hookErr <- fillAndRotate(db.bdb, db.dir)
			}
			return nil
		}
	})
	dir, err := filepath.Abs(dir)
	require.NoError(t, err)
	rs, ctx := db.Receiver(), testCtx(t)
	require.NoError(t, putActiveSub(ctx, rs, subID(1)))

	// An open iterator holds a reference on the memtables, so the rotated
	// one stays mapped (and its log on disk) even after badger flushed it
	// to a table; otherwise a fast flush could hide the unsynced log.
	rt := db.bdb.NewTransaction(false)
	defer rt.Discard()
	it := rt.NewIterator(badger.DefaultIteratorOptions)
	defer it.Close()

	for name, kb := range dirtyMappedKB(t, dir, ".mem") {
		require.Zero(t, kb, "%s dirty after an acknowledged step: this "+
			"kernel does not report written-back pages as clean", name)
	}
	logsBefore := len(memFiles(t, dir))

	rotate.Store(true)
	require.NoError(t, credit(ctx, rs, subID(1), 1, 1500))
	require.NoError(t, <-hookErr)
	require.Greater(t, len(memFiles(t, dir)), logsBefore, "memtable rotated")

	dirty := dirtyMappedKB(t, dir, ".mem")
	require.GreaterOrEqual(t, len(dirty), 2, "old and new log mapped: %v", dirty)
	for name, kb := range dirty {
		require.Zero(t, kb, "write-ahead log %s still has %d kB not written "+
			"back after the step it holds was acknowledged", name, kb)
	}

	s, err := summarize(ctx, rs, subID(1))
	require.NoError(t, err)
	require.Len(t, s.payments, 1)
}
