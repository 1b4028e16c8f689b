package common

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// rolls lists the rotated files of name in dir (not the live file).
func rolls(t *testing.T, dir, name string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), name+".") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// writeRolls writes lines from several goroutines at once (the daemons'
// subsystems share one writer) until about n rotations happened.
func writeRolls(t *testing.T, w io.Writer, n int) {
	t.Helper()
	line := []byte(strings.Repeat("x", 99) + "\n")
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n*testRollBytes/len(line)/4+1; i++ {
				_, err := w.Write(line)
				require.NoError(t, err)
			}
		}()
	}
	wg.Wait()
}

// testRollBytes is the rotation size the tests use (the option's unit is
// a megabyte).
const testRollBytes = 20_000

// TestRotatedLogsKeptBeyondMaxLogFilesAndUncompressed: a roll left
// uncompressed by a crash in the middle of compressing it, or rolls
// written under the other compression setting, were never removed (the
// rotator only deletes names of its current setting, and stops at the
// first one missing), so --maxlogfiles no longer bounded the directory.
// Rolls are now gzip-compressed by default, plain with
// --logcompressor=none, and at most --maxlogfiles are kept whatever a
// previous run left behind.
func TestRotatedLogsKeptBeyondMaxLogFilesAndUncompressed(t *testing.T) {
	t.Parallel()
	const name = "satstream-test.log"
	dir := t.TempDir()

	// A previous run's leftovers: an old plain roll (written with
	// compression off), a roll a crash left uncompressed beside its
	// partial .gz, and compressed ones.
	for _, f := range []string{name + ".1", name + ".2.gz", name + ".3.gz",
		name + ".4", name + ".4.gz"} {
		var body bytes.Buffer
		if strings.HasSuffix(f, ".gz") && f != name+".4.gz" {
			zw := gzip.NewWriter(&body)
			fmt.Fprintf(zw, "old %s\n", f)
			require.NoError(t, zw.Close())
		} else {
			fmt.Fprintf(&body, "old %s\n", f)
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, f),
			body.Bytes(), 0o600))
	}

	cfg := DefaultLogConfig()
	cfg.LogDir = dir
	cfg.MaxLogFiles = 3
	require.NoError(t, cfg.Resolve(dir))
	require.Equal(t, "gzip", cfg.Compressor)
	cfg.rollBytes = testRollBytes
	w, closeLog, err := cfg.Open(io.Discard, name)
	require.NoError(t, err)
	writeRolls(t, w, 6)
	require.NoError(t, closeLog())

	got := rolls(t, dir, name)
	require.Len(t, got, 3, "kept rolls: %v", got)
	for _, f := range got {
		require.True(t, strings.HasSuffix(f, ".gz"), f)
		zf, err := os.Open(filepath.Join(dir, f))
		require.NoError(t, err)
		zr, err := gzip.NewReader(zf)
		require.NoError(t, err, f)
		b, err := io.ReadAll(zr)
		require.NoError(t, err, f)
		require.NotEmpty(t, b, f)
		zf.Close()
	}

	// Compression off: new rolls are plain, and the compressed ones
	// still count against --maxlogfiles.
	cfg.Compressor = "none"
	w, closeLog, err = cfg.Open(io.Discard, name)
	require.NoError(t, err)
	writeRolls(t, w, 2)
	require.NoError(t, closeLog())
	got = rolls(t, dir, name)
	require.Len(t, got, 3, "kept rolls: %v", got)
	newest, err := listRolls(filepath.Join(dir, name))
	require.NoError(t, err)
	last := newest[len(newest)-1]
	require.True(t, last.plain && !last.gz, "%v", got)

	bad := DefaultLogConfig()
	bad.Compressor = "zip"
	require.ErrorContains(t, bad.Resolve(dir), "--logcompressor")
}
