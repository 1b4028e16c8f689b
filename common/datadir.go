package common

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/satstream/satstream/store"
)

// Networks are the Bitcoin networks both daemons accept, lndclient's
// names (lnd's --bitcoin.testnet is "testnet").
var Networks = []string{"mainnet", "testnet", "testnet4", "signet",
	"regtest", "simnet"}

// ErrOldLayout reports a data directory written before data was kept per
// network.
var ErrOldLayout = errors.New("data directory in the old layout")

// CheckNetwork returns an error naming the option if network is not one
// of Networks.
func CheckNetwork(network string) error {
	for _, n := range Networks {
		if network == n {
			return nil
		}
	}
	return fmt.Errorf("--network=%q is not one of %s", network,
		strings.Join(Networks, ", "))
}

// NetworkDir is where a daemon keeps one network's ledger, TLS pair,
// tokens and logs: <datadir>/<network>, as loop does, so a testnet and a
// mainnet ledger can never be mixed up.
func NetworkDir(dataDir, network string) string {
	return filepath.Join(dataDir, network)
}

// CheckOldLayout refuses a data directory that still holds a ledger at its
// top, where satstream kept it before data was split per network. Nothing
// is moved automatically: the old ledger holds money records, and only the
// operator knows which network it was used with. files are the other
// per-network files that may sit beside it.
func CheckOldLayout(dataDir, network string, files ...string) error {
	old := filepath.Join(dataDir, "ledger")
	if _, err := os.Stat(old); err != nil {
		return nil
	}
	var present []string
	for _, f := range append([]string{"ledger"}, files...) {
		if _, err := os.Stat(filepath.Join(dataDir, f)); err == nil {
			present = append(present, f)
		}
	}
	dst := NetworkDir(dataDir, network)
	return fmt.Errorf("%w: %s holds a ledger at its top; satstream now "+
		"keeps each network's data in <datadir>/<network>/. Stop the "+
		"daemon, then, if that ledger is for %s: mkdir -m 700 %s && "+
		"cd %s && mv %s %s/ (use the network the ledger was used with "+
		"in place of %s)", ErrOldLayout, dataDir, network, dst, dataDir,
		strings.Join(present, " "), network, network)
}

// Binder is a ledger that can be bound to a node (*store.DB, or the
// PostgreSQL ledger, which binds each node of a cluster).
type Binder interface {
	Bind(ctx context.Context, want store.Binding) (bool, error)
}

// BindLedger binds the ledger to the node and network on first start and
// refuses another node or network afterwards, in one line that says what
// to do. It reports whether the binding was written now.
func BindLedger(ctx context.Context, db Binder, node route.Vertex,
	network, dataDir string) (bool, error) {

	bound, err := db.Bind(ctx, store.Binding{Node: node,
		Network: network})
	if errors.Is(err, store.ErrWrongNode) {
		return false, &NodeError{Err: err, Msg: fmt.Sprintf("refusing "+
			"to start: %v (ledger in %s); point the daemon at the "+
			"node and network this ledger was made with, or use "+
			"another --datadir for this node", err, dataDir)}
	}
	return bound, err
}
