package store

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPublicIDIndexNamesAnotherSubscription reproduces a public id index
// entry that names a subscription with another public id (a damaged or
// hand-edited store): the lookup returned that other subscription, so a
// caller asking about one subscription was answered about another.
func TestPublicIDIndexNamesAnotherSubscription(t *testing.T) {
	t.Parallel()
	db, _ := openTestDB(t)
	a, b := subID(1), subID(2)
	require.NoError(t, db.Receiver().Update(testCtx(t), func(tx ReceiverTx) error {
		return tx.PutSubscription(&ReceiverSubscription{ID: b,
			PlanID: "p", State: SubActive, CreatedAt: at(1),
			UpdatedAt: at(1)})
	}))
	require.NoError(t, db.Receiver().Update(testCtx(t), func(tx ReceiverTx) error {
		return tx.(*receiverTx).set(rsubPublicKey(a.PublicID()), b[:])
	}))
	err := db.Receiver().View(testCtx(t), func(tx ReceiverTx) error {
		_, err := tx.SubscriptionByPublicID(a.PublicID())
		return err
	})
	require.ErrorIs(t, err, ErrCorrupt)
	require.NoError(t, db.Receiver().View(testCtx(t), func(tx ReceiverTx) error {
		s, err := tx.SubscriptionByPublicID(b.PublicID())
		require.NoError(t, err)
		require.Equal(t, b, s.ID)
		return nil
	}))
}
