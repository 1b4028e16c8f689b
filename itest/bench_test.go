//go:build itest

package itest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/satstream/satstream/itest/bench"
	"github.com/stretchr/testify/require"
)

// TestBenchQuick runs the benchmark command's short version end to end, so
// a change that breaks `go run ./itest/cmd/bench` (an API it drives, the
// sender's knobs, the store API it seeds through) fails the test command
// instead of being found at the next full run. It writes to a temp dir,
// never over the committed docs/benchmarks.md, and asserts no speed.
func TestBenchQuick(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	out := t.TempDir()
	res, err := bench.Run(ctx, bench.Options{Quick: true, OutDir: out,
		WorkDir: t.TempDir(), Log: &testWriter{t}})
	require.NoError(t, err)

	for _, rs := range [][]bench.LevelResult{res.A, res.A2, res.B} {
		require.Len(t, rs, 2)
		for _, l := range rs {
			require.Positive(t, l.Count, "level %d", l.InFlight)
		}
	}
	require.Len(t, res.Synthetic, 2)
	require.NotNil(t, res.RcvScale)
	require.NotNil(t, res.SndScale)
	require.NotEmpty(t, res.Targets())
	// The scale-out section's quick form: 1 and 2 provider nodes on one
	// PostgreSQL ledger, each run's money checked (settled == credited
	// == paid by the sender) or Run fails.
	require.NotNil(t, res.ScaleOut)
	require.Len(t, res.ScaleOut.Runs, 2)
	for _, r := range res.ScaleOut.Runs {
		require.Positive(t, r.Credited, "%v", r.Config)
		require.Positive(t, r.Payments, "%v", r.Config)
		require.Equal(t, r.PaidMsat, r.CreditedMsat, "%v", r.Config)
		require.Equal(t, r.SettledMsat, r.CreditedMsat, "%v", r.Config)
	}
	require.Len(t, res.ScaleOut.Runs[1].PerNode, 2)

	doc, err := os.ReadFile(filepath.Join(out, "benchmarks.md"))
	require.NoError(t, err)
	require.True(t, strings.Contains(string(doc), "QUICK run"))
	require.True(t, strings.Contains(string(doc),
		"## Scale-out: one, two, three provider nodes"))
	for _, f := range []string{"throughput.svg", "latency.svg"} {
		_, err := os.Stat(filepath.Join(out, "bench", f))
		require.NoError(t, err)
	}
}
