// Command soak streams many satstream subscriptions on a regtest network
// for a long while, with a hostile payer sending keysends for random
// subscription ids, and prints a summary: payments, hostile keysends
// refused, ledger rows before and after, RSS and goroutines of both
// daemons at warm-up and at the end, and the ledger invariant. It exits
// non-zero if a promise broke (see package itest/soak).
//
//	go run ./itest/cmd/soak                  # 1,000 subscriptions, 10 minutes
//	go run ./itest/cmd/soak --quick          # ~1 minute, 10 subscriptions
//	go run ./itest/cmd/soak --subs=200 --duration=3m
//
// It runs btcd and three lnd nodes on 127.0.0.1; run it alone (the
// integration tests take /tmp/satstream-itest.lock for the same reason:
// flock /tmp/satstream-itest.lock go run ./itest/cmd/soak).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/satstream/satstream/itest/soak"
)

func main() {
	cfg := soak.DefaultConfig()
	quick := flag.Bool("quick", false, "about a minute: 10 subscriptions, "+
		"300 hostile keysends, flatness reported but not asserted")
	subs := flag.Int("subs", 0, "subscriptions (default 1000; 10 with --quick)")
	duration := flag.Duration("duration", 0, "how long they stream "+
		"(default 10m; 1m with --quick)")
	hostile := flag.Int("hostile", -1, "hostile keysends (default "+
		"10000; 300 with --quick)")
	increment := flag.Duration("increment", 0, "paid time per payment "+
		"(default 5m; 10s with --quick)")
	dir := flag.String("dir", "", "keep everything here (default: a "+
		"temporary directory, removed if the run passes)")
	flag.Parse()
	if *quick {
		cfg = soak.QuickConfig()
	}
	if *subs > 0 {
		cfg.Subs = *subs
	}
	if *duration > 0 {
		cfg.Duration = *duration
		cfg.SampleEvery = max(time.Second, min(10*time.Second,
			*duration/60))
	}
	if *hostile >= 0 {
		cfg.Hostile = *hostile
	}
	if *increment > 0 {
		cfg.Increment = *increment
	}
	cfg.Dir = *dir

	ctx, stop := signal.NotifyContext(context.Background(),
		os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := soak.Run(ctx, cfg, os.Stderr)
	fmt.Println()
	res.Print(os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak FAILED:", err)
		os.Exit(1)
	}
	fmt.Println("\nsoak passed")
}
