package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// IdemStore is the idempotency-key table both backends keep for
// common/idem.
type IdemStore interface {
	IdemBegin(ctx context.Context, rec *store.IdemRecord, ttl time.Duration,
		maxRecords uint64) (*store.IdemRecord, bool, error)
	IdemCount(ctx context.Context) (uint64, error)
}

// idemPrunePerCall is how many expired keys one IdemBegin prunes on both
// backends.
const idemPrunePerCall = 64

// RunIdemPruneSticksWhenFull reproduces an IdemBegin refused at the cap
// (store.ErrIdemFull) whose prune of expired keys was rolled back with
// it: expired keys then stayed for as long as the table was full, beyond
// what the badger store keeps. The prune on the way must stick, refused or
// not.
func RunIdemPruneSticksWhenFull(t *testing.T, s IdemStore) {
	ctx := Ctx(t)
	const ttl = time.Hour
	const old = 100
	begin := func(n int, at time.Time, max uint64) error {
		rec := &store.IdemRecord{CreatedAt: at}
		rec.Scope[0], rec.Scope[1] = byte(n>>8), byte(n)
		rec.Seed[0] = 1
		_, _, err := s.IdemBegin(ctx, rec, ttl, max)
		return err
	}
	count := func() uint64 {
		n, err := s.IdemCount(ctx)
		require.NoError(t, err)
		return n
	}
	for i := 0; i < old; i++ {
		require.NoError(t, begin(i, At(1000), 1000))
	}
	require.EqualValues(t, old, count())

	// Two hours on, every old key has expired. A new key prunes 64.
	later := At(1000).Add(2 * ttl)
	require.NoError(t, begin(old, later, 1000))
	require.EqualValues(t, old-idemPrunePerCall+1, count())

	// The next key finds the table full (one unexpired key, a cap of
	// one): refused, but the 36 expired keys it pruned stay pruned.
	err := begin(old+1, later, 1)
	require.ErrorIs(t, err, store.ErrIdemFull)
	require.EqualValues(t, 1, count(), "only the unexpired key is left")
}
