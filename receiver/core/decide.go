package core

import (
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"time"

	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
)

// Reason says why a payment was refused (or, when lnd had already settled
// it, left unclaimed). The strings appear in the API, logs and the refused
// metric's label, and never change.
type Reason string

const (
	ReasonMalformed           Reason = "malformed_records"
	ReasonUnknownSubscription Reason = "unknown_subscription"
	ReasonUnknownPlan         Reason = "unknown_plan"
	ReasonPlanNotOpen         Reason = "plan_not_open"
	ReasonCancelled           Reason = "subscription_cancelled"
	ReasonBelowMinimum        Reason = "below_minimum"
	ReasonDuplicateSequence   Reason = "duplicate_sequence"
	ReasonStaleSequence       Reason = "stale_sequence"
	ReasonMaxPrepay           Reason = "max_prepay_exceeded"
	ReasonPayerCancel         Reason = "payer_cancel"
	ReasonPreviouslyRefused   Reason = "previously_refused"
	ReasonHoldExpired         Reason = "hold_expired"
	// ReasonHeldAtAnotherNode: the hash is credited and another receiver
	// node sharing the ledger still holds its HTLC unsettled; settling
	// here too would take the payment twice, and that node may yet
	// reverse the credit when its lnd cancels. Nothing is recorded: the
	// payment stays the other node's.
	ReasonHeldAtAnotherNode Reason = "held_at_another_node"
)

// Reasons lists every refusal reason, so metrics can start each at zero.
var Reasons = []Reason{
	ReasonMalformed, ReasonUnknownSubscription, ReasonUnknownPlan,
	ReasonPlanNotOpen, ReasonCancelled, ReasonBelowMinimum,
	ReasonDuplicateSequence, ReasonStaleSequence,
	ReasonMaxPrepay, ReasonPayerCancel, ReasonPreviouslyRefused,
	ReasonHoldExpired, ReasonHeldAtAnotherNode,
}

// DefaultSeqWindow is how far below the highest credited sequence a late
// payment may still be credited (docs/protocol.md recommends 1024).
const DefaultSeqWindow = 1024

// Action is what must be done with the HTLC once the decision is committed.
type Action uint8

const (
	// ActionNone: the HTLC is already settled; nothing to do.
	ActionNone Action = iota
	// ActionSettle: settle the HTLC (credited, or not a satstream payment).
	ActionSettle
	// ActionCancel: refuse the HTLC so it fails back to the payer.
	ActionCancel
)

// Incoming is a keysend payment as lnd handed it over.
type Incoming struct {
	Hash   store.Hash
	Amount lnwire.MilliSatoshi
	Custom map[uint64][]byte
	// Settled is true when lnd settled the payment on its own (no hold
	// time): it can no longer be refused, only credited or left unclaimed.
	Settled     bool
	SettleIndex uint64
	Now         time.Time
}

// Outcome is the committed decision about one payment.
type Outcome struct {
	Action Action
	// NotOurs: no satstream record; the payment is left alone.
	NotOurs bool
	// Credited: credited in this step. Duplicate: credited earlier.
	Credited, Duplicate bool
	// Unclaimed: lnd settled a payment that could not be credited.
	Unclaimed bool
	Reason    Reason
	Detail    string
	SubID     store.SubID
	Seq       uint64
	Seconds   uint64
	Amount    lnwire.MilliSatoshi
	// Cancelled: the payment was the payer's cancel and it was recorded.
	Cancelled bool
}

// reasonCode returns the reason code a stored "reason: detail" string
// starts with, one of Reasons (ReasonPreviouslyRefused for anything else):
// the detail may name a secret an older version wrote there, and a metric
// label must come from a fixed set.
func reasonCode(stored string) Reason {
	code, _, _ := strings.Cut(stored, ": ")
	for _, r := range Reasons {
		if string(r) == code {
			return r
		}
	}
	return ReasonPreviouslyRefused
}

// duplicateHeld decides about an unsettled HTLC whose hash is credited but
// not yet settled. If another receiver node sharing the ledger holds it,
// that node settles it or reverses the credit when its lnd cancels: this
// node refuses, never settles, so the payment is neither taken twice nor
// settled here and reversed there. Otherwise this node takes the hold over
// (the mark lets it reverse the credit should its own lnd cancel) and
// settles.
func duplicateHeld(tx store.ReceiverTx, in Incoming, out Outcome) (Outcome,
	error) {

	_, elsewhere, err := tx.HeldAt(in.Hash)
	if err != nil {
		return out, err
	}
	if elsewhere {
		out.Action = ActionCancel
		out.Reason = ReasonHeldAtAnotherNode
		out.Detail = "credited and held unsettled by another " +
			"receiver node"
		return out, nil
	}
	if err := tx.MarkHeld(in.Hash); err != nil {
		return out, err
	}
	out.Duplicate = true
	out.Action = ActionSettle
	return out, nil
}

// Apply decides about one payment inside tx and records the decision: the
// ledger entry keyed by hash, the subscription change and its events. The
// caller commits tx and only then settles or cancels the HTLC, so a crash
// at any point can be resumed from the ledger. window is the sequence window
// (DefaultSeqWindow if 0).
func Apply(tx store.ReceiverTx, in Incoming, window uint64) (Outcome, error) {
	if window == 0 {
		window = DefaultSeqWindow
	}
	out := Outcome{Amount: in.Amount}

	recs, decErr := tlv.Decode(in.Custom)
	if errors.Is(decErr, tlv.ErrNotSatstream) {
		out.NotOurs = true
		out.Action = ActionSettle
		if in.Settled {
			out.Action = ActionNone
		}
		return out, nil
	}

	// The hash decides first: lnd re-accepts a settled hash, and a
	// restart replays what we already decided.
	prev, err := tx.Payment(in.Hash)
	switch {
	case err == nil:
		out.SubID, out.Seq = prev.SubID, prev.Seq
		switch prev.State {
		case store.PaymentCredited:
			if !in.Settled && prev.SettleIndex == 0 {
				return duplicateHeld(tx, in, out)
			}
			out.Duplicate = true
			out.Action = ActionSettle
			if in.Settled {
				out.Action = ActionNone
				if prev.SettleIndex == 0 {
					if err := MarkSettled(tx, in.Hash, in.SettleIndex); err != nil {
						return out, err
					}
				}
			}
			return out, nil
		default:
			out.Reason = reasonCode(prev.Reason)
			if prev.State == store.PaymentRefused {
				out.Reason = ReasonPreviouslyRefused
			}
			out.Action = ActionCancel
			if in.Settled {
				out.Action = ActionNone
			}
			return out, nil
		}
	case !errors.Is(err, store.ErrNotFound):
		return out, err
	}

	if decErr != nil {
		return refuse(tx, in, out, nil, 0, ReasonMalformed, decErr.Error())
	}
	out.SubID = store.SubID(recs.SubscriptionID)
	out.Seq = recs.Sequence

	sub, err := tx.Subscription(out.SubID)
	created := false
	switch {
	case errors.Is(err, store.ErrNotFound):
		if recs.PlanID == nil || recs.Cancel {
			return refuse(tx, in, out, nil, recs.Sequence,
				ReasonUnknownSubscription, "subscription "+
					out.SubID.String()+" is not known")
		}
		plan, err := tx.Plan(store.PlanID(recs.PlanID.String()))
		switch {
		case errors.Is(err, store.ErrNotFound):
			return refuse(tx, in, out, nil, recs.Sequence,
				ReasonUnknownPlan, "plan "+recs.PlanID.String()+
					" is not known")
		case err != nil:
			return out, err
		case !plan.OpenEnrolment:
			return refuse(tx, in, out, nil, recs.Sequence,
				ReasonPlanNotOpen, "plan "+recs.PlanID.String()+
					" is not open for enrolment")
		}
		sub = NewSubscription(out.SubID, plan, in.Now)
		created = true
	case err != nil:
		return out, err
	}

	// The sequence must be fresh, whatever the payment is for.
	if sub.LastSeq > window && recs.Sequence <= sub.LastSeq-window {
		return refuse(tx, in, out, existing(sub, created), recs.Sequence,
			ReasonStaleSequence, fmt.Sprintf("sequence %d is more "+
				"than %d below the highest credited %d",
				recs.Sequence, window, sub.LastSeq))
	}
	dup, err := sequenceCredited(tx, sub.ID, recs.Sequence)
	if err != nil {
		return out, err
	}
	if dup {
		return refuse(tx, in, out, existing(sub, created), recs.Sequence,
			ReasonDuplicateSequence, fmt.Sprintf("sequence %d was "+
				"already credited", recs.Sequence))
	}

	if recs.Cancel {
		if created {
			return refuse(tx, in, out, nil, recs.Sequence,
				ReasonUnknownSubscription, "cancel for unknown "+
					"subscription "+out.SubID.String())
		}
		if !Cancelled(sub.State) {
			if err := transitionTo(tx, sub, TrigPayerCancel, in.Now,
				"payer cancelled"); err != nil {
				return out, err
			}
			out.Cancelled = true
		}
		return refuse(tx, in, out, sub, recs.Sequence,
			ReasonPayerCancel, "payer cancelled the subscription")
	}

	if Cancelled(sub.State) {
		return refuse(tx, in, out, sub, recs.Sequence, ReasonCancelled,
			"subscription is "+sub.State.String())
	}
	if in.Amount < sub.Terms.MinPayment {
		return refuse(tx, in, out, existing(sub, created), recs.Sequence,
			ReasonBelowMinimum, fmt.Sprintf("amount %v is below "+
				"the minimum %v", in.Amount, sub.Terms.MinPayment))
	}
	credit, ok := CreditFor(sub, in.Amount, in.Now)
	if !ok {
		return refuse(tx, in, out, existing(sub, created), recs.Sequence,
			ReasonMaxPrepay, fmt.Sprintf("amount %v would hold more "+
				"than %v of paid time", in.Amount, sub.Terms.MaxPrepay))
	}
	if created && credit.Seconds == 0 {
		// An open enrolment must buy time: one that only leaves a
		// remainder would make a subscription that stays pending
		// for ever, for less than the price of a second.
		return refuse(tx, in, out, nil, recs.Sequence,
			ReasonBelowMinimum, fmt.Sprintf("amount %v buys no "+
				"whole second at %v per second", in.Amount,
				sub.Terms.RatePerSecond))
	}

	// Credit.
	if created {
		if err := tx.PutSubscription(sub); err != nil {
			return out, err
		}
		if err := AppendEvent(tx, store.EventSubscriptionCreated, sub,
			nil, "", in.Now); err != nil {
			return out, err
		}
	}
	oldState := sub.State
	before := store.Payment{BeforePaidUntil: sub.PaidUntil,
		BeforeRemainder: sub.Remainder, BeforeState: oldState}
	sub.PaidUntil = credit.PaidUntil
	sub.Remainder = credit.Remainder
	sub.TotalPaid += in.Amount
	sub.TotalSeconds += credit.Seconds
	sub.Payments++
	sub.CreditCount++
	if recs.Sequence > sub.LastSeq {
		sub.LastSeq = recs.Sequence
	}
	sub.UpdatedAt = in.Now
	var evType store.EventType
	sub.State, evType, err = stateAfterCredit(oldState, credit.PaidUntil,
		in.Now)
	if err != nil {
		return out, err
	}
	if err := tx.PutSubscription(sub); err != nil {
		return out, err
	}
	// A credit starts a new episode: each refusal reason is announced
	// again.
	if err := tx.ClearRefusalEvents(sub.ID); err != nil {
		return out, err
	}

	p := &store.Payment{
		Hash:       in.Hash,
		SubID:      sub.ID,
		Seq:        recs.Sequence,
		Amount:     in.Amount,
		Seconds:    credit.Seconds,
		State:      store.PaymentCredited,
		ReceivedAt: in.Now,
		Rate:       sub.Terms.RatePerSecond,

		BeforePaidUntil: before.BeforePaidUntil,
		BeforeRemainder: before.BeforeRemainder,
		BeforeState:     before.BeforeState,
		CreditNo:        sub.CreditCount,
	}
	if in.Settled {
		p.SettleIndex = in.SettleIndex
		if err := bumpSettleIndex(tx, in.SettleIndex); err != nil {
			return out, err
		}
	} else if err := tx.MarkHeld(in.Hash); err != nil {
		return out, err
	}
	if err := tx.PutPayment(p); err != nil {
		return out, err
	}
	if evType != 0 {
		if err := AppendEvent(tx, evType, sub, nil, "", in.Now); err != nil {
			return out, err
		}
	}
	if err := AppendEvent(tx, store.EventPaymentReceived, sub, p, "",
		in.Now); err != nil {
		return out, err
	}

	out.Credited = true
	out.Seconds = credit.Seconds
	out.Action = ActionSettle
	if in.Settled {
		out.Action = ActionNone
	}
	return out, nil
}

// existing returns sub unless it was only made up for this payment.
func existing(sub *store.ReceiverSubscription, created bool) *store.ReceiverSubscription {
	if created {
		return nil
	}
	return sub
}

// MaxRefusedPerSubscription is how many refused payment entries are kept
// per known subscription; older ones are deleted in the step that adds a
// new one. A refusal costs the payer nothing, so what it leaves behind must
// be bounded (the per-reason counters keep the whole tally).
const MaxRefusedPerSubscription = 64

// refuse records a refusal and reports it in out. Every refusal adds one to
// the persisted counter of its reason. A refusal that names no known
// subscription (sub nil) leaves nothing else behind: no payment entry, no
// event, since anyone can send those for free. A refusal for a known
// subscription keeps an entry (at most MaxRefusedPerSubscription per
// subscription) and queues a payment.refused event once per episode and
// reason: after an event for a reason, that reason is not announced again
// for the subscription until it is credited or changes state (which clear
// the marks), however long the refusals go on. A payment lnd already settled is money
// the provider holds: it is always recorded as unclaimed, so it can be
// refunded.
func refuse(tx store.ReceiverTx, in Incoming, out Outcome,
	sub *store.ReceiverSubscription, seq uint64, reason Reason,
	detail string) (Outcome, error) {

	out.Reason, out.Detail = reason, detail
	out.Action = ActionCancel
	if _, err := tx.AddRefusal(string(reason)); err != nil {
		return out, err
	}
	p := &store.Payment{
		Hash:       in.Hash,
		Seq:        seq,
		Amount:     in.Amount,
		State:      store.PaymentRefused,
		Reason:     string(reason) + ": " + detail,
		ReceivedAt: in.Now,
	}
	if sub != nil {
		p.SubID = sub.ID
	}

	if in.Settled {
		p.State = store.PaymentUnclaimed
		p.SettleIndex = in.SettleIndex
		out.Unclaimed = true
		out.Action = ActionNone
		if err := bumpSettleIndex(tx, in.SettleIndex); err != nil {
			return out, err
		}
		if err := tx.PutPayment(p); err != nil {
			return out, err
		}
		if sub == nil {
			return out, nil
		}
		return out, AppendEvent(tx, store.EventPaymentRefused, sub, p,
			string(reason), in.Now)
	}

	if sub == nil {
		return out, nil
	}
	if err := tx.PutPayment(p); err != nil {
		return out, err
	}
	if _, err := tx.PruneRefused(sub.ID, MaxRefusedPerSubscription); err != nil {
		return out, err
	}
	last, err := tx.LastRefusalEvent(sub.ID, string(reason))
	if err != nil {
		return out, err
	}
	if !last.IsZero() {
		// Announced already in this episode.
		return out, nil
	}
	if err := tx.SetLastRefusalEvent(sub.ID, string(reason), in.Now); err != nil {
		return out, err
	}
	return out, AppendEvent(tx, store.EventPaymentRefused, sub, p,
		string(reason), in.Now)
}

// sequenceCredited reports whether a credited payment of sub has seq.
func sequenceCredited(tx store.ReceiverTx, sub store.SubID, seq uint64) (bool, error) {
	found := false
	err := tx.ForEachPayment(sub, seq-1, func(p *store.Payment) error {
		if p.Seq != seq {
			return store.ErrStop
		}
		if p.State == store.PaymentCredited {
			found = true
			return store.ErrStop
		}
		return nil
	})
	return found, err
}

// NewSubscription makes a pending subscription on plan's terms.
func NewSubscription(id store.SubID, plan *store.Plan,
	now time.Time) *store.ReceiverSubscription {

	return &store.ReceiverSubscription{
		ID:        id,
		PlanID:    plan.ID,
		Terms:     plan.Terms,
		State:     store.SubPending,
		CreatedAt: now,
		UpdatedAt: now,
	}
}

// transitionTo moves sub on trig, stores it and queues the event.
func transitionTo(tx store.ReceiverTx, sub *store.ReceiverSubscription,
	trig Trigger, now time.Time, reason string) error {

	to, ev, err := Next(sub.State, trig)
	if err != nil {
		return err
	}
	changed := sub.State != to
	sub.State = to
	sub.UpdatedAt = now
	if Cancelled(to) {
		sub.CancelledAt = now
	}
	if err := tx.PutSubscription(sub); err != nil {
		return err
	}
	if changed {
		// A new state starts a new episode of refusals.
		if err := tx.ClearRefusalEvents(sub.ID); err != nil {
			return err
		}
	}
	if ev == 0 {
		return nil
	}
	return AppendEvent(tx, ev, sub, nil, reason, now)
}

// Transition applies trig to the stored subscription id at now; it is how
// the API cancels and the expiry loop ages subscriptions.
func Transition(tx store.ReceiverTx, id store.SubID, trig Trigger,
	now time.Time) (*store.ReceiverSubscription, error) {

	sub, err := tx.Subscription(id)
	if err != nil {
		return nil, err
	}
	return sub, transitionTo(tx, sub, trig, now, "")
}

// MarkSettled records that lnd settled a credited payment's HTLC.
func MarkSettled(tx store.ReceiverTx, hash store.Hash, settleIndex uint64) error {
	p, err := tx.Payment(hash)
	if err != nil {
		return err
	}
	if p.SettleIndex == 0 {
		p.SettleIndex = settleIndex
		if p.SettleIndex == 0 {
			// Settled, index unknown yet; keep it non-zero.
			p.SettleIndex = 1
		}
		if err := tx.PutPayment(p); err != nil {
			return err
		}
	}
	if err := tx.ClearHeld(hash); err != nil {
		return err
	}
	return bumpSettleIndex(tx, settleIndex)
}

// ErrCannotReverse is returned when a credit stored before schema version 4
// (without the subscription as it was before it) cannot be taken out of the
// subscription exactly; nothing is changed.
var ErrCannotReverse = errors.New("credit cannot be reversed exactly")

// Reverse takes back the credit of a payment whose HTLC lnd cancelled before
// it settled (the hold time ran out while the receiver was away), as
// docs/protocol.md requires: the hash and sequence are freed and the
// subscription is as if the payment had never come. The subscription's
// paid-until, remainder and state are restored from before the payment,
// then every credit made after it is applied again, in order, at its own
// time and rate (see replayCredits). It reports whether anything was
// reversed.
func Reverse(tx store.ReceiverTx, hash store.Hash, now time.Time) (bool, error) {
	return reverse(tx, hash, now, false)
}

// ReverseApprox is Reverse for a credit that ErrCannotReverse says can't be
// taken out exactly (stored before schema version 4): the amount is taken
// out of the totals exactly and as much of its time as the subscription
// still holds, so the payment never stays credited and its hash stops being
// followed. The caller logs it as an error for the operator to check.
func ReverseApprox(tx store.ReceiverTx, hash store.Hash, now time.Time) (bool, error) {
	return reverse(tx, hash, now, true)
}

// reverse implements Reverse and ReverseApprox.
func reverse(tx store.ReceiverTx, hash store.Hash, now time.Time,
	approx bool) (bool, error) {

	p, err := tx.Payment(hash)
	if errors.Is(err, store.ErrNotFound) {
		return false, tx.ClearHeld(hash)
	}
	if err != nil {
		return false, err
	}
	if p.State != store.PaymentCredited || p.SettleIndex != 0 {
		return false, tx.ClearHeld(hash)
	}
	// Only the node whose lnd held the HTLC may take the credit back:
	// with several nodes on one ledger, a cancel at this node's lnd says
	// nothing about a copy another node settled or holds.
	here, _, err := tx.HeldAt(hash)
	if err != nil {
		return false, err
	}
	if !here {
		return false, nil
	}
	sub, err := tx.Subscription(p.SubID)
	if err != nil {
		return false, err
	}
	oldState := sub.State
	if p.BeforeState != 0 {
		err = replayCredits(tx, sub, p)
	} else {
		err = reverseCredit(tx, sub, p, approx)
	}
	if err != nil {
		return false, err
	}
	sub.UpdatedAt = now

	p.State = store.PaymentRefused
	p.Reason = string(ReasonHoldExpired) + ": lnd cancelled the HTLC " +
		"before it was settled; credit reversed"
	if err := tx.PutPayment(p); err != nil {
		return false, err
	}
	if p.Seq == sub.LastSeq {
		sub.LastSeq, err = highestCredited(tx, sub.ID, p.Seq)
		if err != nil {
			return false, err
		}
	}
	if err := tx.PutSubscription(sub); err != nil {
		return false, err
	}
	if err := tx.ClearRefusalEvents(sub.ID); err != nil {
		return false, err
	}
	// A state the restore moved to is reported like the time-driven
	// move would have been; the rest is done by ageing at now.
	var ev store.EventType
	switch {
	case sub.State == oldState:
	case sub.State == store.SubPastDue:
		ev = store.EventSubscriptionPastDue
	case sub.State == store.SubExpired:
		ev = store.EventSubscriptionExpired
	}
	if ev != 0 {
		if err := AppendEvent(tx, ev, sub, nil, "", now); err != nil {
			return false, err
		}
	}
	if _, err := Age(tx, sub, now); err != nil {
		return false, err
	}
	if _, err := tx.AddRefusal(string(ReasonHoldExpired)); err != nil {
		return false, err
	}
	if err := tx.ClearHeld(hash); err != nil {
		return false, err
	}
	return true, AppendEvent(tx, store.EventPaymentReversed, sub, p,
		string(ReasonHoldExpired), now)
}

// replayCredits takes p's credit out of sub: it restores the paid-until,
// remainder and state p's credit started from, then credits every payment
// credited after p again, in credit order, with creditAt at its own
// ReceivedAt and Rate, ageing the state to each one's time in between. A
// later payment whose seconds or starting point change is stored again, so
// that it can itself be reversed exactly. The totals, payment count and
// last sequence are then recomputed from the credited payments left, so
// that sum(seconds*rate) + remainder == total_paid keeps holding. With no
// credited payment left the subscription is pending again; a cancelled one
// stays cancelled.
func replayCredits(tx store.ReceiverTx, sub *store.ReceiverSubscription,
	p *store.Payment) error {

	var (
		later              []*store.Payment
		paid, secs         uint64
		totalPaid, lastSeq uint64
	)
	err := tx.ForEachPayment(sub.ID, 0, func(q *store.Payment) error {
		if q.State != store.PaymentCredited || q.Hash == p.Hash {
			return nil
		}
		if q.CreditNo > p.CreditNo {
			later = append(later, q)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(later, func(i, j int) bool {
		return later[i].CreditNo < later[j].CreditNo
	})

	grace := sub.Terms.Grace
	state, paidUntil, rem := p.BeforeState, p.BeforePaidUntil, p.BeforeRemainder
	for _, q := range later {
		state = agedState(state, paidUntil, grace, q.ReceivedAt)
		rate := q.Rate
		if rate == 0 {
			rate = sub.Terms.RatePerSecond
		}
		c := creditAt(paidUntil, rem, grace, rate, q.Amount, q.ReceivedAt)
		if q.Seconds != c.Seconds || q.BeforeState != state ||
			q.BeforeRemainder != rem ||
			!q.BeforePaidUntil.Equal(paidUntil) {

			q.Seconds = c.Seconds
			q.BeforePaidUntil, q.BeforeRemainder = paidUntil, rem
			q.BeforeState = state
			if err := tx.PutPayment(q); err != nil {
				return err
			}
		}
		if !Cancelled(state) {
			state, _, err = stateAfterCredit(state, c.PaidUntil,
				q.ReceivedAt)
			if err != nil {
				return fmt.Errorf("replay payment %s: %w", q.Hash, err)
			}
		}
		paidUntil, rem = c.PaidUntil, c.Remainder
	}

	// The totals, from every credited payment left.
	err = tx.ForEachPayment(sub.ID, 0, func(q *store.Payment) error {
		if q.State != store.PaymentCredited || q.Hash == p.Hash {
			return nil
		}
		totalPaid += uint64(q.Amount)
		secs += q.Seconds
		paid++
		if q.Seq > lastSeq {
			lastSeq = q.Seq
		}
		return nil
	})
	if err != nil {
		return err
	}
	sub.PaidUntil, sub.Remainder = paidUntil, rem
	sub.TotalPaid = lnwire.MilliSatoshi(totalPaid)
	sub.TotalSeconds = secs
	sub.Payments = paid
	sub.LastSeq = lastSeq
	switch {
	case Cancelled(sub.State):
		// Final: a cancel is not undone.
	case paid == 0:
		sub.State = store.SubPending
	default:
		sub.State = state
	}
	return nil
}

// reverseCredit takes p's credit out of sub's totals for a payment credited
// before schema version 4, which did not store the subscription as it was
// before it. The credit turned amount + remainder into seconds*rate + new
// remainder, so the remainder from before it is remainder_now +
// seconds*rate - amount. When later credits already spent part of the carry
// this payment left, that is negative: whole seconds are then taken back
// too (rounded up, at the current price) until it is not. If that would
// take back more seconds or msat than the subscription holds, the credit
// cannot be reversed exactly: ErrCannotReverse names the payment and
// nothing is changed. The later payments' stored starting points included
// this credit, so they are forgotten: those payments are reversed the same
// way.
func reverseCredit(tx store.ReceiverTx, sub *store.ReceiverSubscription,
	p *store.Payment, approx bool) error {

	rate := p.Rate
	if rate == 0 {
		rate = sub.Terms.RatePerSecond
	}
	rem := new(big.Int).SetUint64(uint64(p.Seconds))
	rem.Mul(rem, new(big.Int).SetUint64(uint64(rate)))
	rem.Add(rem, new(big.Int).SetUint64(uint64(sub.Remainder)))
	rem.Sub(rem, new(big.Int).SetUint64(uint64(p.Amount)))

	secs := new(big.Int).SetUint64(p.Seconds)
	if rem.Sign() < 0 {
		price := sub.Terms.RatePerSecond
		if price == 0 {
			price = rate
		}
		bigPrice := new(big.Int).SetUint64(uint64(price))
		// extra = ceil(-rem / price)
		extra := new(big.Int).Neg(rem)
		extra.Add(extra, bigPrice)
		extra.Sub(extra, big.NewInt(1))
		extra.Div(extra, bigPrice)
		rem.Add(rem, new(big.Int).Mul(extra, bigPrice))
		secs.Add(secs, extra)
	}
	amt := p.Amount
	exact := secs.IsUint64() && secs.Uint64() <= sub.TotalSeconds &&
		rem.IsUint64() && sub.TotalPaid >= p.Amount
	if !exact && approx {
		// Take out what the subscription still holds.
		if !secs.IsUint64() || secs.Uint64() > sub.TotalSeconds {
			secs.SetUint64(sub.TotalSeconds)
		}
		if !rem.IsUint64() {
			rem.SetUint64(0)
		}
		if sub.TotalPaid < amt {
			amt = sub.TotalPaid
		}
	} else if !exact {
		return fmt.Errorf("%w: payment %s of subscription %s (%v, %d s, "+
			"credited before schema version 4) would take back %v s "+
			"of the %d s and %v of the %v the subscription holds",
			ErrCannotReverse, p.Hash, sub.ID, p.Amount, p.Seconds,
			secs, sub.TotalSeconds, p.Amount, sub.TotalPaid)
	}
	n := secs.Uint64()
	sub.Remainder = lnwire.MilliSatoshi(rem.Uint64())
	sub.PaidUntil = sub.PaidUntil.Add(-time.Duration(n) * time.Second)
	sub.TotalSeconds -= n
	sub.TotalPaid -= amt
	if sub.Payments > 0 {
		sub.Payments--
	}
	if sub.Payments == 0 && !Cancelled(sub.State) {
		// It was the only credit, so it activated a pending
		// subscription: pending again, never paid.
		sub.State = store.SubPending
		sub.PaidUntil = time.Time{}
	}

	var later []*store.Payment
	err := tx.ForEachPayment(sub.ID, 0, func(q *store.Payment) error {
		if q.State == store.PaymentCredited && q.BeforeState != 0 {
			later = append(later, q)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, q := range later {
		q.BeforePaidUntil, q.BeforeRemainder, q.BeforeState =
			time.Time{}, 0, 0
		if err := tx.PutPayment(q); err != nil {
			return err
		}
	}
	return nil
}

// highestCredited returns the highest sequence among sub's credited
// payments (0: none) below below, which was the highest. The window
// below it is searched first, since the next highest is almost always there.
func highestCredited(tx store.ReceiverTx, sub store.SubID,
	below uint64) (uint64, error) {

	var from uint64
	if below > DefaultSeqWindow {
		from = below - DefaultSeqWindow
	}
	for {
		var best uint64
		err := tx.ForEachPayment(sub, from, func(p *store.Payment) error {
			if p.Seq >= below {
				return store.ErrStop
			}
			if p.State == store.PaymentCredited {
				best = p.Seq
			}
			return nil
		})
		if err != nil || best != 0 || from == 0 {
			return best, err
		}
		from = 0
	}
}

// bumpSettleIndex moves the stored lnd settle index forward, never back.
func bumpSettleIndex(tx store.ReceiverTx, idx uint64) error {
	cur, err := tx.SettleIndex()
	if err != nil {
		return err
	}
	if idx > cur {
		return tx.SetSettleIndex(idx)
	}
	return nil
}

// BumpSettleIndex is bumpSettleIndex for callers outside the package.
func BumpSettleIndex(tx store.ReceiverTx, idx uint64) error {
	return bumpSettleIndex(tx, idx)
}
