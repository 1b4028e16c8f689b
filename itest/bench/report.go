package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Target is one goal of issue 13 and how the run did against it.
type Target struct {
	Name   string
	Want   string
	Got    string
	Met    bool
	Missed string // by how much, when not met
}

const mib = 1 << 20

// Targets checks the run against the goals.
func (r *Result) Targets() []Target {
	var ts []Target
	add := func(name, want, got string, met bool, missed string) {
		ts = append(ts, Target{name, want, got, met, missed})
	}
	for i := range r.B {
		if i >= len(r.A) || i >= len(r.A2) {
			break
		}
		l := r.B[i].InFlight
		ba := ratio(r.B[i], r.A[i])
		add(fmt.Sprintf("B/A at %d in flight", l), ">= 0.90",
			ratioText(ba, r.B[i], r.A[i]), ba >= 0.90,
			fmt.Sprintf("%.0f%% below", (0.90-ba)/0.90*100))
		ba2 := ratio(r.B[i], r.A2[i])
		add(fmt.Sprintf("B/A' at %d in flight", l), ">= 0.95",
			ratioText(ba2, r.B[i], r.A2[i]), ba2 >= 0.95,
			fmt.Sprintf("%.0f%% below", (0.95-ba2)/0.95*100))
	}
	bestA := 0.0
	for _, a := range r.A {
		bestA = max(bestA, a.Rate)
	}
	for _, s := range r.Synthetic {
		want := 20 * bestA
		add(fmt.Sprintf("synthetic credits/s, %d subs", s.Subs),
			fmt.Sprintf(">= 20x best A = %.0f/s", want),
			fmt.Sprintf("%.0f/s (%.0fx)", s.Rate, s.Rate/bestA),
			s.Rate >= want, fmt.Sprintf("%.0f%% below", (want-s.Rate)/want*100))
		p := s.OpenLat.Pct(99)
		add(fmt.Sprintf("synthetic p99 at %.0f/s offered, %d subs",
			s.Offered, s.Subs), "<= 20 ms",
			fmtMs(p), p <= 20*time.Millisecond,
			fmt.Sprintf("%v over", (p-20*time.Millisecond).Round(100*time.Microsecond)))
	}
	var lag Latencies
	for _, b := range r.B {
		lag = append(lag, b.VisLag...)
	}
	if len(lag) > 0 {
		p := lag.Pct(99)
		add("credit recorded -> visible p99 (all B levels)", "<= 20 ms",
			fmtMs(p), p <= 20*time.Millisecond,
			fmt.Sprintf("%v over", (p-20*time.Millisecond).Round(100*time.Microsecond)))
	}
	if s := r.RcvScale; s != nil {
		rss := max(s.RSSReady, s.RSSAfterLoad)
		add(fmt.Sprintf("receiver RSS, %d subs", s.Subs), "<= 256 MiB",
			fmtMiB(rss), rss <= 256*mib,
			fmt.Sprintf("%s over", fmtMiB(rss-256*mib)))
		add(fmt.Sprintf("receiver restart to ready, %d subs", s.Subs),
			"<= 3 s", s.Restart.Round(time.Millisecond).String(),
			s.Restart <= 3*time.Second,
			fmt.Sprintf("%v over", (s.Restart-3*time.Second).Round(time.Millisecond)))
		p := s.PaidLat.Pct(99)
		add(fmt.Sprintf("paid check p99, %d clients x %.0f/s",
			s.Clients, paidPerClient),
			"<= 5 ms", fmtMs(p), p <= 5*time.Millisecond,
			fmt.Sprintf("%v over", (p-5*time.Millisecond).Round(100*time.Microsecond)))
	}
	if s := r.SndScale; s != nil {
		share := s.CPU.Seconds() / s.Window.Seconds() * 100
		add(fmt.Sprintf("sender CPU, %d idle subs", s.Subs),
			"< 1% of a core", fmt.Sprintf("%.2f%%", share), share < 1,
			fmt.Sprintf("%.2f points over", share-1))
		add(fmt.Sprintf("sender RSS, %d idle subs", s.Subs),
			"<= 128 MiB", fmtMiB(s.RSS), s.RSS <= 128*mib,
			fmt.Sprintf("%s over", fmtMiB(s.RSS-128*mib)))
	}
	return ts
}

func fmtMs(d time.Duration) string { return fmt.Sprintf("%.1f ms", ms(d)) }

func fmtMiB(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/mib) }

// PrintTargets writes each target with met or missed by how much.
func (r *Result) PrintTargets(w *strings.Builder) {
	for _, t := range r.Targets() {
		status := "met"
		if !t.Met {
			status = "MISSED by " + t.Missed
		}
		fmt.Fprintf(w, "%-46s want %-24s got %-16s %s\n", t.Name,
			t.Want, t.Got, status)
	}
}

// summariseProfiles renders the top functions of every profile in dir.
func summariseProfiles(ctx context.Context, dir string) map[string]string {
	out := map[string]string{}
	for _, name := range []string{"b", "synthetic"} {
		cpu := filepath.Join(dir, name+".cpu.pprof")
		alloc := filepath.Join(dir, name+".alloc.pprof")
		base := filepath.Join(dir, name+".alloc-base.pprof")
		if _, err := os.Stat(cpu); err != nil {
			continue
		}
		out[name+".cpu"] = pprofTop(ctx, "-top", "-nodecount=15", cpu)
		out[name+".cpu.cum"] = pprofTop(ctx, "-top", "-cum",
			"-nodecount=25", "-focus="+daemonCode,
			"-ignore=itest/bench", cpu)
		out[name+".alloc"] = pprofTop(ctx, "-top", "-nodecount=12",
			"-sample_index=alloc_space", "-base="+base, alloc)
	}
	return out
}

// daemonCode matches the daemons' own packages in a profile.
const daemonCode = "satstream/satstream/(sender|receiver|store|tlv|common)"

func pprofTop(ctx context.Context, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	b, err := exec.CommandContext(ctx, "go", append([]string{"tool",
		"pprof"}, args...)...).Output()
	if err != nil {
		return "pprof: " + err.Error()
	}
	// Keep the table, not the file header.
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "flat") {
			return strings.Join(lines[max(0, i-1):], "\n")
		}
	}
	return strings.Join(lines, "\n")
}

// presets are the capacity table's use cases: one payment per period at
// the demo business's price.
var presets = []struct {
	name     string
	period   time.Duration
	business string
	price    uint64 // msat per second, the demo's
}{
	{"bike", time.Minute, "Pedal Bike Rental", 40_000},
	{"mobile", time.Hour, "Echelon Mobile", 20_000},
	{"insurance", 24 * time.Hour, "Perpetual Insurance", 5_000},
}

// capacityTable is the operators' table from the best B rate.
func (r *Result) capacityTable() string {
	best := 0.0
	for _, b := range r.B {
		best = max(best, b.Rate)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Measured B rate (best in-flight level): **%.1f "+
		"credited payments/s** on the benchmark machine (two shared "+
		"cores; see benchmarks.md). Subscriptions one "+
		"provider node carries, at that rate and at half of it (head "+
		"room for bursts, lnd's own work and restarts), and what a "+
		"payer pays in routing fees per month over one hop at the "+
		"demo's fee settings (lnd defaults on bob: %d msat base + %d "+
		"ppm; the payer's limit is %d ppm):\n\n", best, r.FeeBase,
		r.FeePPM, FeeLimitPPM)
	b.WriteString("| preset | one payment per | at the measured rate | at half | payment (demo price) | payments/month | routing fees/month | fees/amount |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|\n")
	const month = 30 * 24 * time.Hour
	for _, p := range presets {
		n := best * p.period.Seconds()
		amt := p.price * uint64(p.period/time.Second)
		perMonth := float64(month / p.period)
		fee := float64(r.FeeBase) + float64(amt)*float64(r.FeePPM)/1e6
		fmt.Fprintf(&b, "| %s | %v | %s | %s | %s sat (%s) | %s | %s sat | %.2g%% |\n",
			p.name, shortDur(p.period), grouped(n), grouped(n/2),
			grouped(float64(amt)/1000), p.business, grouped(perMonth),
			grouped(perMonth*fee/1000), fee/float64(amt)*100)
	}
	b.WriteString("\nOne node's credited payments per second bound the " +
		"subscriptions it carries: subscriptions = rate x seconds " +
		"between one subscription's payments. Fees are per payment, so a " +
		"preset with rare, larger payments pays almost nothing.\n")
	return b.String()
}

func shortDur(d time.Duration) string {
	switch d {
	case time.Minute:
		return "minute"
	case time.Hour:
		return "hour"
	case 24 * time.Hour:
		return "day"
	}
	return d.String()
}

// grouped formats v rounded, with thousands separators.
func grouped(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// writeReport writes benchmarks.md and the charts into OutDir and, when
// asked, the capacity section of the operators' guide.
func writeReport(r *Result) error {
	imgDir := filepath.Join(r.Opts.OutDir, "bench")
	if err := os.MkdirAll(imgDir, 0o755); err != nil {
		return err
	}
	charts := map[string]chart{
		"throughput.svg": r.throughputChart(),
		"latency.svg":    r.latencyChart(),
	}
	for name, c := range charts {
		if err := os.WriteFile(filepath.Join(imgDir, name),
			[]byte(c.svg()), 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(r.Opts.OutDir, "benchmarks.md"),
		[]byte(r.markdown()), 0o644); err != nil {
		return err
	}
	if r.Opts.OperatorsDoc != "" {
		return updateOperators(r.Opts.OperatorsDoc, r.capacityTable())
	}
	return nil
}

var colors = map[string]string{"A": "#1f77b4", "A'": "#ff7f0e",
	"B": "#2ca02c", "B sender": "#2ca02c"}

func levelsOf(rs []LevelResult) []float64 {
	var xs []float64
	for _, l := range rs {
		xs = append(xs, float64(l.InFlight))
	}
	return xs
}

func (r *Result) throughputChart() chart {
	c := chart{title: "Payments per second against payments in flight",
		xLabel: "payments in flight (alice -> bob -> carol)",
		yLabel: "payments/s", logX: true, xTicks: levelsOf(r.A)}
	for _, s := range []struct {
		name string
		rs   []LevelResult
	}{{"A", r.A}, {"A'", r.A2}, {"B", r.B}} {
		var ys []float64
		for _, l := range s.rs {
			ys = append(ys, l.Rate)
		}
		c.series = append(c.series, series{name: s.name,
			color: colors[s.name], x: levelsOf(s.rs), y: ys})
	}
	return c
}

// latencyChart is the latency distribution (CDF) at the profiled level.
func (r *Result) latencyChart() chart {
	lvl := r.Opts.profileLevel()
	c := chart{title: fmt.Sprintf("Latency distribution at %d in flight", lvl),
		xLabel: "milliseconds", yLabel: "share of payments (%)"}
	pick := func(rs []LevelResult) *LevelResult {
		for i := range rs {
			if rs[i].InFlight == lvl {
				return &rs[i]
			}
		}
		return nil
	}
	add := func(name string, lat Latencies, dashed bool) {
		s := lat.sorted()
		if len(s) == 0 {
			return
		}
		se := series{name: name, color: colors[strings.Fields(name)[0]],
			dashed: dashed}
		step := max(1, len(s)/100)
		for i := 0; i < len(s); i += step {
			se.x = append(se.x, ms(s[i]))
			se.y = append(se.y, float64(i+1)/float64(len(s))*100)
		}
		se.x = append(se.x, ms(s[len(s)-1]))
		se.y = append(se.y, 100)
		c.series = append(c.series, se)
	}
	if a := pick(r.A); a != nil {
		add("A", a.Lat, false)
	}
	if a := pick(r.A2); a != nil {
		add("A'", a.Lat, false)
	}
	if b := pick(r.B); b != nil {
		add("B credit", b.Lat, false)
		add("B sender", b.SenderLat, true)
	}
	return c
}

// updateOperators replaces the capacity section at the end of the
// operators' guide (or appends it).
func updateOperators(path, table string) error {
	const (
		begin = "<!-- bench:capacity (written by go run ./itest/cmd/bench) -->"
		end   = "<!-- /bench:capacity -->"
	)
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc := string(b)
	section := begin + "\n## Capacity planning\n\n" + table +
		"\nFull figures, the machine and how to measure your own: " +
		"[benchmarks.md](benchmarks.md).\n" + end + "\n"
	if i := strings.Index(doc, begin); i >= 0 {
		j := strings.Index(doc, end)
		if j < i {
			return fmt.Errorf("%s: capacity section has no end marker", path)
		}
		doc = doc[:i] + section + strings.TrimLeft(doc[j+len(end):], "\n")
	} else {
		doc = strings.TrimRight(doc, "\n") + "\n\n" + section
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
