package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSyntheticCreditsEveryPayment runs the receiver-without-lnd benchmark
// briefly: every payment it feeds must come out credited (a refusal would
// mean the feed is wrong and the figure meaningless).
func TestSyntheticCreditsEveryPayment(t *testing.T) {
	for _, subs := range []int{1, 100} {
		res, err := synthetic(context.Background(), t.TempDir(), subs, 16,
			300*time.Millisecond, "")
		require.NoError(t, err)
		require.Positive(t, res.Credited)
		require.Zero(t, res.Refused)
		require.Len(t, res.Lat, res.Credited)
	}
}

// TestReportKeepsOperatorsGuide checks the report renders and that the
// capacity section replaces itself in operators.md instead of piling up.
func TestReportKeepsOperatorsGuide(t *testing.T) {
	dir := t.TempDir()
	ops := filepath.Join(dir, "operators.md")
	require.NoError(t, os.WriteFile(ops, []byte("# Operators\n\ntext\n"), 0o644))
	lvl := func(n int, rate float64) LevelResult {
		return LevelResult{InFlight: n, Rate: rate, Count: 10,
			Lat:       Latencies{time.Millisecond, 2 * time.Millisecond},
			SenderLat: Latencies{3 * time.Millisecond},
			VisLag:    Latencies{time.Millisecond}}
	}
	r := &Result{Opts: Options{OutDir: dir, OperatorsDoc: ops,
		Levels: []int{1, 8}}, FeeBase: 1000, FeePPM: 1,
		A:         []LevelResult{lvl(1, 10), lvl(8, 40)},
		A2:        []LevelResult{lvl(1, 9), lvl(8, 35)},
		B:         []LevelResult{lvl(1, 8), lvl(8, 34)},
		Synthetic: []SyntheticResult{{Subs: 1, Rate: 900, Lat: Latencies{time.Millisecond}}},
		RcvScale:  &ReceiverScale{Subs: 10, PaidLat: Latencies{time.Millisecond}},
		SndScale:  &SenderScale{Subs: 10, Window: time.Second}}
	r.Opts.fill()
	for range 2 {
		require.NoError(t, writeReport(r))
	}
	doc, err := os.ReadFile(ops)
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(string(doc), "## Capacity planning"))
	require.True(t, strings.HasPrefix(string(doc), "# Operators\n\ntext\n"))

	md, err := os.ReadFile(filepath.Join(dir, "benchmarks.md"))
	require.NoError(t, err)
	require.Contains(t, string(md), "| 8 | 40.0 |")
	require.Contains(t, string(md), "B/A' at 8 in flight")
	for _, f := range []string{"throughput.svg", "latency.svg"} {
		svg, err := os.ReadFile(filepath.Join(dir, "bench", f))
		require.NoError(t, err)
		require.Contains(t, string(svg), "<polyline")
	}
}
