package store

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// dueBefore returns the ids SubscriptionsDueBefore yields.
func dueBefore(t *testing.T, rs ReceiverStore, before time.Time) []SubID {
	t.Helper()
	var ids []SubID
	require.NoError(t, rs.View(testCtx(t), func(tx ReceiverTx) error {
		return tx.SubscriptionsDueBefore(before, func(s *ReceiverSubscription) error {
			ids = append(ids, s.ID)
			return nil
		})
	}))
	return ids
}

// The ReceiverStore promises both backends keep are in store/storetest
// (run for badger by suite_test.go); what follows is badger's own.

// TestNestedScanInUpdatePanics reproduces two badger iterators open at
// once in an update transaction, which badger answers with a panic: the
// store refuses the nested scan with ErrInvalid instead.
func TestNestedScanInUpdatePanics(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	rs, ctx := db.Receiver(), testCtx(t)
	require.NoError(t, putActiveSub(ctx, rs, subID(1)))
	err := rs.Update(ctx, func(tx ReceiverTx) error {
		return tx.ForEachSubscription(0, Page{}, func(*ReceiverSubscription) error {
			return tx.ForEachPayment(subID(1), 0, func(*Payment) error {
				return nil
			})
		})
	})
	require.ErrorIs(t, err, ErrInvalid)
}

// TestPendingIndexedByOldStoreLeavesIndex reproduces a pending subscription
// that a store before schema version 4 put in the paid-until index: it must
// not reach the expiry scan, and its entry must go when it is next written.
func TestPendingIndexedByOldStoreLeavesIndex(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	rs, ctx := db.Receiver(), testCtx(t)

	sub := &ReceiverSubscription{ID: subID(1), PlanID: "basic", State: SubPending}
	require.NoError(t, rs.Update(ctx, func(tx ReceiverTx) error {
		if err := tx.PutSubscription(sub); err != nil {
			return err
		}
		// The entry an older store wrote.
		return tx.(*receiverTx).set(rsubPaidKey(time.Time{}, sub.ID), nil)
	}))
	require.Empty(t, dueBefore(t, rs, at(1000)))

	sub.State, sub.PaidUntil = SubActive, at(100)
	require.NoError(t, rs.Update(ctx, func(tx ReceiverTx) error {
		return tx.PutSubscription(sub)
	}))
	require.Equal(t, []SubID{subID(1)}, dueBefore(t, rs, at(1000)))
	require.Empty(t, dueBefore(t, rs, at(50)), "stale zero entry left behind")
}

func ptr[T any](v T) *T { return &v }
