package receiver

import (
	"context"
	"sync"
	"time"

	"github.com/satstream/satstream/receiver/core"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
)

// paidIndexMax bounds the paid index (about 100 bytes an entry): past it,
// an arbitrary entry makes room and is read from the ledger again when
// next asked for.
const paidIndexMax = 500_000

// paidEntry is what the paid check answers from: the fields of a
// subscription that core.Paid and core.EndsAt read.
type paidEntry struct {
	id          store.SubID
	state       store.SubState
	paidUntil   time.Time
	cancelledAt time.Time
	grace       time.Duration
}

func newPaidEntry(s *store.ReceiverSubscription) paidEntry {
	return paidEntry{id: s.ID, state: s.State, paidUntil: s.PaidUntil,
		cancelledAt: s.CancelledAt, grace: s.Terms.Grace}
}

// sub is the entry as a subscription, for core's rules.
func (e *paidEntry) sub() *store.ReceiverSubscription {
	s := &store.ReceiverSubscription{ID: e.id, State: e.state,
		PaidUntil: e.paidUntil, CancelledAt: e.cancelledAt}
	s.Terms.Grace = e.grace
	return s
}

// paidIndex answers the paid check from memory. It wraps the receiver's
// store: every Update goes through it and, once the Update has returned
// (the step is on disk, or the store failed), the subscriptions the step
// put are forgotten, so the next check reads them again. An entry is
// only ever filled from a View, which shows nothing that is not on disk,
// and only if no step forgot anything while that View ran; so the index
// never shows a credit, an expiry or a cancel that a crash could take
// back, and lags a durable one by no more than the end of its Update.
//
// It is only correct when this process makes every write to the ledger:
// badger, whose directory lock admits one process. Receivers sharing a
// PostgreSQL ledger write each other's subscriptions and do not use it.
type paidIndex struct {
	store.ReceiverStore

	mu sync.Mutex
	// gen counts forgets: a fill that began before one is dropped.
	gen uint64
	m   map[tlv.PublicID]paidEntry
	max int
	// ledgerErr, if set, is the ledger's failure (store.DB.Err): once
	// the ledger failed every read of it fails, and so does the paid
	// check, instead of answering from memory while the daemon stops.
	ledgerErr func() error
}

var _ store.ReceiverStore = (*paidIndex)(nil)

func newPaidIndex(rs store.ReceiverStore) *paidIndex {
	return &paidIndex{ReceiverStore: rs, m: make(map[tlv.PublicID]paidEntry),
		max: paidIndexMax}
}

// newLedgerPaidIndex is the paid index of a badger ledger, as the daemon
// wires it: it fails with the ledger.
func newLedgerPaidIndex(db *store.DB) *paidIndex {
	p := newPaidIndex(db.Receiver())
	p.ledgerErr = db.Err
	return p
}

// Update implements store.ReceiverStore: it runs the step and forgets the
// subscriptions it put, once it is on disk.
func (p *paidIndex) Update(ctx context.Context,
	fn func(tx store.ReceiverTx) error) error {

	// A step may run more than once (conflicts): every attempt's puts
	// are forgotten.
	var put []store.SubID
	err := p.ReceiverStore.Update(ctx, func(tx store.ReceiverTx) error {
		return fn(&putRecorder{ReceiverTx: tx, put: &put})
	})
	if len(put) > 0 {
		p.forget(put)
	}
	return err
}

func (p *paidIndex) forget(ids []store.SubID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen++
	for _, id := range ids {
		delete(p.m, id.PublicID())
	}
}

// paid returns the paid-check entry of the subscription with public id
// pub, from memory or else from a View (store.ErrNotFound if there is
// none).
func (p *paidIndex) paid(ctx context.Context, pub tlv.PublicID) (paidEntry,
	error) {

	if p.ledgerErr != nil {
		if err := p.ledgerErr(); err != nil {
			return paidEntry{}, err
		}
	}
	p.mu.Lock()
	e, ok := p.m[pub]
	gen := p.gen
	p.mu.Unlock()
	if ok {
		return e, nil
	}
	e, err := viewPaid(ctx, p.ReceiverStore, pub)
	if err != nil {
		return e, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen != gen {
		// A step was forgotten while we read: what we read may be
		// older than it. Answer with it (it was on disk when read) but
		// do not keep it.
		return e, nil
	}
	if len(p.m) >= p.max {
		for k := range p.m {
			delete(p.m, k)
			break
		}
	}
	p.m[pub] = e
	return e, nil
}

// viewPaid reads a subscription's paid-check entry from the ledger.
func viewPaid(ctx context.Context, rs store.ReceiverStore,
	pub tlv.PublicID) (paidEntry, error) {

	var e paidEntry
	err := rs.View(ctx, func(tx store.ReceiverTx) error {
		s, err := tx.SubscriptionByPublicID(pub)
		if err != nil {
			return err
		}
		e = newPaidEntry(s)
		return nil
	})
	return e, err
}

// putRecorder notes the subscriptions a step puts.
type putRecorder struct {
	store.ReceiverTx
	put *[]store.SubID
}

// PutSubscription implements store.ReceiverTx.
func (r *putRecorder) PutSubscription(s *store.ReceiverSubscription) error {
	*r.put = append(*r.put, s.ID)
	return r.ReceiverTx.PutSubscription(s)
}

// paidView is the answer of GET /v1/subscriptions/{id}/paid (fields in
// the order the map it replaced was written in).
type paidView struct {
	EndsAt     *time.Time `json:"ends_at"`
	GraceUntil *time.Time `json:"grace_until"`
	ID         string     `json:"id"`
	Paid       bool       `json:"paid"`
	PaidUntil  *time.Time `json:"paid_until"`
	State      string     `json:"state"`
}

// newPaidView renders the entry of the subscription with public id pub at
// now, with the rules of core.NewSubscriptionView.
func newPaidView(pub tlv.PublicID, e *paidEntry, now time.Time) paidView {
	s := e.sub()
	v := paidView{ID: pub.String(), Paid: core.Paid(s, now),
		State: s.State.String()}
	v.PaidUntil, v.GraceUntil, v.EndsAt = core.PaidTimes(s)
	return v
}
