package receiver

import (
	"context"
	"errors"
)

// openPostgres opens the shared PostgreSQL ledger of cfg.
func openPostgres(ctx context.Context, d *Daemon) (Ledger, error) {
	return nil, errors.New("postgres ledger not built yet")
}
