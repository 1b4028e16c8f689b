package soak

import (
	"math/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestFlatnessJudge checks the soak's flatness rule on made-up series:
// noise and a small climb are flat (the medium soak's receiver, 75.6 ->
// 76.6 MiB rising a little at every sample, was once called a leak), and
// so are the sender's payment bursts (goroutines 38 between bursts, 633
// during one: a mean over the thirds once called them a leak); a steady
// climb of a fifth, or goroutines piling up, are not.
func TestFlatnessJudge(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewSource(1))
	series := func(n int, rss func(i int) float64,
		gor func(i int) float64) []sample {

		out := make([]sample, n)
		for i := range out {
			out[i] = sample{at: time.Duration(i) * 10 * time.Second,
				rssKiB: uint64(rss(i)), goroutines: uint64(gor(i))}
		}
		return out
	}
	noise := func(base, amp float64) func(int) float64 {
		return func(int) float64 { return base + amp*rng.Float64() }
	}
	tests := []struct {
		name string
		s    []sample
		flat bool
	}{
		{"noisy but level", series(60, noise(80_000, 6_000),
			noise(200, 150)), true},
		{"small climb at every sample", series(60, func(i int) float64 {
			return 75_000 + 20*float64(i)
		}, noise(45, 5)), true},
		{"synchronised payment bursts, more of them sampled late",
			series(66, noise(88_000, 3_000), func(i int) float64 {
				if i%15 == 2 || (i > 44 && i%7 == 0) {
					return 633
				}
				return 38
			}), true},
		{"RSS leaking a fifth", series(60, func(i int) float64 {
			return 80_000 + 800*float64(i)
		}, noise(45, 5)), false},
		{"goroutines piling up", series(60, noise(80_000, 2_000),
			func(i int) float64 { return 40 + 3*float64(i) }), false},
		{"too few samples", series(3, noise(1, 1), noise(1, 1)), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sr := summarise("d", tc.s)
			require.Equal(t, tc.flat, sr.Flat == "", "verdict: %q",
				sr.Flat)
		})
	}
}
