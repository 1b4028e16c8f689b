//go:build tools

// Package satstream pins, for go.mod, the lnd commands our itest builder
// compiles from this module (lnd, lncli) and libraries not yet imported.
package satstream

import (
	_ "github.com/btcsuite/btclog/v2"
	_ "github.com/cenkalti/backoff/v4"
	_ "github.com/dgraph-io/badger/v4"
	_ "github.com/jessevdk/go-flags"
	_ "github.com/lightninglabs/lndclient"
	_ "github.com/lightningnetwork/lnd/cmd/lncli"
	_ "github.com/lightningnetwork/lnd/cmd/lnd"
	_ "github.com/lightningnetwork/lnd/lnrpc"
	_ "github.com/lightningnetwork/lnd/tlv"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/stretchr/testify/require"
)
