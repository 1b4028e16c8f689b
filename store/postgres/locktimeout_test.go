package postgres_test

import (
	"math"
	"testing"
	"time"

	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/store/postgres"
	"github.com/satstream/satstream/store/postgres/pgtest"
	"github.com/satstream/satstream/store/storetest"
	"github.com/stretchr/testify/require"
)

// TestLongLockTimeoutFailsEveryStep reproduces a LockTimeout that Validate
// accepts (only negative ones are refused) but PostgreSQL does not:
// lock_timeout holds at most 2147483647 ms (under 25 days), so with 30
// days every BEGIN fails ("out of range") and no payment can be credited;
// the largest Duration overflows lockTimeoutMS's rounding to a negative
// number, which max(1, ...) turns into a 1 ms bound: every step that
// waits for any lock fails. A long bound must mean "wait long".
func TestLongLockTimeoutFailsEveryStep(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	for _, lt := range []time.Duration{30 * 24 * time.Hour,
		math.MaxInt64} {

		cfg := postgres.Config{DSN: srv.NewDatabase(t),
			NodePubkey: nodeKey(1), LockTimeout: lt}
		ctx := storetest.Ctx(t)
		if cfg.Validate() != nil {
			continue // refused up front: fine
		}
		s, err := postgres.Open(ctx, cfg)
		require.NoError(t, err)
		require.NoError(t, s.Update(ctx, func(tx store.ReceiverTx) error {
			return tx.SetAddIndex(1)
		}), "lock timeout %v", lt)
		require.NoError(t, s.Close())
	}
	require.Equal(t, int64(math.MaxInt32),
		postgres.LockTimeoutMS(math.MaxInt64))
}
