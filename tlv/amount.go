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
// begins: the later of the old end of paid time and now. It is the rule both
// sides must share (docs/protocol.md, "Crediting time"), whatever the
// subscription's state: time that lapsed before a payment, including any
// grace period the provider extended, is never paid for, and time already
// paid ahead is never lost. A zero paidUntil (never paid) starts at now.
//
// The receiver credits with it and the sender estimates its paid-until with
// it, so after any late payment the two agree to the second.
func CreditStart(paidUntil, now time.Time) time.Time {
	if paidUntil.After(now) {
		return paidUntil
	}

	return now
}

// PaidUntilAfter returns the end of paid time after secs whole seconds were
// credited at now: CreditStart(paidUntil, now) + secs. A payment that buys
// no whole second (its msat only join the remainder) leaves an existing
// paid-until where it is, so that it cannot move a lapsed subscription's
// end of paid time, and with it the grace period, forward to now.
func PaidUntilAfter(paidUntil, now time.Time, secs uint64) time.Time {
	if secs == 0 && !paidUntil.IsZero() {
		return paidUntil
	}

	return CreditStart(paidUntil, now).Add(time.Duration(secs) * time.Second)
}
