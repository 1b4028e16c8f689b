package tlv

import (
	"math"
	"math/big"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/stretchr/testify/require"
)

// TestSecondsForAmount covers ordinary, huge and tiny values against a
// big.Int reference.
func TestSecondsForAmount(t *testing.T) {
	t.Parallel()

	const maxMsat = lnwire.MilliSatoshi(math.MaxUint64)
	tests := []struct {
		name                  string
		amt, remainder, price lnwire.MilliSatoshi
		wantSecs              uint64
		wantRemainder         lnwire.MilliSatoshi
	}{
		{"exact", 60_000, 0, 1000, 60, 0},
		{"remainder_kept", 1_500, 0, 1000, 1, 500},
		{"remainder_used", 1_500, 500, 1000, 2, 0},
		{"below_one_second", 999, 0, 1000, 0, 999},
		{"zero_amount", 0, 7, 1000, 0, 7},
		{"tiny_rate", 1, 0, 1, 1, 0},
		{"remainder_above_new_price", 0, 2500, 1000, 2, 500},
		{"all_bitcoin", 21_000_000 * 100_000_000 * 1000, 0, 1,
			21_000_000 * 100_000_000 * 1000, 0},
		{"huge_amount_tiny_rate", maxMsat, 0, 1, math.MaxUint64, 0},
		// Quotient and remainder of (2^65 - 2) / 3, from big.Int below.
		{"sum_overflows_64_bits", maxMsat, maxMsat, 3,
			12297829382473034410, 0},
		{"sum_overflows_rate_1", maxMsat, 1, 1, math.MaxUint64, 0},
		{"huge_rate", 10, 0, maxMsat, 0, 10},
		{"zero_price", 10, 5, 0, 0, 15},
		{"zero_price_overflow", maxMsat, 5, 0, 0, maxMsat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			secs, rem := SecondsForAmount(tc.amt, tc.remainder, tc.price)

			require.Equal(t, tc.wantSecs, secs)
			require.Equal(t, tc.wantRemainder, rem)

			// Cross-check with exact arithmetic where it fits.
			if tc.price == 0 {
				return
			}
			sum := new(big.Int).Add(
				new(big.Int).SetUint64(uint64(tc.amt)),
				new(big.Int).SetUint64(uint64(tc.remainder)))
			q, r := new(big.Int).QuoRem(sum,
				new(big.Int).SetUint64(uint64(tc.price)),
				new(big.Int))
			if q.IsUint64() {
				require.Equal(t, q.Uint64(), secs)
				require.Equal(t, r.Uint64(), uint64(rem))
			}
		})
	}
}

// TestSecondsForAmountConserves checks that no msat is ever lost over a run
// of payments: time bought plus remainder always equals money paid.
func TestSecondsForAmountConserves(t *testing.T) {
	t.Parallel()

	var (
		price = lnwire.MilliSatoshi(7)
		rem   lnwire.MilliSatoshi
		secs  uint64
		paid  uint64
	)
	for amt := lnwire.MilliSatoshi(1); amt < 2000; amt += 13 {
		s, r := SecondsForAmount(amt, rem, price)
		secs += s
		rem = r
		paid += uint64(amt)
		require.Less(t, rem, price)
		require.Equal(t, paid, secs*uint64(price)+uint64(rem))
	}
}

// TestCreditStart pins the shared rule of where bought time starts: at the
// old end of paid time while now is before it or inside grace (grace used is
// paid for), at now once grace is over or if nothing was paid.
func TestCreditStart(t *testing.T) {
	t.Parallel()

	const grace = time.Minute
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name            string
		paidUntil, want time.Time
	}{
		{"never paid", time.Time{}, now},
		{"paid ahead", now.Add(time.Minute), now.Add(time.Minute)},
		{"ends now", now, now},
		{"inside grace", now.Add(-59 * time.Second), now.Add(-59 * time.Second)},
		{"grace ends now", now.Add(-grace), now},
		{"beyond grace", now.Add(-2 * grace), now},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, CreditStart(tc.paidUntil, now, grace))
		})
	}
}

// TestGraceGamingBuysFreeService reproduces the review's money loss: with
// credit start max(paid_until, now), paying 1 s each time at paid_until+59 s
// (grace 60 s) bought 60 s of service per second paid: ten payments moved
// paid_until 541 s past the start. Grace used is paid for now: 10 s.
func TestGraceGamingBuysFreeService(t *testing.T) {
	t.Parallel()

	const grace = 60 * time.Second
	start := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	paid := PaidUntilAfter(time.Time{}, start, grace, 1)
	for i := 1; i < 10; i++ {
		now := paid.Add(59 * time.Second)
		paid = PaidUntilAfter(paid, now, grace, 1)
	}
	require.Equal(t, 10*time.Second, paid.Sub(start))
}

// TestPaidUntilAfter: seconds extend from CreditStart; a credit of no whole
// second leaves an existing paid-until alone.
func TestPaidUntilAfter(t *testing.T) {
	t.Parallel()

	const grace = 30 * time.Second
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name            string
		paidUntil, want time.Time
		secs            uint64
	}{
		{"never paid", time.Time{}, now.Add(60 * time.Second), 60},
		{"never paid, no second", time.Time{}, time.Time{}, 0},
		{"paid ahead", now.Add(time.Minute), now.Add(2 * time.Minute), 60},
		{"inside grace", now.Add(-10 * time.Second), now.Add(50 * time.Second), 60},
		{"beyond grace", now.Add(-time.Minute), now.Add(time.Minute), 60},
		{"beyond grace, no second", now.Add(-time.Minute), now.Add(-time.Minute), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, PaidUntilAfter(tc.paidUntil, now,
				grace, tc.secs))
		})
	}
}
