package sender

import (
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/tlv"
	"github.com/stretchr/testify/require"
)

func TestResolveTerms(t *testing.T) {
	o, err := tlv.ParseOffer(testOffer(t, 10, 48*time.Hour, false))
	require.NoError(t, err)
	tests := []struct {
		name    string
		req     TermsRequest
		wantInc time.Duration
		wantBuf time.Duration
		wantErr string
	}{
		// 10 msat/s: one minute is 600 msat; raised to 1,000 sat.
		// The buffer is clamped to fit the offer's 48h max prepayment
		// with one payment (27h46m40s) and a minute of margin.
		{"default avoids tiny payments", TermsRequest{},
			100_000 * time.Second, 72740 * time.Second, ""},
		{"mobile", TermsRequest{Preset: "mobile"},
			100_000 * time.Second, 72740 * time.Second, ""},
		{"bike", TermsRequest{Preset: "bike"},
			100_000 * time.Second, 15 * time.Minute, ""},
		{"explicit small increment", TermsRequest{
			Increment: dur(time.Minute)}, time.Minute, time.Minute, ""},
		{"unknown preset", TermsRequest{Preset: "boat"}, 0, 0, `"boat"`},
		{"fractional increment", TermsRequest{
			Increment: dur(1500 * time.Millisecond)}, 0, 0, "whole seconds"},
		{"increment above max prepay", TermsRequest{
			Increment: dur(72 * time.Hour)}, 0, 0, "max prepayment"},
		{"buffer above max prepay", TermsRequest{
			Increment: dur(time.Hour), Buffer: dur(48 * time.Hour)},
			0, 0, "exceeds the offer's max prepayment"},
		{"price above max", TermsRequest{MaxPrice: msat(9)}, 0, 0,
			"above max_price"},
		{"zero fee limit", TermsRequest{FeeLimit: msat(0)}, 0, 0,
			"fee_limit"},
		{"cap below one payment", TermsRequest{
			Increment: dur(time.Hour), MaxTotal: msat(1000)}, 0, 0,
			"max_total_msat"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveTerms(o, tc.req, nil)
			if tc.wantErr != "" {
				require.ErrorIs(t, err, ErrBadTerms)
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantInc, got.Increment)
			require.Equal(t, tc.wantBuf, got.Buffer)
			require.NotZero(t, got.MaxPerDay)
		})
	}
}

func TestAmountsAndFees(t *testing.T) {
	tests := []struct {
		price lnwire.MilliSatoshi
		inc   time.Duration
		want  lnwire.MilliSatoshi
	}{
		{1000, time.Minute, 60_000},
		{1, time.Minute, 1000},    // rounded up to one sat
		{1500, time.Second, 2000}, // 1.5 sat -> 2 sat
		{17, time.Hour, 62_000},   // 61.2 sat -> 62 sat
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, PaymentAmount(tc.price, tc.inc))
	}
	require.Equal(t, lnwire.MilliSatoshi(600), MaxFee(60_000, 10_000, 1_000_000))
	require.Equal(t, lnwire.MilliSatoshi(500), MaxFee(60_000, 10_000, 500))
}
