package storetest

import (
	"math"
	"testing"
	"time"

	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// testPastDueReadOnlyWhenGraceEnds: the expiry sweep runs every second and
// ages a past-due subscription only when its grace ends. Keyed by paid time
// alone, the due scan yielded every subscription in grace at every sweep,
// which decoded 10,000 of them a second in the scale profile. The scan must
// yield an active subscription from its paid time and a past-due one from
// the end of its grace, and follow every write of state, paid time and
// grace.
func testPastDueReadOnlyWhenGraceEnds(t *testing.T, open Open) {
	rs, ctx := open(t), Ctx(t)

	put := func(id uint64, state store.SubState, paid int64,
		grace time.Duration) {

		t.Helper()
		require.NoError(t, rs.Update(ctx, func(tx store.ReceiverTx) error {
			return tx.PutSubscription(&store.ReceiverSubscription{
				ID: SubID(id), PlanID: "p", State: state,
				PaidUntil: At(paid),
				Terms:     store.Terms{Grace: grace},
			})
		}))
	}
	const g = 100 * time.Second
	put(1, store.SubActive, 100, g)             // due at 100
	put(2, store.SubPastDue, 50, g)             // in grace until 150
	put(3, store.SubPastDue, 60, 0)             // no grace: due at 60
	put(4, store.SubPastDue, 10, g)             // grace over at 110
	put(5, store.SubPastDue, 70, -g)            // a negative grace is no grace
	put(6, store.SubPastDue, 80, math.MaxInt64) // saturates, never due

	steps := []struct {
		name   string
		before time.Time
		want   []store.SubID
	}{
		{"in grace is not due", At(101), []store.SubID{
			SubID(3), SubID(5), SubID(1)}},
		{"grace over is due", At(111), []store.SubID{
			SubID(3), SubID(5), SubID(1), SubID(4)}},
		{"strictly before grace end", At(150), []store.SubID{
			SubID(3), SubID(5), SubID(1), SubID(4)}},
		{"after grace end", At(151), []store.SubID{
			SubID(3), SubID(5), SubID(1), SubID(4), SubID(2)}},
	}
	for _, s := range steps {
		require.Equal(t, s.want, dueBefore(t, rs, s.before), s.name)
	}

	// Ageing 1 to past due moves it to the end of its grace; a credit
	// brings 2 back to active at a later paid time; a shorter grace
	// (PATCH) moves 4 earlier; cancelling 3 takes it out; a longer grace
	// moves 5 later.
	put(1, store.SubPastDue, 100, g)
	put(2, store.SubActive, 300, g)
	put(4, store.SubPastDue, 10, 20*time.Second)
	put(3, store.SubCancelledByProvider, 60, 0)
	put(5, store.SubPastDue, 70, 2*g)
	steps = []struct {
		name   string
		before time.Time
		want   []store.SubID
	}{
		{"shorter grace is due sooner", At(31), []store.SubID{SubID(4)}},
		{"aged is in grace", At(200), []store.SubID{SubID(4)}},
		{"longer grace", At(271), []store.SubID{SubID(4), SubID(1),
			SubID(5)}},
		{"credited is due at its new paid time", At(301),
			[]store.SubID{SubID(4), SubID(1), SubID(5), SubID(2)}},
	}
	for _, s := range steps {
		require.Equal(t, s.want, dueBefore(t, rs, s.before), s.name)
	}
}
