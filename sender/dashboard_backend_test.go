package sender

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDashboardHearsPaymentsAndPauses checks the engine's change hook, which
// feeds the dashboard's live updates: it fires when a payment lands and when
// the payer pauses, and the dashboard's view then shows it.
func TestDashboardHearsPaymentsAndPauses(t *testing.T) {
	h := newHarness(t, nil)
	var changes atomic.Int64
	h.eng.SetOnChange(func() { changes.Add(1) })
	h.run()
	b := &dashBackend{engine: h.eng,
		health: func() map[string]any { return map[string]any{"lnd": "connected to x"} }}

	id := h.add(testOffer(t, 1000, time.Hour, false), TermsRequest{
		Increment: dur(time.Minute), Buffer: dur(2 * time.Minute),
	})
	h.eventually(func() bool { return h.view(id).Payments == 3 },
		"three payments fill the buffer")
	require.Positive(t, changes.Load())

	subs, err := b.Subscriptions(context.Background())
	require.NoError(t, err)
	require.Len(t, subs, 1)
	require.Equal(t, start.Add(3*time.Minute), subs[0].PaidUntil)
	require.EqualValues(t, 1000, subs[0].PriceMsatPerSec)
	require.EqualValues(t, 3, subs[0].Payments)
	// Today's spend is what the three payments committed.
	require.EqualValues(t, subs[0].SentMsat+subs[0].FeesMsat+
		subs[0].ReservedMsat, subs[0].TodayMsat)
	days, err := b.SpendPerDay(context.Background(), 3)
	require.NoError(t, err)
	require.Len(t, days, 3)
	require.Equal(t, subs[0].TodayMsat, days[2].Msat)

	before := changes.Load()
	require.NoError(t, b.Apply(context.Background(), subs[0].ID, "pause"))
	require.Greater(t, changes.Load(), before)
	subs, err = b.Subscriptions(context.Background())
	require.NoError(t, err)
	require.Equal(t, StatePaused, subs[0].State)
	require.True(t, b.Health().Connected)
}
