package core_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/satstream/satstream/receiver/core"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// downStore is a receiver store whose database cannot be reached, as the
// PostgreSQL backend reports it (store.ErrUnavailable) while it is down.
type downStore struct{ updates int }

func (s *downStore) Update(context.Context, func(store.ReceiverTx) error) error {
	s.updates++
	return fmt.Errorf("%w: dial tcp: connection refused", store.ErrUnavailable)
}

func (s *downStore) View(context.Context, func(store.ReceiverTx) error) error {
	return fmt.Errorf("%w: dial tcp: connection refused", store.ErrUnavailable)
}

// TestExpiryPassStopsWhenStoreUnreachable: AgeSubscriptions ends a pass on
// ErrDiskFull, ErrFailed and ErrClosed (every further step would be
// refused), but treats the PostgreSQL backend's ErrUnavailable as a bad
// record: it halves every batch down to single subscriptions, so one pass
// over 1000 due subscriptions runs ~2000 doomed transactions (each one a
// connect attempt) and logs 1000 "ageing subscription" errors.
func TestExpiryPassStopsWhenStoreUnreachable(t *testing.T) {
	ids := make([]store.SubID, 1000)
	for i := range ids {
		ids[i][0], ids[i][1] = byte(i>>8), byte(i)
	}
	s := &downStore{}
	perRecord := 0
	_, err := core.AgeSubscriptions(context.Background(), s, ids,
		time.Now(), func(store.SubID, error) { perRecord++ })
	t.Logf("%d Update calls, %d errors blamed on single records, err=%v", s.updates, perRecord, err)
	require.ErrorIs(t, err, store.ErrUnavailable,
		"the pass should end with the store's error")
	require.LessOrEqual(t, s.updates, 1, "transactions tried against "+
		"an unreachable store (%d blamed on single records)", perRecord)
}
