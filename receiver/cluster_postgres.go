package receiver

import (
	"context"
	"errors"
	"fmt"

	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/store/postgres"
)

// pgLedger is the PostgreSQL store as the daemon's Ledger.
type pgLedger struct {
	*postgres.Store
}

// Receiver is the store itself: it implements store.ReceiverStore.
func (l pgLedger) Receiver() store.ReceiverStore { return l.Store }

var _ Ledger = pgLedger{}

// openPostgres opens the shared PostgreSQL ledger as the store of this
// receiver's lnd node. The node's lnd resume points and held payments are
// kept under its public key, so the key is needed before the ledger can
// be opened: the receiver asks lnd first (retrying until lnd answers or
// ctx ends). The node is bound to the network at open; a node bound to
// another network, or a cluster on another network, is refused.
func openPostgres(ctx context.Context, d *Daemon) (Ledger, error) {
	node, err := d.lndNode(ctx)
	if err != nil {
		return nil, err
	}
	return openPGLedger(ctx, d.cfg, node)
}

// openPGLedger opens cfg's PostgreSQL ledger as the store of lnd node
// node, bound to cfg.Network.
func openPGLedger(ctx context.Context, cfg *Config, node [33]byte) (Ledger,
	error) {

	pc := cfg.DB.Postgres
	st, err := postgres.Open(ctx, postgres.Config{
		DSN:            pc.DSN,
		MaxConns:       pc.MaxConns,
		MinConns:       pc.MinConns,
		ConnectTimeout: pc.ConnectTimeout,
		LockTimeout:    pc.LockTimeout,
		NodePubkey:     node,
		Network:        cfg.Network,
	})
	if errors.Is(err, store.ErrWrongNode) {
		return nil, &common.NodeError{Err: err, Msg: fmt.Sprintf(
			"refusing to start: %v (PostgreSQL ledger %s, lnd node "+
				"%s on %s); every receiver of one ledger must be on "+
				"the network the ledger was made with", err,
			RedactDSN(pc.DSN), route.Vertex(node), cfg.Network)}
	}
	if err != nil {
		return nil, err
	}
	return pgLedger{st}, nil
}

// lndNode connects to lnd (with the lnd loop's backoff) and returns its
// identity key.
func (d *Daemon) lndNode(ctx context.Context) ([33]byte, error) {
	d.log.Infof("PostgreSQL ledger: asking lnd at %s for its node key "+
		"before opening it", d.cfg.Lnd.Addr())
	services, err := common.ConnectLnd(ctx, d.cfg.Lnd, d.cfg.Network,
		d.logs.Logger(tagLnd))
	if err != nil {
		return [33]byte{}, fmt.Errorf("lnd: %w", err)
	}
	defer services.Close()
	return services.NodePubkey, nil
}
