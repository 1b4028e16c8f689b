package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/satstream/satstream/itest/bins"
)

// ScaleOutFile is the file --only scaleout writes in OutDir (never
// benchmarks.md: a partial run must not replace the full page).
const ScaleOutFile = "benchmarks-scaleout.md"

// runScaleOutOnly is Run for --only scaleout: the line alice -> bob ->
// carol, carol in hold mode, then the scale-out section alone, written to
// ScaleOutFile.
func runScaleOutOnly(ctx context.Context, opts Options, res *Result,
	paths *bins.Paths, binDir string, logf io.Writer) (*Result, error) {

	opts.say("starting btcd, alice -> bob -> carol")
	nw, err := startNetwork(ctx, opts.WorkDir, paths)
	if nw != nil {
		defer nw.net.Close()
	}
	if err != nil {
		return nil, err
	}
	opts.say("restarting carol with %s", holdTime)
	if err := nw.setHold(ctx, true); err != nil {
		return nil, err
	}
	if res.ScaleOut, err = scaleOut(ctx, opts, nw, binDir, logf); err != nil {
		return nil, fmt.Errorf("scale-out: %w", err)
	}
	res.Machine.LoadEnd = loadAvg()
	res.Took = time.Since(res.Started)
	m := res.Machine
	doc := fmt.Sprintf("<!-- go run ./itest/cmd/bench --only scaleout, "+
		"%s UTC, %v; %d cores, load %s at start, %s at end -->\n\n%s",
		res.Started.Format("2006-01-02 15:04"),
		res.Took.Round(time.Second), m.Cores, m.LoadStart, m.LoadEnd,
		res.ScaleOut.markdown())
	return res, os.WriteFile(filepath.Join(opts.OutDir, ScaleOutFile),
		[]byte(doc), 0o644)
}

// Ratio is one scale-out ratio of the section.
type Ratio struct {
	InFlight int
	Name     string // "2/1", "3/1", "postgres/badger"
	Value    float64
}

// rate is the credited rate of one config at one bound (0 if not run).
func (s *ScaleOut) rate(level, nodes int, backend string) float64 {
	for _, r := range s.Runs {
		if r.InFlight == level && r.Config.Nodes == nodes &&
			r.Config.Backend == backend {
			return r.Rate
		}
	}
	return 0
}

// levels are the in-flight bounds run, in order.
func (s *ScaleOut) levels() []int {
	var out []int
	for _, r := range s.Runs {
		if len(out) == 0 || out[len(out)-1] != r.InFlight {
			out = append(out, r.InFlight)
		}
	}
	return out
}

// Ratios are n nodes over one, all on PostgreSQL, and one node on
// PostgreSQL over one on badger, per in-flight bound.
func (s *ScaleOut) Ratios() []Ratio {
	var out []Ratio
	for _, l := range s.levels() {
		one := s.rate(l, 1, "postgres")
		if one == 0 {
			continue
		}
		for _, n := range []int{2, 3} {
			if v := s.rate(l, n, "postgres"); v > 0 {
				out = append(out, Ratio{l, fmt.Sprintf("%d/1", n),
					v / one})
			}
		}
		if b := s.rate(l, 1, "badger"); b > 0 {
			out = append(out, Ratio{l, "postgres/badger, 1 node",
				one / b})
		}
	}
	return out
}

// markdown renders the section "Scale-out: one, two, three provider
// nodes".
func (s *ScaleOut) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("## Scale-out: one, two, three provider nodes\n\n")
	if s.Quick {
		p("**QUICK run**: 1 and 2 nodes, %v windows; not figures to "+
			"quote.\n\n", s.Measure)
	}
	p("The provider runs 1, 2 or 3 lnd nodes (carol, dave, erin, each in "+
		"hold mode with a %s-sat channel from bob), each with its own "+
		"satstream-receiver, all on one PostgreSQL ledger (a throw-away "+
		"server, a fresh database per run); for reference, 1 node on "+
		"badger, the embedded default. The sender load is the same in "+
		"every run: one fresh satstream-sender beside alice, %d "+
		"subscriptions, the same `--payments.maxinflight`; the "+
		"subscriptions are spread evenly over the nodes, each made at "+
		"one receiver, whose offer names its own node. Credited/s "+
		"counts the receivers' credits in a %v window after a %v "+
		"warm-up. After each run the streams are paused and the money "+
		"checked, hash by hash: settled at the nodes == credited == "+
		"paid by the sender, or the run fails. The configs are "+
		"interleaved at each bound.\n\n", grouped(float64(lineCapacity)),
		scaleOutSubs, s.Measure, s.Warmup)

	p("| in flight | provider | credited /s | per node /s | vs 1 node " +
		"on postgres | payments checked | machine busy |\n")
	p("|---|---|---|---|---|---|---|\n")
	for _, r := range s.Runs {
		per := make([]string, len(r.PerNode))
		for i, n := range r.PerNode {
			per[i] = fmt.Sprintf("%s %.1f", providerNames[i],
				float64(n)/r.Window.Seconds())
		}
		vs := "-"
		if one := s.rate(r.InFlight, 1, "postgres"); one > 0 {
			vs = fmt.Sprintf("%.2f", r.Rate/one)
		}
		p("| %d | %v | %.1f | %s | %s | %d (%s msat) | %.0f%% of %d "+
			"cores |\n", r.InFlight, r.Config, r.Rate,
			strings.Join(per, ", "), vs, r.Payments,
			grouped(float64(r.PaidMsat)), r.Busy*100, s.Cores)
	}
	p("\n")
	if rs := s.Ratios(); len(rs) > 0 {
		p("**Scale-out ratios** (credited/s):")
		for i, r := range rs {
			sep := ","
			if i == len(rs)-1 {
				sep = "."
			}
			p(" %s at %d in flight **%.2f**%s", r.Name, r.InFlight,
				r.Value, sep)
		}
		p("\n\n")
	}

	p("### CPU per process during the measure windows\n\n")
	p("Cores used (1.00 = one core busy the whole window), from " +
		"/proc/<pid>/stat; postgres is the postmaster and all its " +
		"backends, bench process is this command (its API polls).\n\n")
	roles := map[string]bool{}
	for _, r := range s.Runs {
		for k := range r.CPU {
			roles[k] = true
		}
	}
	var cols []string
	for k := range roles {
		cols = append(cols, k)
	}
	order := func(k string) string {
		switch {
		case k == "lnd alice" || k == "lnd bob":
			return "0" + k
		case strings.HasPrefix(k, "lnd "):
			return "1" + k
		case strings.HasPrefix(k, "receiver "):
			return "2" + k
		case k == "sender":
			return "3"
		case k == "postgres":
			return "4"
		case k == "btcd":
			return "5"
		}
		return "6" + k
	}
	sort.Slice(cols, func(i, j int) bool { return order(cols[i]) < order(cols[j]) })
	p("| in flight | provider | %s | sum | others on the machine | "+
		"machine busy |\n", strings.Join(cols, " | "))
	p("|---|---|%s---|---|---|\n", strings.Repeat("---|", len(cols)))
	for _, r := range s.Runs {
		var cells []string
		sum := 0.0
		for _, c := range cols {
			v, ok := r.CPU[c]
			if !ok {
				cells = append(cells, "-")
				continue
			}
			sum += v
			cells = append(cells, fmt.Sprintf("%.2f", v))
		}
		p("| %d | %v | %s | %.2f | %.2f | %.2f of %d |\n", r.InFlight,
			r.Config, strings.Join(cells, " | "), sum,
			r.others(s.Cores), r.Busy*float64(s.Cores), s.Cores)
	}
	p("\n")

	if len(s.Store) > 0 {
		p("### The store alone: durable credits/s, badger vs " +
			"PostgreSQL\n\n")
		p("`go test -run '^$' -bench '^BenchmarkDurableCredits$' " +
			"-benchtime 2000x ./store/postgres/`, run by this command " +
			"on the same machine: the receiver's whole credit step, " +
			"acknowledged once on disk (badger: group commit; " +
			"PostgreSQL: SERIALIZABLE, synchronous_commit on); single " +
			"is one payer at a time, concurrent many (64 " +
			"subscriptions), two-nodes-concurrent two receivers' " +
			"stores on one database.\n\n| case | durable credits/s |\n" +
			"|---|---|\n")
		for _, st := range s.Store {
			p("| %s | %s |\n", st.Name, grouped(st.Rate))
		}
		p("\n")
	}

	p("### Reading the ratios: what limits scale-out on this machine\n\n")
	p("Every process of every run shares this machine's %d cores: "+
		"btcd, alice and bob (in every payment's path, whatever the "+
		"number of provider nodes), each provider lnd, each receiver, "+
		"the sender and PostgreSQL. A second provider node adds an lnd "+
		"and a receiver that need CPU of their own, taken from the "+
		"same cores that alice, bob and the first node were using. "+
		"When the machine is near fully busy (the last column of the "+
		"CPU table near %d), the ratio n/1 measures how the same CPU "+
		"is shared, not what n machines would do: it stays near 1 or "+
		"drops below it however well the ledger takes concurrent "+
		"receivers. alice (the one payer's lnd: a fresh route, onion "+
		"and two commitment dances per payment) and bob (every "+
		"payment's forward) do the same work per payment in every "+
		"config and are not split by adding provider nodes, so on one "+
		"machine their CPU bounds the whole line's rate. \"others on the machine\" is CPU used by processes "+
		"that are not this run's (other work on a shared machine): "+
		"when it is not near 0 the run competed for the cores.\n\n",
		s.Cores, s.Cores)
	p("%s", s.findings())
	p("On several machines (one per provider lnd and its receiver, " +
		"PostgreSQL on its own host, payers spread over many nodes as " +
		"real traffic is), each node brings its own cores and disk: " +
		"the per-node rate of the 1-node run is the figure each added " +
		"node contributes, until the shared PostgreSQL saturates (the " +
		"store-alone concurrent and two-nodes figures bound that) or " +
		"the network round trips to the database lengthen each " +
		"credit. alice and bob would no longer be shared by every " +
		"stream; one payer's node is then what limits one payer, not " +
		"the provider.\n\n")
	return b.String()
}

// findings states what this run's figures say about the limit: how busy
// the machine was, how much of it the line alice -> bob took, and the
// ledger's own ceiling from the store-alone figures.
func (s *ScaleOut) findings() string {
	if len(s.Runs) == 0 {
		return ""
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	lo, hi, best := 1.0, 0.0, 0.0
	othLo, othHi := 1e9, 0.0
	for _, r := range s.Runs {
		lo, hi = min(lo, r.Busy), max(hi, r.Busy)
		best = max(best, r.Rate)
		o := r.others(s.Cores)
		othLo, othHi = min(othLo, o), max(othHi, o)
	}
	p("**In this run** the machine was %.0f%% to %.0f%% busy during the "+
		"windows, and work that is not this run's took %.2f to %.2f "+
		"cores of %d", lo*100, hi*100, othLo, othHi, s.Cores)
	if othHi > 0.25*float64(s.Cores) {
		p(" (a shared, busy machine: the ratios are not the code's; " +
			"rerun on a quiet one)")
	}
	p(". alice and bob together spent, per credited payment:")
	for i, r := range s.Runs {
		sep := ","
		if i == len(s.Runs)-1 {
			sep = "."
		}
		p(" %.0f core-ms (%v, %d in flight)%s", r.lineCost(),
			r.Config, r.InFlight, sep)
	}
	var pg, pgTwo float64
	for _, st := range s.Store {
		switch st.Name {
		case "postgres/concurrent":
			pg = st.Rate
		case "postgres/two-nodes-concurrent":
			pgTwo = st.Rate
		}
	}
	if ceil := min(pg, pgTwo); ceil > 0 && best > 0 {
		p(" The PostgreSQL store alone credits %s/s concurrently (%s/s "+
			"with two nodes' stores on one database), %.1fx the best "+
			"credited rate here", grouped(pg), grouped(pgTwo),
			ceil/best)
		if ceil/best >= 3 {
			p(": the shared ledger is not what limits these runs.")
		} else {
			p(": close enough that the shared ledger (on the same " +
				"cores) is part of the limit.")
		}
	}
	if one, bad := s.rate(s.levels()[0], 1, "postgres"),
		s.rate(s.levels()[0], 1, "badger"); one > 0 && bad > 0 {
		p(" One node on PostgreSQL against one on badger (%.2f at %d "+
			"in flight) is PostgreSQL's cost per credit in the whole "+
			"line, including its own CPU (the postgres column).",
			one/bad, s.levels()[0])
	}
	p("\n\n")
	return b.String()
}

// others is the CPU, in cores, that the machine spent on processes not
// of this run during its window.
func (r ScaleOutRun) others(cores int) float64 {
	sum := 0.0
	for _, v := range r.CPU {
		sum += v
	}
	return max(0, r.Busy*float64(cores)-sum)
}

// lineCost is alice's and bob's CPU per credited payment, in core-ms:
// the part of every payment no provider node takes off them.
func (r ScaleOutRun) lineCost() float64 {
	if r.Rate == 0 {
		return 0
	}
	return (r.CPU["lnd alice"] + r.CPU["lnd bob"]) / r.Rate * 1000
}
