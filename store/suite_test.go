package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/store/storetest"
	"github.com/stretchr/testify/require"
)

// TestReceiverSuite runs the ReceiverStore conformance suite on badger.
func TestReceiverSuite(t *testing.T) {
	t.Parallel()
	storetest.RunReceiverSuite(t, func(t testing.TB) store.ReceiverStore {
		db, err := store.Open(context.Background(), t.TempDir(),
			store.DefaultOptions())
		require.NoError(t, err)
		t.Cleanup(func() {
			if err := db.Close(); err != nil &&
				!errors.Is(err, store.ErrClosed) {

				t.Errorf("close: %v", err)
			}
		})
		return db.Receiver()
	})
}

// TestIdemPruneSticksWhenFull runs the idempotency retention check on
// badger (the PostgreSQL store runs the same).
func TestIdemPruneSticksWhenFull(t *testing.T) {
	t.Parallel()
	db, err := store.Open(context.Background(), t.TempDir(),
		store.DefaultOptions())
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	storetest.RunIdemPruneSticksWhenFull(t, db)
}
