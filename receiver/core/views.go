package core

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
)

// TermsView is the JSON form of store.Terms used by the API and webhooks.
// It has no increment: the receiver accepts any amount from the minimum up
// (a step the offer cannot carry would refuse every payment of a sender).
type TermsView struct {
	PriceMsatPerSec uint64 `json:"price_msat_per_sec"`
	MinPaymentMsat  uint64 `json:"min_payment_msat"`
	GracePeriodSec  uint64 `json:"grace_period_sec"`
	MaxPrepaySec    uint64 `json:"max_prepay_sec"`
}

// NewTermsView converts stored terms to their JSON form.
func NewTermsView(t store.Terms) TermsView {
	return TermsView{
		PriceMsatPerSec: uint64(t.RatePerSecond),
		MinPaymentMsat:  uint64(t.MinPayment),
		GracePeriodSec:  uint64(t.Grace / time.Second),
		MaxPrepaySec:    uint64(t.MaxPrepay / time.Second),
	}
}

// SubscriptionView is the JSON form of a subscription. It names the
// subscription by its public id and never holds the secret subscription
// id (which authorises payments and cancels): it is what read-only
// callers, the event list and webhooks see.
type SubscriptionView struct {
	// ID is the public id (tlv.PublicID, "sub_...").
	ID         string     `json:"id"`
	PlanID     string     `json:"plan_id"`
	State      string     `json:"state"`
	Paid       bool       `json:"paid"`
	PaidUntil  *time.Time `json:"paid_until,omitempty"`
	GraceUntil *time.Time `json:"grace_until,omitempty"`
	// EndsAt is set once the subscription is cancelled: service ends
	// then (paid_until, or the cancel time if that was later).
	EndsAt        *time.Time `json:"ends_at,omitempty"`
	Terms         TermsView  `json:"terms"`
	RemainderMsat uint64     `json:"remainder_msat"`
	LastSequence  uint64     `json:"last_sequence"`
	TotalPaidMsat uint64     `json:"total_paid_msat"`
	TotalSeconds  uint64     `json:"total_seconds"`
	Payments      uint64     `json:"payments"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// NewSubscriptionView renders sub as seen at now.
func NewSubscriptionView(sub *store.ReceiverSubscription, now time.Time) SubscriptionView {
	v := SubscriptionView{
		ID:            sub.ID.PublicID().String(),
		PlanID:        string(sub.PlanID),
		State:         sub.State.String(),
		Paid:          Paid(sub, now),
		Terms:         NewTermsView(sub.Terms),
		RemainderMsat: uint64(sub.Remainder),
		LastSequence:  sub.LastSeq,
		TotalPaidMsat: uint64(sub.TotalPaid),
		TotalSeconds:  sub.TotalSeconds,
		Payments:      sub.Payments,
		CreatedAt:     sub.CreatedAt.UTC(),
		UpdatedAt:     sub.UpdatedAt.UTC(),
	}
	v.PaidUntil, v.GraceUntil, v.EndsAt = PaidTimes(sub)
	return v
}

// PaidTimes are a subscription's paid_until, grace_until and ends_at as
// the API shows them (UTC, nil when unset): grace_until only while not
// cancelled, ends_at only once cancelled.
func PaidTimes(sub *store.ReceiverSubscription) (paidUntil, graceUntil,
	endsAt *time.Time) {

	if !sub.PaidUntil.IsZero() {
		pu := sub.PaidUntil.UTC()
		paidUntil = &pu
		if !Cancelled(sub.State) {
			gu := pu.Add(sub.Terms.Grace)
			graceUntil = &gu
		}
	}
	if end := EndsAt(sub); !end.IsZero() {
		end = end.UTC()
		endsAt = &end
	}
	return paidUntil, graceUntil, endsAt
}

// PaymentView is the JSON form of a ledger entry. SubscriptionID is the
// public id; an entry for an unknown subscription (junk, or someone's
// secret sent to the wrong node) shows the public id of what was sent.
type PaymentView struct {
	Hash           string    `json:"payment_hash"`
	SubscriptionID string    `json:"subscription_id,omitempty"`
	Sequence       uint64    `json:"sequence"`
	AmountMsat     uint64    `json:"amount_msat"`
	Seconds        uint64    `json:"seconds"`
	State          string    `json:"state"`
	Reason         string    `json:"reason,omitempty"`
	Settled        bool      `json:"settled"`
	ReceivedAt     time.Time `json:"received_at"`
}

// NewPaymentView renders a ledger entry.
func NewPaymentView(p *store.Payment) PaymentView {
	v := PaymentView{
		Hash:       hex.EncodeToString(p.Hash[:]),
		Sequence:   p.Seq,
		AmountMsat: uint64(p.Amount),
		Seconds:    p.Seconds,
		State:      p.State.String(),
		Reason:     redact(p.Reason, p.SubID),
		Settled:    p.SettleIndex != 0,
		ReceivedAt: p.ReceivedAt.UTC(),
	}
	if !p.SubID.IsZero() {
		v.SubscriptionID = p.SubID.PublicID().String()
	}
	return v
}

// redact replaces the secret id in text (a refusal reason written by an
// older version named the subscription by its secret) with its public id.
// A row of an unknown subscription has no id, and older versions named
// the secret in its reason all the same, so every other standalone 32-hex
// run is redacted too (the migration to schema 6 rewrote stored reasons;
// this is the second line of defence).
func redact(text string, id store.SubID) string {
	if !id.IsZero() {
		text = strings.ReplaceAll(text, id.Hex(),
			id.PublicID().String())
	}
	return tlv.RedactSecrets(text)
}

// eventPayload is the data part of an event: the subscription after the
// change and, for payment events, the payment.
type eventPayload struct {
	Subscription *SubscriptionView `json:"subscription,omitempty"`
	Payment      *PaymentView      `json:"payment,omitempty"`
	Reason       string            `json:"reason,omitempty"`
	// EndsAt, on subscription.cancelled, is when service ends.
	EndsAt *time.Time `json:"ends_at,omitempty"`
}

// AppendEvent queues an event of type typ about sub (and p, if not nil) in
// tx, so the event is committed with the change it reports.
func AppendEvent(tx store.ReceiverTx, typ store.EventType,
	sub *store.ReceiverSubscription, p *store.Payment, reason string,
	now time.Time) error {

	var pl eventPayload
	var subID store.SubID
	if sub != nil {
		v := NewSubscriptionView(sub, now)
		pl.Subscription = &v
		subID = sub.ID
		if typ == store.EventSubscriptionCancelled {
			pl.EndsAt = v.EndsAt
		}
	}
	if p != nil {
		v := NewPaymentView(p)
		pl.Payment = &v
		if subID.IsZero() {
			subID = p.SubID
		}
	}
	pl.Reason = redact(reason, subID)
	body, err := json.Marshal(pl)
	if err != nil {
		return err
	}
	return tx.AppendEvent(&store.Event{
		SubID:       subID,
		Type:        typ,
		Payload:     body,
		CreatedAt:   now,
		NextAttempt: now,
	})
}
