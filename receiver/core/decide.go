package core

import (
	"errors"
	"fmt"
	"math/big"
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
)

// Reasons lists every refusal reason, so metrics can start each at zero.
var Reasons = []Reason{
	ReasonMalformed, ReasonUnknownSubscription, ReasonUnknownPlan,
	ReasonPlanNotOpen, ReasonCancelled, ReasonBelowMinimum,
	ReasonDuplicateSequence, ReasonStaleSequence,
	ReasonMaxPrepay, ReasonPayerCancel, ReasonPreviouslyRefused,
	ReasonHoldExpired,
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
			out.Reason = Reason(prev.Reason)
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
	sub.PaidUntil = credit.PaidUntil
	sub.Remainder = credit.Remainder
	sub.TotalPaid += in.Amount
	sub.TotalSeconds += credit.Seconds
	sub.Payments++
	if recs.Sequence > sub.LastSeq {
		sub.LastSeq = recs.Sequence
	}
	sub.UpdatedAt = in.Now
	var evType store.EventType
	if !credit.PaidUntil.After(in.Now) {
		// Bought no time ahead of now (only remainder): the state
		// stays; a lapsed subscription is not paid up.
	} else {
		sub.State, evType, err = Next(oldState, TrigPayment)
		if err != nil {
			return out, err
		}
	}
	if err := tx.PutSubscription(sub); err != nil {
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

// RefusalEventInterval is the least time between two payment.refused events
// of the same subscription and reason; refusals in between are counted and
// (up to MaxRefusedPerSubscription) listed, but not announced again.
const RefusalEventInterval = time.Minute

// refuse records a refusal and reports it in out. Every refusal adds one to
// the persisted counter of its reason. A refusal that names no known
// subscription (sub nil) leaves nothing else behind: no payment entry, no
// event, since anyone can send those for free. A refusal for a known
// subscription keeps an entry (at most MaxRefusedPerSubscription per
// subscription) and queues a payment.refused event (at most one per
// RefusalEventInterval and reason). A payment lnd already settled is money
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
	if !last.IsZero() && in.Now.Sub(last) < RefusalEventInterval &&
		!in.Now.Before(last) {

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
	sub.State = to
	sub.UpdatedAt = now
	if Cancelled(to) {
		sub.CancelledAt = now
	}
	if err := tx.PutSubscription(sub); err != nil {
		return err
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

// Reverse takes back the credit of a payment whose HTLC lnd cancelled before
// it settled (the hold time ran out while the receiver was away), as
// docs/protocol.md requires: the hash and sequence are freed and the
// subscription is as if the payment had never come, as far as later
// payments allow (see reverseCredit). It reports whether anything was
// reversed.
func Reverse(tx store.ReceiverTx, hash store.Hash, now time.Time) (bool, error) {
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
	sub, err := tx.Subscription(p.SubID)
	if err != nil {
		return false, err
	}
	reverseCredit(sub, p)
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
	if sub.Payments == 0 && !Cancelled(sub.State) {
		// It was the only credit, so it activated a pending
		// subscription: pending again, never paid.
		sub.State = store.SubPending
		sub.PaidUntil = time.Time{}
	}
	if err := tx.PutSubscription(sub); err != nil {
		return false, err
	}
	// Paid time got shorter: an activation or revival the payment caused
	// is undone by ageing the subscription at now.
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

// reverseCredit takes p's credit out of sub's totals. The credit turned
// amount + remainder into seconds*rate + new remainder, so the remainder
// from before it is remainder_now + seconds*rate - amount. When later
// credits already spent part of the carry this payment left, that is
// negative: whole seconds are then taken back too (rounded up, at the
// current price) until it is not, so that what is left is exactly what the
// remaining payments bought and total_seconds*price + remainder ==
// total_paid keeps holding.
func reverseCredit(sub *store.ReceiverSubscription, p *store.Payment) {
	rate := p.Rate
	if rate == 0 {
		rate = sub.Terms.RatePerSecond
	}
	rem := new(big.Int).SetUint64(uint64(p.Seconds))
	rem.Mul(rem, new(big.Int).SetUint64(uint64(rate)))
	rem.Add(rem, new(big.Int).SetUint64(uint64(sub.Remainder)))
	rem.Sub(rem, new(big.Int).SetUint64(uint64(p.Amount)))

	secs := p.Seconds
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
		secs += extra.Uint64()
	}
	if secs > sub.TotalSeconds {
		secs = sub.TotalSeconds
	}
	sub.Remainder = 0
	if rem.IsUint64() {
		sub.Remainder = lnwire.MilliSatoshi(rem.Uint64())
	}
	sub.PaidUntil = sub.PaidUntil.Add(-time.Duration(secs) * time.Second)
	sub.TotalSeconds -= secs
	if sub.TotalPaid >= p.Amount {
		sub.TotalPaid -= p.Amount
	} else {
		sub.TotalPaid = 0
	}
	if sub.Payments > 0 {
		sub.Payments--
	}
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
