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

// TestRatioFromOneSlowWindow: one slow baseline window must not decide a
// level's ratio. The rounds are paired (B and its baseline ran back to
// back), and the level's ratio is the median of the pairs, not the ratio
// of whatever single windows ran.
func TestRatioFromOneSlowWindow(t *testing.T) {
	run := func(rates ...float64) LevelResult {
		var rs []LevelResult
		for _, r := range rates {
			rs = append(rs, LevelResult{InFlight: 16, Rate: r, Count: 1,
				Lat: Latencies{time.Millisecond}})
		}
		return mergeRounds(rs)
	}
	tests := []struct {
		name  string
		b, a2 LevelResult
		want  float64
		text  string
	}{
		{"one slow B window", run(30, 20, 31), run(31, 30, 32), 0.97,
			"0.97 (median of 0.97, 0.67, 0.97)"},
		{"machine slower in round two", run(30, 15, 30), run(30, 15, 31),
			1, "1.00 (median of 1.00, 1.00, 0.97)"},
		{"one round", run(28), run(32), 0.875, "0.88"},
		{"rounds differ: rates' ratio", run(30, 30), run(30), 1, "1.00"},
		{"zero baseline", run(30), run(0), 0, "0.00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ratio(tc.b, tc.a2)
			require.InDelta(t, tc.want, got, 0.005)
			require.Equal(t, tc.text, ratioText(got, tc.b, tc.a2))
		})
	}

	m := run(30, 20, 31)
	require.Equal(t, 30.0, m.Rate)
	require.Equal(t, []float64{30, 20, 31}, m.Rounds)
	require.Equal(t, 3, m.Count)
	require.Len(t, m.Lat, 3)
	require.Equal(t, 25.0, median([]float64{30, 20}))
}
