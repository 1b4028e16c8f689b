package storetest

import (
	"testing"
	"time"

	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// testDueTiesAcrossPages puts more subscriptions due at one instant than
// one PostgreSQL page of the scan holds, half of them past due (paid time
// plus grace) and half active (paid time), so the paging resumes inside a
// tie on the due expression and must go on by id: each is read once.
func testDueTiesAcrossPages(t *testing.T, open Open) {
	rs, ctx := open(t), Ctx(t)
	const n = 600
	require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
		for i := uint64(1); i <= n; i++ {
			s := &store.ReceiverSubscription{ID: SubID(i),
				PlanID: "p", State: store.SubActive,
				PaidUntil: At(200),
				Terms:     store.Terms{Grace: 100 * time.Second}}
			if i%2 == 0 {
				s.State, s.PaidUntil = store.SubPastDue, At(100)
			}
			if err := tx.PutSubscription(s); err != nil {
				return err
			}
		}
		return nil
	}))
	got := dueBefore(t, rs, At(201))
	require.Len(t, got, n)
	seen := map[store.SubID]bool{}
	for _, id := range got {
		require.False(t, seen[id], "read twice")
		seen[id] = true
	}
	require.Empty(t, dueBefore(t, rs, At(200)))
}
