// Command satstream-bins builds (or finds in the cache) the lnd, lncli, btcd
// and btcctl binaries the integration tests and the demo use, printing
// progress, and prints their paths.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/satstream/satstream/itest/bins"
)

func main() {
	ctx, stop := signal.NotifyContext(
		context.Background(), os.Interrupt, syscall.SIGTERM,
	)
	defer stop()

	p, err := bins.Ensure(ctx, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "satstream-bins:", err)
		os.Exit(1)
	}
	fmt.Printf("lnd=%s\nlncli=%s\nbtcd=%s\nbtcctl=%s\n",
		p.Lnd, p.Lncli, p.Btcd, p.Btcctl)
}
