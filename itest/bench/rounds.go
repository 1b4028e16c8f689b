package bench

import (
	"fmt"
	"slices"
	"strings"
)

// mergeRounds folds one level's rounds into the level's figures: the
// median of the rounds' rates (kept in Rounds, in run order), counts
// summed, latencies pooled. One window of 20 s on a shared 2-core machine
// swings by 15% from one minute to the next, so a level's figure is the
// middle of several.
func mergeRounds(rs []LevelResult) LevelResult {
	if len(rs) == 0 {
		return LevelResult{}
	}
	out := LevelResult{InFlight: rs[0].InFlight}
	for _, r := range rs {
		out.Rounds = append(out.Rounds, r.Rate)
		out.Count += r.Count
		out.Failed += r.Failed
		out.Lat = append(out.Lat, r.Lat...)
		out.SenderLat = append(out.SenderLat, r.SenderLat...)
		out.VisLag = append(out.VisLag, r.VisLag...)
		if r.FeeMsat != 0 {
			out.FeeMsat = r.FeeMsat
		}
	}
	out.Rate = median(out.Rounds)
	return out
}

// median of xs (the mean of the middle two for an even count); zero for
// none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// roundRatios are b's rate over x's in each round both ran (each round
// runs x and b at one level minutes or seconds apart, so the machine's
// slow drift cancels in the pair); nil if their rounds differ, or x has
// a zero rate.
func roundRatios(b, x LevelResult) []float64 {
	if len(b.Rounds) == 0 || len(b.Rounds) != len(x.Rounds) {
		return nil
	}
	out := make([]float64, len(b.Rounds))
	for i := range b.Rounds {
		if x.Rounds[i] == 0 {
			return nil
		}
		out[i] = b.Rounds[i] / x.Rounds[i]
	}
	return out
}

// ratio is b's rate over x's at one level: the median of the rounds'
// ratios, or the ratio of the two rates for results without rounds.
func ratio(b, x LevelResult) float64 {
	if rs := roundRatios(b, x); rs != nil {
		return median(rs)
	}
	if x.Rate == 0 {
		return 0
	}
	return b.Rate / x.Rate
}

// roundsText lists the rounds' ratios, e.g. "0.91, 0.97, 0.95"; empty
// with fewer than two rounds.
func roundsText(b, x LevelResult) string {
	rs := roundRatios(b, x)
	if len(rs) < 2 {
		return ""
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%.2f", r)
	}
	return strings.Join(parts, ", ")
}

// ratioText is a ratio as the targets print it, with its rounds when there
// are several: "0.95 (median of 0.91, 0.97, 0.95)".
func ratioText(r float64, b, x LevelResult) string {
	if rs := roundsText(b, x); rs != "" {
		return fmt.Sprintf("%.2f (median of %s)", r, rs)
	}
	return fmt.Sprintf("%.2f", r)
}
