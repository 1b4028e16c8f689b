package core

import (
	"math"
	"time"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
)

// Credit is the effect one payment would have on a subscription.
type Credit struct {
	// Seconds is the paid time granted.
	Seconds uint64
	// Remainder is the msat carried to the next payment.
	Remainder lnwire.MilliSatoshi
	// PaidUntil is the new end of paid time.
	PaidUntil time.Time
}

// CreditFor computes what amt buys for sub at now, without changing sub.
// A payment while active or past due extends from the old paid-until (so the
// grace period used is paid for); a pending or expired subscription starts
// from now. ok is false when the result would hold more than MaxPrepay of
// paid time ahead of now (or could not be represented at all), in which
// case the payment must be refused.
func CreditFor(sub *store.ReceiverSubscription, amt lnwire.MilliSatoshi,
	now time.Time) (Credit, bool) {

	secs, rem := tlv.SecondsForAmount(amt, sub.Remainder, sub.Terms.RatePerSecond)

	base := now
	if (sub.State == store.SubActive || sub.State == store.SubPastDue) &&
		!sub.PaidUntil.IsZero() {

		base = sub.PaidUntil
	}

	limit := now.Add(sub.Terms.MaxPrepay)
	if sub.Terms.MaxPrepay <= 0 {
		// No limit configured: still never overflow time.Duration.
		limit = now.Add(100 * 365 * 24 * time.Hour)
	}
	if base.After(limit) {
		return Credit{}, false
	}
	room := uint64(limit.Sub(base) / time.Second)
	if secs > room || secs > math.MaxInt64/uint64(time.Second) {
		return Credit{}, false
	}

	return Credit{
		Seconds:   secs,
		Remainder: rem,
		PaidUntil: base.Add(time.Duration(secs) * time.Second),
	}, true
}

// Paid reports whether sub should be served at now: it is active or past due
// and now is before the end of paid time plus grace. It is computed from the
// clock rather than the stored state so that it is exact between runs of
// the expiry loop.
func Paid(sub *store.ReceiverSubscription, now time.Time) bool {
	if sub.State != store.SubActive && sub.State != store.SubPastDue {
		return false
	}
	return now.Before(sub.PaidUntil.Add(sub.Terms.Grace))
}
