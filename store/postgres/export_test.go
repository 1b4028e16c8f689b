package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/satstream/satstream/store"
)

// RunAlone runs fn once in the slow lane, as a step does after
// slowLaneAfter serialization failures, so tests need not provoke them.
func (s *Store) RunAlone(ctx context.Context,
	fn func(tx store.ReceiverTx) error) error {

	return s.run(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable}, true,
		func(t *tx) error { return fn(t) })
}

// LockTimeoutMS is lockTimeoutMS, for the bound's tests.
var LockTimeoutMS = lockTimeoutMS
