package tlv

import (
	"math"
	"math/bits"
	"time"

	"github.com/lightningnetwork/lnd/lnwire"
)

// SecondsForAmount converts a settled payment into paid service time, the
// one piece of money arithmetic the sender (to size payments) and the receiver
// (to credit them) must agree on exactly.
//
// The whole of amt plus the remainder carried from earlier payments is
// divided by the price: secs = (amt+remainder) / pricePerSec and newRemainder
// = (amt+remainder) % pricePerSec. Nothing is rounded away; the msat that do
// not buy a whole second are carried to the next payment. Because the
// remainder is kept in msat, it stays meaningful if the price changes between
// payments (a remainder larger than the new price simply buys seconds).
//
// The function is pure and never overflows or panics:
//   - amt+remainder is summed in 128 bits, so it cannot wrap;
//   - pricePerSec == 0 (never valid in an offer) buys nothing: secs is 0 and
//     the sum is carried whole, saturating at math.MaxUint64;
//   - with pricePerSec == 1 a sum above math.MaxUint64 (more msat than
//     8 times all bitcoin that will ever exist) saturates secs at
//     math.MaxUint64 with remainder 0.
func SecondsForAmount(amt, remainder,
	pricePerSec lnwire.MilliSatoshi) (uint64, lnwire.MilliSatoshi) {

	lo, hi := bits.Add64(uint64(amt), uint64(remainder), 0)

	if pricePerSec == 0 {
		if hi != 0 {
			return 0, lnwire.MilliSatoshi(math.MaxUint64)
		}

		return 0, lnwire.MilliSatoshi(lo)
	}

	// bits.Div64 needs hi < divisor; hi is 0 or 1, so only a price of 1
	// with an overflowing sum is out of range.
	if hi >= uint64(pricePerSec) {
		return math.MaxUint64, 0
	}

	secs, rem := bits.Div64(hi, lo, uint64(pricePerSec))

	return secs, lnwire.MilliSatoshi(rem)
}

// CreditStart returns where the paid time bought by a payment made at now
// begins, for a subscription whose paid time ends (or ended) at paidUntil
// and whose provider serves grace past it. It is the rule both sides must
// share (docs/protocol.md, "Crediting time"):
//   - while now is before paidUntil+grace (paid ahead, or inside grace), the
//     credit starts at paidUntil: time paid ahead is kept, and grace the
//     payer used is paid for when they come back within it, so that paying
//     one second just before each grace period ends cannot buy a whole
//     grace period of service per second paid;
//   - once grace is over, or if nothing was ever paid (paidUntil zero), it
//     starts at now: a lapsed subscription's grace was free.
//
// The receiver credits with it and the sender estimates its paid-until and
// schedules with it, so after any late payment the two agree to the second.
func CreditStart(paidUntil, now time.Time, grace time.Duration) time.Time {
	if paidUntil.IsZero() || !now.Before(paidUntil.Add(grace)) {
		return now
	}

	return paidUntil
}

// PaidUntilAfter returns the end of paid time after secs whole seconds were
// credited at now: CreditStart(paidUntil, now, grace) + secs. A payment that
// buys no whole second (its msat only join the remainder) leaves an
// existing paid-until where it is, so that it cannot move a lapsed
// subscription's end of paid time, and with it the grace period, forward to
// now.
func PaidUntilAfter(paidUntil, now time.Time, grace time.Duration,
	secs uint64) time.Time {

	if secs == 0 {
		// No whole second bought: paid time doesn't move (and a
		// subscription never paid keeps no paid time at all).
		return paidUntil
	}

	return CreditStart(paidUntil, now, grace).Add(
		time.Duration(secs) * time.Second)
}
