package store

import (
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/stretchr/testify/require"
)

// TestSenderFieldsRoundTrip checks that the fields the sender daemon added
// at the end of its records survive encoding.
func TestSenderFieldsRoundTrip(t *testing.T) {
	at := func(s int64) time.Time { return time.Unix(1_700_000_000+s, 0).UTC() } // shadows helper
	tests := []struct {
		name  string
		in    recorder
		fresh func() recorder
	}{
		{"subscription", &SenderSubscription{ID: subID(1), State: SenderPaused,
			OfferString: "satoffer1xyz", Increment: time.Hour,
			Buffer: 24 * time.Hour, MaxPrice: 7, FeeLimitPPM: 5000,
			PaidUntil: at(10), Remainder: 3, Reserved: 1_005_000,
			Reason: "paused by payer", ResumeAt: at(20), Refusals: 2,
			CancelPending: true, Revision: 9},
			func() recorder { return &SenderSubscription{} }},
		{"attempt", &Attempt{SubID: subID(1), Seq: 4, Hash: hashOf(4),
			State: AttemptCreated, MaxFee: 5000, Day: 19000, Cancel: true,
			Tries: 3, Destination: [33]byte{2, 9, 9}},
			func() recorder { return &Attempt{} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := encodeRecord(tc.in)
			require.NoError(t, err)
			out := tc.fresh()
			require.NoError(t, decodeRecord(b, out))
			require.Equal(t, tc.in, out)
		})
	}
}

// TestReleaseSpend checks that a reservation can be given back, and that
// giving back more than was reserved is refused rather than wrapped.
func TestReleaseSpend(t *testing.T) {
	db, _ := openTestDB(t)
	ss, ctx := db.Sender(), testCtx(t)
	day := Day(19000)
	require.NoError(t, ss.Update(ctx, func(tx SenderTx) error {
		_, err := tx.AddSpend(subID(1), day, 10_000)
		require.NoError(t, err)
		total, err := tx.ReleaseSpend(subID(1), day, 4_000)
		require.NoError(t, err)
		require.Equal(t, lnwire.MilliSatoshi(6_000), total)
		_, err = tx.ReleaseSpend(subID(1), day, 6_001)
		require.ErrorIs(t, err, ErrInvalid)
		return nil
	}))
}
