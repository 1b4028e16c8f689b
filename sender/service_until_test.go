package sender

import (
	"testing"
	"time"

	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// TestCancelledViewDidNotSayUntilWhen reproduces the payer's side of issue
// 10 item 14: after the receiver acknowledged a cancel the payer could not
// see until when the provider serves the time already paid for.
func TestCancelledViewDidNotSayUntilWhen(t *testing.T) {
	t.Parallel()
	paid := time.Date(2030, 1, 1, 12, 2, 50, 0, time.UTC)
	tests := []struct {
		name  string
		sub   store.SenderSubscription
		until string
	}{
		{"active", store.SenderSubscription{State: store.SenderActive,
			PaidUntil: paid}, ""},
		{"cancel not yet acknowledged", store.SenderSubscription{
			State: store.SenderCancelled, CancelPending: true,
			PaidUntil: paid}, ""},
		{"cancel acknowledged", store.SenderSubscription{
			State: store.SenderCancelled, PaidUntil: paid},
			"2030-01-01T12:02:50Z"},
		{"cancelled, never paid, before schema 4", store.SenderSubscription{
			State: store.SenderCancelled}, ""},
		{"cancelled with paid time left", store.SenderSubscription{
			State: store.SenderCancelled, PaidUntil: paid,
			CancelledAt: paid.Add(-time.Minute)},
			"2030-01-01T12:02:50Z"},
		// The receiver's ends_at is max(paid_until, cancel time): the
		// sender showed the lapsed paid_until instead.
		{"cancelled after paid time lapsed", store.SenderSubscription{
			State: store.SenderCancelled, PaidUntil: paid,
			CancelledAt: paid.Add(30 * time.Second)},
			"2030-01-01T12:03:20Z"},
		{"cancelled, never paid", store.SenderSubscription{
			State: store.SenderCancelled, CancelledAt: paid},
			"2030-01-01T12:02:50Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.until, serviceUntil(&tc.sub))
		})
	}
}
