//go:build itest

// Package itest holds satstream's integration tests. They run real btcd and
// lnd nodes on 127.0.0.1 (see package regtest) and are behind the itest build
// tag so `go test ./...` stays fast; `bash itest/run.sh` runs everything.
package itest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/satstream/satstream/itest/bins"
	"github.com/satstream/satstream/itest/regtest"
)

// binaries are the lnd and btcd builds every test in the package uses.
var binaries *bins.Paths

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	p, err := bins.Ensure(ctx, os.Stderr)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "itest: build lnd/btcd:", err)
		os.Exit(1)
	}
	binaries = p

	code := m.Run()

	// Every test closes its network; anything still alive is a leak.
	if left := regtest.LiveProcesses(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "itest: processes leaked: %v\n", left)
		code = 1
	}
	os.Exit(code)
}
