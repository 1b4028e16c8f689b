// Command bench measures satstream against plain keysend on a local regtest
// network (alice -> bob -> carol) and writes docs/benchmarks.md, its charts
// in docs/bench/ and the capacity section of docs/operators.md. Run it from
// the repository root, holding the itest lock:
//
//	flock /tmp/satstream-itest.lock go run ./itest/cmd/bench
//
// --quick runs a short version that writes to a temp dir (or --out).
// --only scaleout runs the scale-out section alone (1, 2 and 3 provider
// nodes on one PostgreSQL ledger) and writes it to
// benchmarks-scaleout.md in a temp dir (or --out), never over
// docs/benchmarks.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/satstream/satstream/itest/bench"
)

func main() {
	quick := flag.Bool("quick", false, "short run (tens of seconds after the network is up); writes to a temp dir unless --out is given")
	out := flag.String("out", "", "directory for benchmarks.md and bench/*.svg (default: docs, or a temp dir with --quick)")
	dir := flag.String("dir", "", "keep the network and daemon data here (default: a temp dir, removed)")
	levels := flag.String("levels", "", "in-flight levels, comma separated (default 1,4,8,16,32; quick 1,8)")
	measure := flag.Duration("measure", 0, "measure window per level and round (default 15s; quick 3s)")
	rounds := flag.Int("rounds", 0, "how many times A, A' and B run at each level; a level's figure is the median (default 3; quick 1)")
	only := flag.String("only", "", "run just these parts, comma separated (a, a2, b, synthetic, scale), print their figures and write no report (scale alone: btcd and carol only, about a minute); or "+bench.OnlyScaleOut+" alone, written to its own file (not benchmarks.md)")
	profile := flag.String("profile", "", "with --only scale: write the receiver's profiles of the paced paid load here")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt,
		syscall.SIGTERM)
	defer stop()

	opts := bench.Options{Quick: *quick, OutDir: *out, WorkDir: *dir,
		Log: os.Stderr, Measure: *measure, ProfileDir: *profile}
	if *rounds < 0 {
		fail(fmt.Errorf("--rounds: %d is not a positive number", *rounds))
	}
	opts.Rounds = *rounds
	if *levels != "" {
		for _, s := range strings.Split(*levels, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 {
				fail(fmt.Errorf("--levels: %q is not a positive number", s))
			}
			opts.Levels = append(opts.Levels, n)
		}
	}
	if *only != "" {
		opts.Only = map[string]bool{}
		for _, s := range strings.Split(*only, ",") {
			part := strings.TrimSpace(s)
			if !bench.IsPart(part) {
				fail(fmt.Errorf("--only: %q is not a part (%s)",
					part, strings.Join(bench.Parts, ", ")))
			}
			opts.Only[part] = true
		}
		if opts.Only[bench.OnlyScaleOut] && len(opts.Only) > 1 {
			fail(fmt.Errorf("--only: %s runs alone", bench.OnlyScaleOut))
		}
	}
	if *profile != "" && (len(opts.Only) != 1 || !opts.Only[bench.OnlyScale]) {
		fail(fmt.Errorf("--profile needs --only %s", bench.OnlyScale))
	}
	switch {
	case *only != "" && !opts.Only[bench.OnlyScaleOut]:
		// Prints its figures, writes nothing.
	case opts.OutDir != "":
	case *quick, *only != "":
		d, err := os.MkdirTemp("", "satstream-bench-quick-*")
		if err != nil {
			fail(err)
		}
		opts.OutDir = d
	default:
		if _, err := os.Stat("docs/operators.md"); err != nil {
			fail(fmt.Errorf("run from the repository root (no " +
				"docs/operators.md here), or pass --out"))
		}
		opts.OutDir = "docs"
		opts.OperatorsDoc = filepath.Join("docs", "operators.md")
	}
	res, err := bench.Run(ctx, opts)
	if err != nil {
		fail(err)
	}
	if *only != "" {
		if opts.Only[bench.OnlyScaleOut] {
			fmt.Printf("wrote %s\n", filepath.Join(opts.OutDir,
				bench.ScaleOutFile))
			return
		}
		res.PrintParts(os.Stdout)
		return
	}
	var b strings.Builder
	res.PrintTargets(&b)
	fmt.Print(b.String())
	fmt.Printf("wrote %s\n", filepath.Join(opts.OutDir, "benchmarks.md"))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
