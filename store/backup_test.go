package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBackupRestoreOnline backs up while credits are being written and
// checks that the restored store is a consistent snapshot holding at least
// every credit acknowledged before the backup started.
func TestBackupRestoreOnline(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	rs, ctx := db.Receiver(), testCtx(t)
	sub := subID(1)
	require.NoError(t, putActiveSub(ctx, rs, sub))
	for n := uint64(1); n <= 50; n++ {
		require.NoError(t, credit(ctx, rs, sub, n, 1000))
	}
	require.NoError(t, db.Sender().Update(ctx, func(tx SenderTx) error {
		return tx.PutAttempt(&Attempt{SubID: sub, Seq: 1, Hash: hashOf(1),
			State: AttemptInFlight})
	}))

	// Writers keep going during the backup.
	var (
		wg   sync.WaitGroup
		stop atomic.Bool
		next atomic.Uint64
	)
	next.Store(1000)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if err := credit(ctx, rs, sub, next.Add(1), 1000); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var buf bytes.Buffer
	err := db.Backup(ctx, &buf)
	stop.Store(true)
	wg.Wait()
	require.NoError(t, err)

	dir := filepath.Join(t.TempDir(), "restored")
	require.NoError(t, Restore(ctx, dir, bytes.NewReader(buf.Bytes())))
	restored, err := Open(ctx, dir, DefaultOptions())
	require.NoError(t, err)
	defer restored.Close()

	s, err := summarize(ctx, restored.Receiver(), sub)
	require.NoError(t, err)
	checkConsistent(t, s)
	for n := uint64(1); n <= 50; n++ {
		require.Contains(t, s.payments, n)
	}
	require.NoError(t, restored.Sender().View(ctx, func(tx SenderTx) error {
		a, err := tx.AttemptByHash(hashOf(1))
		require.NoError(t, err)
		require.Equal(t, AttemptInFlight, a.State)
		return nil
	}))
	_, err = os.Stat(dir + restoreSuffix)
	require.True(t, os.IsNotExist(err), "no restore leftovers")
}

// TestRestoreErrors checks that a restore never produces a partial or
// merged store.
func TestRestoreErrors(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	ctx := testCtx(t)
	require.NoError(t, putActiveSub(ctx, db.Receiver(), subID(1)))
	var buf bytes.Buffer
	require.NoError(t, db.Backup(ctx, &buf))
	good := buf.Bytes()

	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0xff
	newer := bytes.Clone(good)
	copy(newer[len(backupMagic)+1:], be32(SchemaVersion+1))

	tests := []struct {
		name   string
		data   []byte
		target func(t *testing.T) string
		want   error
	}{
		{"truncated", good[:len(good)-40], nil, ErrCorrupt},
		{"cut at frame end", good[:len(good)-36], nil, ErrCorrupt},
		{"altered", flipped, nil, ErrCorrupt},
		{"not a backup", []byte("hello, this is not a satstream backup"), nil, ErrCorrupt},
		{"empty", nil, nil, ErrCorrupt},
		{"newer schema", newer, nil, ErrSchemaTooNew},
		{"target not empty", good, func(t *testing.T) string {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "x"), nil, 0o600))
			return dir
		}, ErrExists},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "restored")
			if tc.target != nil {
				dir = tc.target(t)
			}
			err := Restore(ctx, dir, bytes.NewReader(tc.data))
			require.ErrorIs(t, err, tc.want)
			t.Log(err)
			if tc.target == nil {
				_, err := os.Stat(dir)
				require.True(t, os.IsNotExist(err), "failed restore left %s", dir)
			}
			_, err = os.Stat(dir + restoreSuffix)
			require.True(t, os.IsNotExist(err), "failed restore left its temp dir")
		})
	}

	t.Run("cancelled", func(t *testing.T) {
		c, cancel := context.WithCancel(ctx)
		cancel()
		require.ErrorIs(t, db.Backup(c, &bytes.Buffer{}), context.Canceled)
	})
}

// TestRestoreOnFullDiskWritesIntoIt: a restore loads the whole ledger
// through badger, which writes through memory maps: on a disk that fills
// up it must stop at the reserve with ErrDiskFull (not SIGBUS), leaving
// no half-restored directory behind. Not parallel: it replaces the
// restore options.
func TestRestoreOnFullDiskWritesIntoIt(t *testing.T) {
	db, _ := openTestDB(t)
	rs, ctx := db.Receiver(), testCtx(t)
	require.NoError(t, putActiveSub(ctx, rs, subID(1)))
	for n := uint64(1); n <= 50; n++ {
		require.NoError(t, credit(ctx, rs, subID(1), n, 1000))
	}
	var buf bytes.Buffer
	require.NoError(t, db.Backup(ctx, &buf))

	for _, tc := range []struct {
		name    string
		roomFor int // statfs answers with room before the disk is full
	}{
		{"full before", 0},
		{"fills during", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			restoreOptions = func() Options {
				o := DefaultOptions()
				o.statfs = func(string) (uint64, error) {
					calls++
					if calls <= tc.roomFor {
						return 1 << 40, nil
					}
					return 0, nil
				}
				return o
			}
			t.Cleanup(func() { restoreOptions = DefaultOptions })
			parent := t.TempDir()
			dir := filepath.Join(parent, "restored")
			err := Restore(ctx, dir, bytes.NewReader(buf.Bytes()))
			require.ErrorIs(t, err, ErrDiskFull)
			entries, err := os.ReadDir(parent)
			require.NoError(t, err)
			require.Empty(t, entries)
		})
	}
}
