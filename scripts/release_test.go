// Package scripts holds the release script's test; the scripts themselves
// are shell.
package scripts

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReleaseQuickBuildsAndSums runs scripts/release.sh --quick twice: it
// must build the host's archive with all three binaries, list it in
// SHA256SUMS with its real checksum, and give the same bytes the second
// time (no clock, path or build id in the archive).
func TestReleaseQuickBuildsAndSums(t *testing.T) {
	// It rebuilds lnd's whole dependency tree without cgo and with
	// -trimpath (a cache of its own): minutes, so not in every run.
	if os.Getenv("SATSTREAM_RELEASE_TEST") == "" {
		t.Skip("set SATSTREAM_RELEASE_TEST=1 to build a release")
	}
	sums := make([]string, 2)
	for i := range sums {
		out := t.TempDir()
		cmd := exec.Command("bash", "release.sh", "--quick", "--out", out)
		b, err := cmd.CombinedOutput()
		require.NoError(t, err, string(b))

		listing, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(string(listing)), "\n")
		require.Len(t, lines, 1, string(listing))
		sum, name, ok := strings.Cut(lines[0], "  ")
		require.True(t, ok, lines[0])
		data, err := os.ReadFile(filepath.Join(out, name))
		require.NoError(t, err)
		h := sha256.Sum256(data)
		require.Equal(t, hex.EncodeToString(h[:]), sum)

		list, err := exec.Command("tar", "-tzf",
			filepath.Join(out, name)).Output()
		require.NoError(t, err)
		for _, bin := range []string{"satstream", "satstream-receiver",
			"satstream-sender", "LICENSE"} {
			require.Contains(t, string(list), "/"+bin+"\n")
		}
		sums[i] = sum
	}
	require.Equal(t, sums[0], sums[1], "the archive is not reproducible")
}
