package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/satstream/satstream/tlv"
)

// ReceiverStore is what the provider's daemon needs from the store: atomic
// steps over its plans, subscriptions, payment ledger, lnd stream position
// and event outbox.
type ReceiverStore interface {
	// Update runs fn as one atomic step and returns once it is on disk.
	// fn may be run again after a conflict, so it must only touch tx.
	Update(ctx context.Context, fn func(tx ReceiverTx) error) error

	// View runs fn on a consistent read-only snapshot.
	View(ctx context.Context, fn func(tx ReceiverTx) error) error
}

// Page bounds a listing: start strictly after a subscription id (nil: from
// the first) and return at most Limit records (0: all).
type Page struct {
	After *SubID
	Limit int
}

// ReceiverTx is one receiver transaction. Records returned are copies the
// caller may change and Put back. The store only persists and indexes:
// state transitions and credit arithmetic belong to the receiver.
type ReceiverTx interface {
	// Plan returns the plan, or ErrNotFound.
	Plan(id PlanID) (*Plan, error)
	// PutPlan creates or replaces a plan.
	PutPlan(p *Plan) error
	// ForEachPlan calls fn for every plan in id order.
	ForEachPlan(fn func(*Plan) error) error

	// Subscription returns the subscription, or ErrNotFound.
	Subscription(id SubID) (*ReceiverSubscription, error)
	// SubscriptionByPublicID returns the subscription whose public id
	// (SubID.PublicID) is p, or ErrNotFound.
	SubscriptionByPublicID(p tlv.PublicID) (*ReceiverSubscription, error)
	// PutSubscription creates or replaces a subscription and keeps its
	// state and paid-until indexes in step.
	PutSubscription(s *ReceiverSubscription) error
	// ForEachSubscription calls fn for the subscriptions in the given state
	// (0: any) in id order, within page.
	ForEachSubscription(state SubState, page Page,
		fn func(*ReceiverSubscription) error) error
	// SubscriptionsDueBefore calls fn, earliest first, for every active
	// or past-due subscription that needs attention before t: an active
	// one whose paid time ends before t, a past-due one whose grace
	// period (paid time plus grace) ends before t. It is the expiry scan,
	// and yields nothing that has no state change due, so a sweep of
	// subscriptions in grace reads none of them.
	SubscriptionsDueBefore(t time.Time, fn func(*ReceiverSubscription) error) error

	// Payment returns the ledger entry of a payment hash, or ErrNotFound.
	Payment(hash Hash) (*Payment, error)
	// PaymentBySeq returns a subscription's payment with that sequence, or
	// ErrNotFound. If a payer reused a sequence the lowest hash wins.
	PaymentBySeq(sub SubID, seq uint64) (*Payment, error)
	// PutPayment creates or replaces the entry of p.Hash and indexes it by
	// subscription and sequence.
	PutPayment(p *Payment) error
	// ForEachPayment calls fn for a subscription's payments with sequence
	// greater than afterSeq, in sequence order.
	ForEachPayment(sub SubID, afterSeq uint64, fn func(*Payment) error) error
	// DeletePayment removes a payment's entry and its indexes (ErrNotFound
	// if there is none). Only refused entries are ever deleted: they cost
	// the payer nothing and are kept in bounded number (PruneRefused).
	DeletePayment(hash Hash) error
	// PruneRefused deletes the oldest refused payment entries of sub (by
	// time received) beyond the newest keep, and reports how many it
	// deleted.
	PruneRefused(sub SubID, keep int) (int, error)

	// AddRefusal adds one to the persisted counter of refusals for reason
	// and returns the new count.
	AddRefusal(reason string) (uint64, error)
	// ForEachRefusalCount calls fn with every refusal reason counted so
	// far and its count, in reason order.
	ForEachRefusalCount(fn func(reason string, n uint64) error) error
	// LastRefusalEvent returns when a payment.refused event of reason was
	// last queued for sub (zero: never).
	LastRefusalEvent(sub SubID, reason string) (time.Time, error)
	// SetLastRefusalEvent records that such an event was queued at at.
	SetLastRefusalEvent(sub SubID, reason string, at time.Time) error
	// ClearRefusalEvents forgets every reason's mark of sub, so each
	// reason is announced again (a new episode: the subscription was
	// credited or changed state).
	ClearRefusalEvents(sub SubID) error

	// SettleIndex is the last lnd invoice settle index processed (0: none),
	// the point to resume lnd's invoice subscription from.
	SettleIndex() (uint64, error)
	// SetSettleIndex moves the resume point; do it in the step that
	// credits the payment.
	SetSettleIndex(v uint64) error
	// AddIndex is the last lnd invoice add index processed (0: none).
	AddIndex() (uint64, error)
	// SetAddIndex moves the add-index resume point.
	SetAddIndex(v uint64) error

	// AppendEvent queues ev for delivery, assigning ev.ID the next number
	// and, if it has none, a random ev.UID.
	AppendEvent(ev *Event) error
	// Event returns a queued or delivered event, or ErrNotFound.
	Event(id EventID) (*Event, error)
	// PutEvent replaces an existing event (attempts, next attempt time,
	// delivery); a delivered event leaves the pending queue.
	PutEvent(ev *Event) error
	// MarkEventDelivered records a successful delivery at time at.
	MarkEventDelivered(id EventID, at time.Time) error
	// ForEachPendingEvent calls fn for every undelivered event with an id
	// greater than after, in id order.
	ForEachPendingEvent(after EventID, fn func(*Event) error) error
	// ForEachEvent calls fn for the events, delivered or not, with an id
	// greater than after, in id order, at most limit of them (limit <= 0:
	// all). Ids may have gaps (PostgreSQL burns the ids of a rolled-back
	// step), so a list walks this range instead of counting ids up.
	ForEachEvent(after EventID, limit int, fn func(*Event) error) error
	// LastEventID returns the highest event id stored (0: none), where a
	// newest-first list starts; with gaps in the ids, probing ids for
	// existence cannot find it.
	LastEventID() (EventID, error)
	// EventByUID returns the event with that public id, or ErrNotFound.
	EventByUID(uid EventUID) (*Event, error)
	// Delivery returns event id's delivery state at a webhook endpoint
	// (a fresh pending one if never attempted).
	Delivery(ep EndpointID, id EventID) (*Delivery, error)
	// PutDelivery stores an event's delivery state at an endpoint.
	PutDelivery(d *Delivery) error
	// DeleteDelivery removes an event's row at an endpoint.
	DeleteDelivery(ep EndpointID, id EventID) error
	// DeleteDeliveries removes up to max rows of an endpoint and
	// reports how many it removed.
	DeleteDeliveries(ep EndpointID, max int) (int, error)
	// DeliveryEndpoints lists the endpoints that have delivery rows.
	DeliveryEndpoints() ([]EndpointID, error)
	// ForEachDelivery calls fn for every row of endpoint ep with an
	// event id greater than after, in event id order.
	ForEachDelivery(ep EndpointID, after EventID, fn func(*Delivery) error) error

	// MarkHeld records that the payment with this hash was credited while
	// its HTLC is still held by lnd (not yet settled).
	MarkHeld(hash Hash) error
	// ClearHeld forgets a held mark once lnd settled or cancelled the HTLC.
	ClearHeld(hash Hash) error
	// ForEachHeld calls fn for every hash marked held, in hash order.
	ForEachHeld(fn func(Hash) error) error
	// HeldAt reports whether this node marks hash held (here) and
	// whether another receiver node sharing the ledger does (elsewhere).
	// Several nodes share one ledger only with PostgreSQL: a node must
	// neither settle a credit another node's lnd holds nor reverse one
	// it does not hold itself. A single-node store never reports
	// elsewhere.
	HeldAt(hash Hash) (here, elsewhere bool, err error)
}

type receiverStore struct{ db *DB }

// Compile-time check that the badger store provides the receiver's seam.
var _ ReceiverStore = (*receiverStore)(nil)

// Receiver returns the receiver daemon's view of the store.
func (db *DB) Receiver() ReceiverStore { return &receiverStore{db: db} }

// Update implements ReceiverStore.
func (r *receiverStore) Update(ctx context.Context, fn func(ReceiverTx) error) error {
	return r.db.update(ctx, func(t *txn) error { return fn(&receiverTx{t}) })
}

// View implements ReceiverStore.
func (r *receiverStore) View(ctx context.Context, fn func(ReceiverTx) error) error {
	return r.db.view(ctx, func(t *txn) error { return fn(&receiverTx{t}) })
}

type receiverTx struct{ *txn }

var _ ReceiverTx = (*receiverTx)(nil)

func (t *receiverTx) Plan(id PlanID) (*Plan, error) {
	p := &Plan{}
	if err := t.get(planKey(id), p); err != nil {
		return nil, fmt.Errorf("plan %q: %w", id, err)
	}
	return p, nil
}

func (t *receiverTx) PutPlan(p *Plan) error {
	if p.ID == "" || len(p.ID) > maxPlanIDLen {
		return fmt.Errorf("%w: plan id %q must be 1..%d bytes", ErrInvalid, p.ID,
			maxPlanIDLen)
	}
	return t.put(planKey(p.ID), p)
}

func (t *receiverTx) ForEachPlan(fn func(*Plan) error) error {
	return t.scan([]byte{pPlan}, nil, true, func(_ []byte, item *badger.Item) error {
		p := &Plan{}
		if err := item.Value(func(v []byte) error { return decodeRecord(v, p) }); err != nil {
			return err
		}
		return fn(p)
	})
}

func (t *receiverTx) Subscription(id SubID) (*ReceiverSubscription, error) {
	s := &ReceiverSubscription{}
	if err := t.get(rsubKey(id), s); err != nil {
		return nil, fmt.Errorf("subscription %s: %w", id, err)
	}
	return s, nil
}

func (t *receiverTx) SubscriptionByPublicID(p tlv.PublicID) (
	*ReceiverSubscription, error) {

	raw, err := t.getRaw(rsubPublicKey(p))
	if err != nil {
		return nil, fmt.Errorf("subscription %s: %w", p, err)
	}
	if len(raw) != len(SubID{}) {
		return nil, fmt.Errorf("%w: public id index entry of %d bytes",
			ErrCorrupt, len(raw))
	}
	s, err := t.Subscription(SubID(raw))
	if err != nil {
		return nil, err
	}
	if s.ID.PublicID() != p {
		return nil, fmt.Errorf("%w: public id index entry %s names "+
			"subscription %s", ErrCorrupt, p, s.ID)
	}
	return s, nil
}

func (t *receiverTx) PutSubscription(s *ReceiverSubscription) error {
	switch {
	case s.ID.IsZero():
		return fmt.Errorf("%w: subscription without id", ErrInvalid)
	case !s.State.valid():
		return fmt.Errorf("%w: subscription %s state %d", ErrInvalid, s.ID, s.State)
	}
	old := &ReceiverSubscription{}
	err := t.get(rsubKey(s.ID), old)
	switch {
	case errors.Is(err, ErrNotFound):
		old = nil
	case err != nil:
		return fmt.Errorf("subscription %s: %w", s.ID, err)
	}

	if old != nil && old.State != s.State {
		if err := t.del(rsubStateKey(old.State, s.ID)); err != nil {
			return err
		}
	}
	if old != nil && old.State.mayBeIndexed() &&
		(!s.State.watchesTime() || !old.dueAt().Equal(s.dueAt())) {

		if err := t.del(rsubPaidKey(old.dueAt(), s.ID)); err != nil {
			return err
		}
	}
	if old == nil {
		pub := s.ID.PublicID()
		id := s.ID
		if err := t.set(rsubPublicKey(pub), id[:]); err != nil {
			return err
		}
	}
	if err := t.set(rsubStateKey(s.State, s.ID), nil); err != nil {
		return err
	}
	if s.State.watchesTime() {
		if err := t.set(rsubPaidKey(s.dueAt(), s.ID), nil); err != nil {
			return err
		}
	}
	return t.put(rsubKey(s.ID), s)
}

func (t *receiverTx) ForEachSubscription(state SubState, page Page,
	fn func(*ReceiverSubscription) error) error {

	return forEachSubscription(t.txn, pRSub, pRSubByState, uint8(state),
		page, func() *ReceiverSubscription {
			return &ReceiverSubscription{}
		}, t.Subscription, fn)
}

func (t *receiverTx) SubscriptionsDueBefore(before time.Time,
	fn func(*ReceiverSubscription) error) error {

	end := timeKey(before)
	return t.scan([]byte{pRSubByPaid}, nil, false, func(k []byte, _ *badger.Item) error {
		if string(k[1:9]) >= string(end) {
			return ErrStop
		}
		var id SubID
		copy(id[:], k[9:])
		s, err := t.Subscription(id)
		if err != nil {
			return fmt.Errorf("paid-until index: %w", err)
		}
		if !s.State.watchesTime() {
			// A pending subscription indexed by an older store.
			return nil
		}
		return fn(s)
	})
}

func (t *receiverTx) Payment(hash Hash) (*Payment, error) {
	p := &Payment{}
	if err := t.get(paymentKey(hash), p); err != nil {
		return nil, fmt.Errorf("payment %s: %w", hash, err)
	}
	return p, nil
}

func (t *receiverTx) PaymentBySeq(sub SubID, seq uint64) (*Payment, error) {
	var (
		hash  Hash
		found bool
	)
	prefix := key(pPaymentBySq, sub[:], be64(seq))
	err := t.scan(prefix, nil, false, func(k []byte, _ *badger.Item) error {
		copy(hash[:], k[len(prefix):])
		found = true
		return ErrStop
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("payment %s/%d: %w", sub, seq, ErrNotFound)
	}
	return t.Payment(hash)
}

func (t *receiverTx) PutPayment(p *Payment) error {
	if !p.State.valid() {
		return fmt.Errorf("%w: payment %s state %d", ErrInvalid, p.Hash, p.State)
	}
	old := &Payment{}
	err := t.get(paymentKey(p.Hash), old)
	switch {
	case errors.Is(err, ErrNotFound):
		old = nil
	case err != nil:
		return fmt.Errorf("payment %s: %w", p.Hash, err)
	case !old.SubID.IsZero() && (old.SubID != p.SubID || old.Seq != p.Seq):
		if err := t.del(paymentSeqKey(old.SubID, old.Seq, p.Hash)); err != nil {
			return err
		}
	}
	if !p.SubID.IsZero() {
		if err := t.set(paymentSeqKey(p.SubID, p.Seq, p.Hash), nil); err != nil {
			return err
		}
	}
	if err := t.updateRefusedIndex(old, p); err != nil {
		return err
	}
	return t.put(paymentKey(p.Hash), p)
}

func (t *receiverTx) ForEachPayment(sub SubID, afterSeq uint64,
	fn func(*Payment) error) error {

	prefix := key(pPaymentBySq, sub[:])
	var start []byte
	if afterSeq < ^uint64(0) {
		start = key(pPaymentBySq, sub[:], be64(afterSeq+1))
	} else {
		return nil
	}
	return t.scan(prefix, start, false, func(k []byte, _ *badger.Item) error {
		var hash Hash
		copy(hash[:], k[len(prefix)+8:])
		p, err := t.Payment(hash)
		if err != nil {
			return fmt.Errorf("sequence index: %w", err)
		}
		return fn(p)
	})
}

func (t *receiverTx) SettleIndex() (uint64, error) { return t.getU64(keySettleIndex) }

func (t *receiverTx) SetSettleIndex(v uint64) error { return t.set(keySettleIndex, be64(v)) }

func (t *receiverTx) AddIndex() (uint64, error) { return t.getU64(keyAddIndex) }

func (t *receiverTx) SetAddIndex(v uint64) error { return t.set(keyAddIndex, be64(v)) }

func (t *receiverTx) AppendEvent(ev *Event) error {
	last, err := t.getU64(keyLastEventID)
	if err != nil {
		return err
	}
	id := EventID(last + 1)
	if err := t.set(keyLastEventID, be64(uint64(id))); err != nil {
		return err
	}
	ev.ID = id
	if ev.UID.IsZero() {
		if ev.UID, err = NewEventUID(); err != nil {
			return err
		}
	}
	if !ev.Delivered {
		if err := t.set(eventQueueKey(id), nil); err != nil {
			return err
		}
	}
	return t.put(eventKey(id), ev)
}

func (t *receiverTx) Event(id EventID) (*Event, error) {
	ev := &Event{}
	if err := t.get(eventKey(id), ev); err != nil {
		return nil, fmt.Errorf("event %d: %w", id, err)
	}
	return ev, nil
}

func (t *receiverTx) PutEvent(ev *Event) error {
	ok, err := t.exists(eventKey(ev.ID))
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("event %d: %w (use AppendEvent for new events)",
			ev.ID, ErrNotFound)
	}
	if ev.Delivered {
		err = t.del(eventQueueKey(ev.ID))
	} else {
		err = t.set(eventQueueKey(ev.ID), nil)
	}
	if err != nil {
		return err
	}
	return t.put(eventKey(ev.ID), ev)
}

func (t *receiverTx) MarkEventDelivered(id EventID, at time.Time) error {
	ev, err := t.Event(id)
	if err != nil {
		return err
	}
	ev.Delivered = true
	ev.DeliveredAt = at
	return t.PutEvent(ev)
}

func (t *receiverTx) ForEachEvent(after EventID, limit int,
	fn func(*Event) error) error {

	if uint64(after) == ^uint64(0) {
		return nil
	}
	fn = limited(limit, fn)
	return t.scan([]byte{pEvent}, eventKey(after+1), true,
		func(_ []byte, item *badger.Item) error {
			ev := &Event{}
			err := item.Value(func(v []byte) error {
				return decodeRecord(v, ev)
			})
			if err != nil {
				return fmt.Errorf("event list: %w", err)
			}
			return fn(ev)
		})
}

func (t *receiverTx) LastEventID() (EventID, error) {
	last, err := t.getU64(keyLastEventID)
	return EventID(last), err
}

func (t *receiverTx) ForEachPendingEvent(after EventID, fn func(*Event) error) error {
	var start []byte
	if uint64(after) == ^uint64(0) {
		return nil
	}
	start = eventQueueKey(after + 1)
	return t.scan([]byte{pEventQueue}, start, false, func(k []byte, _ *badger.Item) error {
		ev, err := t.Event(EventID(beU64(k[1:])))
		if err != nil {
			return fmt.Errorf("event queue: %w", err)
		}
		return fn(ev)
	})
}
