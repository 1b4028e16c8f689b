//go:build tools

// Package satstream pins, for go.mod, the lnd commands that itest/bins
// compiles from this module (lnd and lncli); nothing imports them otherwise.
package satstream

import (
	_ "github.com/lightningnetwork/lnd/cmd/lncli"
	_ "github.com/lightningnetwork/lnd/cmd/lnd"
)
