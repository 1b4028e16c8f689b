package bench

import (
	"math"
	"sort"
	"time"
)

// Latencies is a sample of durations with the percentiles the report
// prints.
type Latencies []time.Duration

// sorted returns a sorted copy.
func (l Latencies) sorted() Latencies {
	s := append(Latencies(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
}

// Pct returns the p-th percentile (0..100), nearest rank; zero for an
// empty sample.
func (l Latencies) Pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := l.sorted()
	rank := int(math.Ceil(p/100*float64(len(s)))) - 1
	rank = max(0, min(rank, len(s)-1))
	return s[rank]
}

// ms formats a duration in milliseconds with one decimal.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)*10) / 10
}
