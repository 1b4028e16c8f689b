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
// The bought time starts at tlv.CreditStart(paid-until, now, grace), the
// rule the sender estimates with: paid time ahead is extended, grace used by
// a payer who comes back within it is paid for, and the grace of a
// subscription that lapsed beyond it is free. ok is false when the result would hold more than MaxPrepay of
// paid time ahead of now (or could not be represented at all), in which
// case the payment must be refused.
func CreditFor(sub *store.ReceiverSubscription, amt lnwire.MilliSatoshi,
	now time.Time) (Credit, bool) {

	base := tlv.CreditStart(sub.PaidUntil, now, sub.Terms.Grace)

	limit := now.Add(sub.Terms.MaxPrepay)
	if sub.Terms.MaxPrepay <= 0 {
		// No limit configured: still never overflow time.Duration.
		limit = now.Add(100 * 365 * 24 * time.Hour)
	}
	if base.After(limit) {
		return Credit{}, false
	}
	c := creditAt(sub.PaidUntil, sub.Remainder, sub.Terms.Grace,
		sub.Terms.RatePerSecond, amt, now)
	room := uint64(limit.Sub(base) / time.Second)
	if c.Seconds > room || c.Seconds > math.MaxInt64/uint64(time.Second) {
		return Credit{}, false
	}

	return c, true
}

// creditAt is the credit arithmetic alone: what amt buys at rate, received
// at now, on top of paidUntil and remainder. Apply credits with it and
// Reverse re-applies later payments with it, each at its own rate and time.
func creditAt(paidUntil time.Time, remainder lnwire.MilliSatoshi,
	grace time.Duration, rate, amt lnwire.MilliSatoshi,
	now time.Time) Credit {

	secs, rem := tlv.SecondsForAmount(amt, remainder, rate)
	if secs > math.MaxInt64/uint64(time.Second) {
		// Only a reversal replaying a payment CreditFor accepted
		// gets here, and CreditFor never accepts this much.
		secs = math.MaxInt64 / uint64(time.Second)
	}

	return Credit{
		Seconds:   secs,
		Remainder: rem,
		PaidUntil: tlv.PaidUntilAfter(paidUntil, now, grace, secs),
	}
}

// stateAfterCredit is the state a subscription in state moves to when a
// credit at now ends its paid time at paidUntil: a credit that buys no
// time ahead of now (only remainder) leaves it where it is.
func stateAfterCredit(state store.SubState, paidUntil,
	now time.Time) (store.SubState, store.EventType, error) {

	if !paidUntil.After(now) {
		return state, 0, nil
	}
	return Next(state, TrigPayment)
}

// agedState is the state Age would give a subscription in state, with paid
// time ending at paidUntil, at now.
func agedState(state store.SubState, paidUntil time.Time,
	grace time.Duration, now time.Time) store.SubState {

	switch {
	case state != store.SubActive && state != store.SubPastDue:
		return state
	case !now.Before(paidUntil.Add(grace)):
		return store.SubExpired
	case !now.Before(paidUntil):
		return store.SubPastDue
	}
	return state
}

// Paid reports whether sub should be served at now. An active or past-due
// subscription is served until paid time plus grace ends. A cancelled one,
// by either side, is served until its paid time ends, with no grace: a
// cancel stops future payments, it does not take back what was paid for
// (like a cancel at period end). Paid is computed from the clock rather than
// the stored state so that it is exact between runs of the expiry loop.
func Paid(sub *store.ReceiverSubscription, now time.Time) bool {
	switch {
	case Cancelled(sub.State):
		return now.Before(sub.PaidUntil)
	case sub.State == store.SubActive || sub.State == store.SubPastDue:
		return now.Before(sub.PaidUntil.Add(sub.Terms.Grace))
	}
	return false
}

// EndsAt returns when a cancelled subscription's service ends: at the end
// of its paid time, or at the cancel if paid time had already ended then.
// It is zero for a subscription that is not cancelled.
func EndsAt(sub *store.ReceiverSubscription) time.Time {
	if !Cancelled(sub.State) {
		return time.Time{}
	}
	if sub.PaidUntil.After(sub.CancelledAt) {
		return sub.PaidUntil
	}
	return sub.CancelledAt
}
