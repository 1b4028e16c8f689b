// Package core is the receiver's domain logic: the subscription state
// machine, the money-to-time arithmetic and the decision whether a payment is
// credited or refused. It knows nothing about HTTP, flags or how lnd is
// reached; it works on a store.ReceiverTx so that every decision is committed
// atomically with its ledger entry and its events.
package core

import (
	"errors"
	"fmt"

	"github.com/satstream/satstream/store"
)

// ErrTransition is returned when a subscription is asked to make a move the
// transition table does not allow.
var ErrTransition = errors.New("transition not allowed")

// Trigger is something that happens to a subscription.
type Trigger uint8

const (
	// TrigPayment is a credited payment.
	TrigPayment Trigger = iota + 1
	// TrigPaidTimeOver fires when paid time ends and a grace period starts.
	TrigPaidTimeOver
	// TrigGraceOver fires when paid time and grace are both over.
	TrigGraceOver
	// TrigProviderCancel is a cancel through the provider's API.
	TrigProviderCancel
	// TrigPayerCancel is a cancel message from the payer (protocol).
	TrigPayerCancel
)

// String names the trigger for logs and errors.
func (t Trigger) String() string {
	switch t {
	case TrigPayment:
		return "payment"
	case TrigPaidTimeOver:
		return "paid_time_over"
	case TrigGraceOver:
		return "grace_over"
	case TrigProviderCancel:
		return "provider_cancel"
	case TrigPayerCancel:
		return "payer_cancel"
	}
	return fmt.Sprintf("Trigger(%d)", uint8(t))
}

// transition is one row of the table: the new state and the event that
// reports the move.
type transition struct {
	to    store.SubState
	event store.EventType
}

// Transitions is the whole subscription lifecycle in one place. A missing
// entry is a move that is not allowed. Cancelled states are final.
var transitions = map[store.SubState]map[Trigger]transition{
	store.SubPending: {
		TrigPayment:        {store.SubActive, store.EventSubscriptionActivated},
		TrigProviderCancel: {store.SubCancelledByProvider, store.EventSubscriptionCancelled},
		TrigPayerCancel:    {store.SubCancelledByPayer, store.EventSubscriptionCancelled},
	},
	store.SubActive: {
		TrigPayment:        {store.SubActive, 0},
		TrigPaidTimeOver:   {store.SubPastDue, store.EventSubscriptionPastDue},
		TrigGraceOver:      {store.SubExpired, store.EventSubscriptionExpired},
		TrigProviderCancel: {store.SubCancelledByProvider, store.EventSubscriptionCancelled},
		TrigPayerCancel:    {store.SubCancelledByPayer, store.EventSubscriptionCancelled},
	},
	store.SubPastDue: {
		TrigPayment:        {store.SubActive, store.EventSubscriptionReactivated},
		TrigGraceOver:      {store.SubExpired, store.EventSubscriptionExpired},
		TrigProviderCancel: {store.SubCancelledByProvider, store.EventSubscriptionCancelled},
		TrigPayerCancel:    {store.SubCancelledByPayer, store.EventSubscriptionCancelled},
	},
	store.SubExpired: {
		TrigPayment:        {store.SubActive, store.EventSubscriptionReactivated},
		TrigProviderCancel: {store.SubCancelledByProvider, store.EventSubscriptionCancelled},
		TrigPayerCancel:    {store.SubCancelledByPayer, store.EventSubscriptionCancelled},
	},
	store.SubCancelledByProvider: {},
	store.SubCancelledByPayer:    {},
}

// Next returns the state a subscription in state from moves to on trig and
// the event type that reports it (0: the move is silent), or ErrTransition.
func Next(from store.SubState, trig Trigger) (store.SubState, store.EventType, error) {
	row, ok := transitions[from]
	if !ok {
		return 0, 0, fmt.Errorf("%w: unknown state %v", ErrTransition, from)
	}
	t, ok := row[trig]
	if !ok {
		return 0, 0, fmt.Errorf("%w: %v on %v", ErrTransition, from, trig)
	}
	return t.to, t.event, nil
}

// Cancelled reports whether the state is one of the final cancelled states.
func Cancelled(s store.SubState) bool {
	return s == store.SubCancelledByProvider || s == store.SubCancelledByPayer
}
