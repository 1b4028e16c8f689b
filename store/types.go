package store

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"time"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/tlv"
)

// SubID is the 16-byte subscription id carried in every satstream payment.
// It is declared here rather than borrowed from the wire package so the
// store's key layout depends on nothing but itself. It is the payer's
// bearer secret (it authorises payments into and cancels of the
// subscription): whatever is shown to people or other programs names the
// subscription by its PublicID instead.
type SubID [16]byte

// String renders the subscription's public id ("sub_..."), never the
// secret, so an id that ends up in a log line, an error message or an API
// body through %v or %s gives nothing away. Hex is the secret's form.
func (id SubID) String() string { return id.PublicID().String() }

// Hex renders the secret id itself (32 hex characters), for the few places
// that must hand it to the payer: the offer, the response that creates a
// subscription, and the payer's own admin API.
func (id SubID) Hex() string { return hex.EncodeToString(id[:]) }

// PublicID derives the subscription's public id (tlv.PublicID): the name
// APIs, webhooks and logs use, computed the same way by payer and provider.
func (id SubID) PublicID() tlv.PublicID { return tlv.SubscriptionID(id).PublicID() }

// IsZero reports the unset id, which is never a valid key.
func (id SubID) IsZero() bool { return id == SubID{} }

// Hash is a 32-byte Lightning payment hash (sha256 of the preimage).
type Hash [32]byte

// String renders the hash as hex for logs and error messages.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Preimage is the 32-byte secret whose sha256 is the payment hash. The
// sender keeps it because keysend needs it in the onion and a retry must
// reuse it, never make a new one for the same sequence.
type Preimage [32]byte

// PlanID names a provider's plan ("basic", "pro"). Plans are few and named
// by people, so a short string is clearer than a number.
type PlanID string

// maxPlanIDLen bounds plan ids so keys stay small.
const maxPlanIDLen = 64

// EventID numbers receiver events in the order they were queued, so webhook
// deliveries can resume after the last one delivered. It is internal
// ordering: consumers deduplicate by the event's random EventUID, which a
// restored or new ledger never hands out again.
type EventID uint64

// EventUID is an event's public id: 128 random bits, assigned when the
// event is queued (or by the schema 5 migration for older events) and
// never reused, unlike EventID, which a new or restored ledger counts
// again from where it starts.
type EventUID [16]byte

// String renders the event id as webhooks and the API show it.
func (u EventUID) String() string { return "evt_" + hex.EncodeToString(u[:]) }

// IsZero reports an unassigned event id.
func (u EventUID) IsZero() bool { return u == EventUID{} }

// NewEventUID returns a fresh random event id.
func NewEventUID() (EventUID, error) {
	var u EventUID
	if _, err := rand.Read(u[:]); err != nil {
		return u, fmt.Errorf("generate event id: %w", err)
	}
	return u, nil
}

// Day is a UTC calendar day counted from 1970-01-01, the unit of the
// sender's daily spending cap.
type Day uint32

// DayOf returns the UTC day that t falls on.
func DayOf(t time.Time) Day {
	return Day(t.UTC().Unix() / 86400)
}

// Start returns the first instant of the day, in UTC.
func (d Day) Start() time.Time {
	return time.Unix(int64(d)*86400, 0).UTC()
}

// SubState is the stored state of a receiver subscription. The numbers are
// written to disk and must never change; add new states with new numbers.
type SubState uint8

const (
	// SubPending is a subscription created but not yet paid.
	SubPending SubState = 1
	// SubActive has paid time left.
	SubActive SubState = 2
	// SubPastDue ran out of paid time and is within its grace period.
	SubPastDue SubState = 3
	// SubExpired ran out of paid time and grace; a payment may revive it.
	SubExpired SubState = 4
	// SubCancelledByProvider was ended by the provider.
	SubCancelledByProvider SubState = 5
	// SubCancelledByPayer was ended by the payer.
	SubCancelledByPayer SubState = 6
)

// String names the state for logs and APIs.
func (s SubState) String() string {
	switch s {
	case SubPending:
		return "pending"
	case SubActive:
		return "active"
	case SubPastDue:
		return "past_due"
	case SubExpired:
		return "expired"
	case SubCancelledByProvider:
		return "cancelled_by_provider"
	case SubCancelledByPayer:
		return "cancelled_by_payer"
	}
	return fmt.Sprintf("SubState(%d)", uint8(s))
}

func (s SubState) valid() bool { return s >= SubPending && s <= SubCancelledByPayer }

// watchesTime reports the states whose paid-until matters to the expiry scan;
// only these are kept in the paid-until index. A pending subscription has
// no paid time to age, so it is left out: otherwise every expiry tick would
// scan each one forever.
func (s SubState) watchesTime() bool {
	return s == SubActive || s == SubPastDue
}

// dueAt is when the expiry scan next has to look at s, its key in the
// due index: the end of paid time while active, the end of grace once
// past due (the only other time-driven edge). A pending subscription
// indexed by an older store is keyed by its paid time.
func (s *ReceiverSubscription) dueAt() time.Time {
	if s.State != SubPastDue || s.Terms.Grace <= 0 {
		return s.PaidUntil
	}
	due := s.PaidUntil.Add(s.Terms.Grace)
	if due.After(maxNanoTime) {
		// Past what a key holds (timeKey): the last key is
		// still after every real now.
		return maxNanoTime
	}
	return due
}

// maxNanoTime is the latest time Unix nanoseconds in an int64 hold.
var maxNanoTime = time.Unix(0, math.MaxInt64)

// mayBeIndexed reports the states a stored subscription may have an entry
// in the paid-until index for: those of watchesTime, and pending, which
// stores before schema version 4 indexed.
func (s SubState) mayBeIndexed() bool {
	return s == SubPending || s.watchesTime()
}

// PaymentState is the stored outcome of a payment the receiver saw. The
// numbers are on disk and never change.
type PaymentState uint8

const (
	// PaymentCredited was settled and turned into paid time.
	PaymentCredited PaymentState = 1
	// PaymentRefused was rejected (cancelled back to the payer); Reason says
	// why.
	PaymentRefused PaymentState = 2
	// PaymentUnclaimed settled but could not be matched to a subscription.
	PaymentUnclaimed PaymentState = 3
)

// String names the state for logs and APIs.
func (s PaymentState) String() string {
	switch s {
	case PaymentCredited:
		return "credited"
	case PaymentRefused:
		return "refused"
	case PaymentUnclaimed:
		return "unclaimed"
	}
	return fmt.Sprintf("PaymentState(%d)", uint8(s))
}

func (s PaymentState) valid() bool { return s >= PaymentCredited && s <= PaymentUnclaimed }

// EventType is the stored kind of a receiver event (webhook). The numbers are
// on disk and never change.
type EventType uint16

const (
	// EventSubscriptionCreated is queued when a subscription is enrolled.
	EventSubscriptionCreated EventType = 1
	// EventSubscriptionActivated is queued on the first credit or a revival.
	EventSubscriptionActivated EventType = 2
	// EventPaymentReceived is queued for every credited payment.
	EventPaymentReceived EventType = 3
	// EventSubscriptionPastDue is queued when paid time runs out.
	EventSubscriptionPastDue EventType = 4
	// EventSubscriptionExpired is queued when the grace period ends.
	EventSubscriptionExpired EventType = 5
	// EventSubscriptionCancelled is queued when either side cancels.
	EventSubscriptionCancelled EventType = 6
	// EventPaymentRefused is queued when a payment is refused.
	EventPaymentRefused EventType = 7
	// EventSubscriptionReactivated is queued when a payment revives a
	// past-due or expired subscription.
	EventSubscriptionReactivated EventType = 8
	// EventPaymentReversed is queued when a credited payment's HTLC was
	// cancelled by lnd before it settled, so its credit was taken back.
	EventPaymentReversed EventType = 9
	// EventSubscriptionUpdated is queued when the provider changes a
	// subscription's terms.
	EventSubscriptionUpdated EventType = 10
)

// String names the event type the way webhook receivers expect.
func (t EventType) String() string {
	switch t {
	case EventSubscriptionCreated:
		return "subscription.created"
	case EventSubscriptionActivated:
		return "subscription.activated"
	case EventPaymentReceived:
		return "payment.received"
	case EventSubscriptionPastDue:
		return "subscription.past_due"
	case EventSubscriptionExpired:
		return "subscription.expired"
	case EventSubscriptionCancelled:
		return "subscription.cancelled"
	case EventPaymentRefused:
		return "payment.refused"
	case EventSubscriptionReactivated:
		return "subscription.reactivated"
	case EventPaymentReversed:
		return "payment.reversed"
	case EventSubscriptionUpdated:
		return "subscription.updated"
	}
	return fmt.Sprintf("EventType(%d)", uint16(t))
}

// SenderState is the stored state of a payer's subscription. The numbers
// are on disk and never change.
type SenderState uint8

const (
	// SenderActive streams payments.
	SenderActive SenderState = 1
	// SenderPaused was stopped by the payer and may resume.
	SenderPaused SenderState = 2
	// SenderCancelled was ended by the payer for good.
	SenderCancelled SenderState = 3
	// SenderRefused was ended because the receiver refused payments.
	SenderRefused SenderState = 4
	// SenderCapReached stopped because a spending limit was hit.
	SenderCapReached SenderState = 5
)

// String names the state for logs and APIs.
func (s SenderState) String() string {
	switch s {
	case SenderActive:
		return "active"
	case SenderPaused:
		return "paused"
	case SenderCancelled:
		return "cancelled"
	case SenderRefused:
		return "refused"
	case SenderCapReached:
		return "cap_reached"
	}
	return fmt.Sprintf("SenderState(%d)", uint8(s))
}

func (s SenderState) valid() bool { return s >= SenderActive && s <= SenderCapReached }

// AttemptState is the stored state of one payment attempt. The numbers are
// on disk and never change.
type AttemptState uint8

const (
	// AttemptCreated is written, with its preimage, before anything is sent.
	AttemptCreated AttemptState = 1
	// AttemptInFlight was handed to lnd; its outcome must be tracked.
	AttemptInFlight AttemptState = 2
	// AttemptSucceeded settled.
	AttemptSucceeded AttemptState = 3
	// AttemptFailed did not settle and may be retried under a new sequence.
	AttemptFailed AttemptState = 4
	// AttemptRefused was rejected by the receiver.
	AttemptRefused AttemptState = 5
)

// String names the state for logs and APIs.
func (s AttemptState) String() string {
	switch s {
	case AttemptCreated:
		return "created"
	case AttemptInFlight:
		return "in_flight"
	case AttemptSucceeded:
		return "succeeded"
	case AttemptFailed:
		return "failed"
	case AttemptRefused:
		return "refused"
	}
	return fmt.Sprintf("AttemptState(%d)", uint8(s))
}

func (s AttemptState) valid() bool { return s >= AttemptCreated && s <= AttemptRefused }

// Final reports whether the attempt's outcome is known; non-final attempts
// must be resolved with lnd after a restart.
func (s AttemptState) Final() bool {
	return s == AttemptSucceeded || s == AttemptFailed || s == AttemptRefused
}

// Terms are the prices and rules a provider charges under. A plan holds the
// defaults; a subscription holds its own copy so changing a plan never
// rewrites what existing payers agreed to.
type Terms struct {
	// RatePerSecond is the price of one second of access.
	RatePerSecond lnwire.MilliSatoshi
	// MinPayment is the smallest payment that is credited.
	MinPayment lnwire.MilliSatoshi
	// Increment is no longer used: it was a step payments above
	// MinPayment had to be a multiple of, which the offer never carried,
	// so no sender could know it. The field stays so old records decode;
	// it is ignored when read and never set.
	Increment lnwire.MilliSatoshi
	// Grace is how long after paid time ends access continues (past due).
	Grace time.Duration
	// MaxPrepay bounds how far ahead of now a payer may buy time.
	MaxPrepay time.Duration
}

// Plan is a provider's offer that payers enrol in.
type Plan struct {
	ID PlanID
	// Label is the human name shown to payers.
	Label string
	Terms Terms
	// OpenEnrolment lets an unknown subscription id enrol itself by paying,
	// instead of being created by the provider first.
	OpenEnrolment bool
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// DefaultIncrement is the paid time a sender buys per payment unless
	// the payer configures otherwise (the offer's default_increment_sec).
	DefaultIncrement time.Duration
}

// ReceiverSubscription is the provider's record of one payer's
// subscription: what it costs, what was paid and until when.
type ReceiverSubscription struct {
	ID     SubID
	PlanID PlanID
	// Terms are this subscription's own terms (copied from the plan at
	// enrolment, possibly overridden).
	Terms Terms
	State SubState
	// PaidUntil is the end of paid time.
	PaidUntil time.Time
	// Remainder is the msat left over after whole seconds were granted,
	// carried to the next payment.
	Remainder lnwire.MilliSatoshi
	// LastSeq is the highest payment sequence credited.
	LastSeq uint64
	// TotalPaid is the sum of credited payments.
	TotalPaid lnwire.MilliSatoshi
	// TotalSeconds is the sum of seconds granted.
	TotalSeconds uint64
	// Payments counts credited payments.
	Payments  uint64
	CreatedAt time.Time
	UpdatedAt time.Time
	// CancelledAt is when either side cancelled (zero: not cancelled).
	// A cancelled subscription is still served until its paid time ends,
	// max(PaidUntil, CancelledAt), with no grace.
	CancelledAt time.Time
	// CreditCount counts the credits ever made (reversals do not take it
	// back), numbering each payment's CreditNo.
	CreditCount uint64
}

// Payment is the receiver's ledger entry for one settled (or refused)
// payment, keyed by hash so a payment seen twice is credited once.
type Payment struct {
	Hash  Hash
	SubID SubID
	Seq   uint64
	// Amount is what actually settled, never what the payer claims.
	Amount lnwire.MilliSatoshi
	// Seconds is the paid time this payment granted.
	Seconds uint64
	// SettleIndex is lnd's settle index of the invoice, zero if none.
	SettleIndex uint64
	State       PaymentState
	// Reason explains a refusal or why a payment is unclaimed.
	Reason     string
	ReceivedAt time.Time
	// Rate is the price per second the payment was credited at, so a
	// credit can be reversed exactly even if the terms changed since.
	Rate lnwire.MilliSatoshi
	// BeforePaidUntil, BeforeRemainder and BeforeState are the
	// subscription's paid-until, remainder and state just before this
	// payment was credited, so a reversal can restore the subscription
	// as it was and re-apply the later credits on top. BeforeState is
	// zero in payments credited before schema version 4 (and in refused
	// ones): then they are unknown.
	BeforePaidUntil time.Time
	BeforeRemainder lnwire.MilliSatoshi
	BeforeState     SubState
	// CreditNo orders a subscription's credits: the subscription's
	// CreditCount after this credit (zero before schema version 4).
	CreditNo uint64
}

// Event is one notification queued for delivery (webhook), written in the
// same transaction as the change it reports so none is lost or invented.
type Event struct {
	// ID is assigned by AppendEvent.
	ID EventID
	// UID is the event's public id, assigned by AppendEvent if zero.
	UID   EventUID
	SubID SubID
	Type  EventType
	// Payload is the body to deliver (JSON), opaque to the store.
	Payload     []byte
	CreatedAt   time.Time
	Attempts    uint32
	NextAttempt time.Time
	LastError   string
	Delivered   bool
	DeliveredAt time.Time
	// FinishedAt lists the webhook endpoints the event was delivered or
	// given up at when it left the pending queue, so an endpoint added
	// later is not taken for one that has it (its delivered rows are
	// deleted then). Nil for an event finished before the list was kept.
	FinishedAt []EndpointID
}

// FinishedAtEndpoint tells whether a finished event was delivered or
// given up at ep; known is false for an event whose list was not kept
// (finished before it was, or never finished).
func (e *Event) FinishedAtEndpoint(ep EndpointID) (at, known bool) {
	if !e.Delivered || e.FinishedAt == nil {
		return false, false
	}
	for _, f := range e.FinishedAt {
		if f == ep {
			return true, true
		}
	}
	return false, true
}

// Offer is what the payer subscribed to: whom to pay and on what terms.
type Offer struct {
	// Destination is the provider node's public key.
	Destination [33]byte
	PlanID      PlanID
	Label       string
	Terms       Terms
}

// Limits cap what the sender will spend on one subscription; zero means no
// limit, except MaxFee where zero means no fee allowed.
type Limits struct {
	MaxPayment lnwire.MilliSatoshi
	MaxPerDay  lnwire.MilliSatoshi
	MaxTotal   lnwire.MilliSatoshi
	MaxFee     lnwire.MilliSatoshi
}

// SenderSubscription is the payer's record of one subscription.
type SenderSubscription struct {
	ID     SubID
	Offer  Offer
	Limits Limits
	State  SenderState
	// NextSeq is the sequence the next attempt will use; it only grows, so a
	// sequence is never used twice.
	NextSeq uint64
	// TotalSent is the sum of succeeded payment amounts.
	TotalSent lnwire.MilliSatoshi
	// TotalFees is the sum of routing fees of succeeded payments.
	TotalFees lnwire.MilliSatoshi
	// Payments counts succeeded payments.
	Payments  uint64
	CreatedAt time.Time
	UpdatedAt time.Time

	// OfferString is the offer exactly as the payer gave it; the sender
	// parses it again on load, so the wire ids (personal subscription id or
	// open-enrolment plan id) come from one source.
	OfferString string
	// Increment is the service time each payment buys.
	Increment time.Duration
	// Buffer is how far ahead of now the sender keeps the subscription
	// paid.
	Buffer time.Duration
	// MaxPrice is the highest price per second the payer accepts.
	MaxPrice lnwire.MilliSatoshi
	// FeeLimitPPM bounds each payment's routing fee relative to its
	// amount; Limits.MaxFee bounds it absolutely. Both apply.
	FeeLimitPPM uint32
	// PaidUntil is the sender's estimate of the end of paid time, advanced
	// the way the receiver credits (tlv.SecondsForAmount).
	PaidUntil time.Time
	// Remainder is the msat carried to the next payment's time estimate.
	Remainder lnwire.MilliSatoshi
	// Reserved is the amount plus maximum fee of every open attempt,
	// counted against the caps until the attempt is final.
	Reserved lnwire.MilliSatoshi
	// Reason says why the subscription is in its state (cap reached,
	// refused, cancelled).
	Reason string
	// ResumeAt is when a subscription stopped by the daily cap may pay
	// again (the next UTC day), or when a refused subscription probes the
	// receiver again with one payment; zero otherwise (a refused one
	// stored by a version without probing gets a probe time on load).
	ResumeAt time.Time
	// Refusals counts consecutive payments the receiver refused.
	Refusals uint32
	// CancelPending is set while the payer's cancel message has not yet
	// been acknowledged by the receiver.
	CancelPending bool
	// Revision grows by one with every write of the subscription, so a
	// cache can tell a newer copy from an older one.
	Revision uint64
	// CancelledAt is when the payer cancelled (zero: not cancelled, or
	// cancelled before schema version 4). Like the receiver, the sender
	// shows service ending at max(PaidUntil, CancelledAt).
	CancelledAt time.Time
}

// Attempt is one keysend payment try, written before it is sent so a crash
// can never leave a payment the sender does not know about.
type Attempt struct {
	SubID    SubID
	Seq      uint64
	Preimage Preimage
	Hash     Hash
	Amount   lnwire.MilliSatoshi
	Fee      lnwire.MilliSatoshi
	State    AttemptState
	// FailureReason says why a failed or refused attempt did not settle.
	FailureReason string
	CreatedAt     time.Time
	UpdatedAt     time.Time

	// MaxFee is the fee limit the attempt is sent with; amount plus MaxFee
	// is reserved against the caps until the attempt is final.
	MaxFee lnwire.MilliSatoshi
	// Day is the UTC day whose spend holds the reservation.
	Day Day
	// Cancel marks the payer's cancel message (it carries the cancel
	// record and is expected to be refused).
	Cancel bool
	// Tries counts how often the attempt was handed to lnd; retries after
	// a transient failure reuse the same hash.
	Tries uint32
	// Destination is the provider node the attempt is sent to: one of
	// the offer's nodes, chosen when it was created and changed only
	// after lnd reported the payment to the previous one FAILED, so one
	// hash is never in flight to two nodes. Zero (records written before
	// offers listed several nodes) means the offer's primary node,
	// Offer.Destination.
	Destination [33]byte
}
