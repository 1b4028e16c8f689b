// Command bench measures satstream against plain keysend on a local regtest
// network (alice -> bob -> carol) and writes docs/benchmarks.md, its charts
// in docs/bench/ and the capacity section of docs/operators.md. Run it from
// the repository root, holding the itest lock:
//
//	flock /tmp/satstream-itest.lock go run ./itest/cmd/bench
//
// --quick runs a short version that writes to a temp dir (or --out).
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
	measure := flag.Duration("measure", 0, "measure window per level (default 20s; quick 3s)")
	only := flag.String("only", "", "run one part alone, no report: scale (the receiver at scale and its paid check, about a minute)")
	profile := flag.String("profile", "", "with --only scale: write the receiver's profiles of the paced paid load here")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt,
		syscall.SIGTERM)
	defer stop()

	opts := bench.Options{Quick: *quick, OutDir: *out, WorkDir: *dir,
		Log: os.Stderr, Measure: *measure, Only: *only, ProfileDir: *profile}
	if *only != "" && *only != bench.OnlyScale {
		fail(fmt.Errorf("--only: %q is not a part (scale)", *only))
	}
	if *levels != "" {
		for _, s := range strings.Split(*levels, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 {
				fail(fmt.Errorf("--levels: %q is not a positive number", s))
			}
			opts.Levels = append(opts.Levels, n)
		}
	}
	switch {
	case opts.OutDir != "":
	case *quick:
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
