package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/lightningnetwork/lnd/lnwire"
)

// SenderStore is what the payer's daemon needs from the store: atomic steps
// over its subscriptions, payment attempts and daily spend.
type SenderStore interface {
	// Update runs fn as one atomic step and returns once it is on disk.
	// fn may be run again after a conflict, so it must only touch tx.
	Update(ctx context.Context, fn func(tx SenderTx) error) error

	// View runs fn on a consistent read-only snapshot.
	View(ctx context.Context, fn func(tx SenderTx) error) error
}

// SenderTx is one sender transaction. An attempt must be Put (with its
// preimage, in state AttemptCreated, together with the subscription's
// advanced NextSeq) and the Update must have returned before the payment is
// handed to lnd.
type SenderTx interface {
	// Subscription returns the subscription, or ErrNotFound.
	Subscription(id SubID) (*SenderSubscription, error)
	// PutSubscription creates or replaces a subscription and keeps its
	// state index in step.
	PutSubscription(s *SenderSubscription) error
	// ForEachSubscription calls fn for the subscriptions in the given state
	// (0: any) in id order, within page.
	ForEachSubscription(state SenderState, page Page,
		fn func(*SenderSubscription) error) error

	// Attempt returns the attempt of a subscription's sequence, or
	// ErrNotFound.
	Attempt(sub SubID, seq uint64) (*Attempt, error)
	// AttemptByHash returns the attempt that uses a payment hash, or
	// ErrNotFound.
	AttemptByHash(hash Hash) (*Attempt, error)
	// PutAttempt creates or replaces the attempt of (a.SubID, a.Seq). It
	// fails with ErrDuplicateHash if another attempt uses a.Hash.
	PutAttempt(a *Attempt) error
	// ForEachAttempt calls fn for a subscription's attempts with sequence
	// greater than afterSeq, in sequence order.
	ForEachAttempt(sub SubID, afterSeq uint64, fn func(*Attempt) error) error
	// ForEachOpenAttempt calls fn for every attempt that is not final
	// (created or in flight): what must be resolved with lnd at startup.
	ForEachOpenAttempt(fn func(*Attempt) error) error

	// AddSpend adds amt to a subscription's spend on day and returns the new
	// total.
	AddSpend(sub SubID, day Day, amt lnwire.MilliSatoshi) (lnwire.MilliSatoshi, error)
	// SpendOn returns a subscription's spend on day (0 if none).
	SpendOn(sub SubID, day Day) (lnwire.MilliSatoshi, error)
	// ReleaseSpend takes amt back from a subscription's spend on day (an
	// unused reservation) and returns the new total. Releasing more than
	// was added is ErrInvalid: it would hide a bookkeeping bug.
	ReleaseSpend(sub SubID, day Day, amt lnwire.MilliSatoshi) (lnwire.MilliSatoshi, error)
}

type senderStore struct{ db *DB }

// Compile-time check that the badger store provides the sender's seam.
var _ SenderStore = (*senderStore)(nil)

// Sender returns the sender daemon's view of the store.
func (db *DB) Sender() SenderStore { return &senderStore{db: db} }

// Update implements SenderStore.
func (s *senderStore) Update(ctx context.Context, fn func(SenderTx) error) error {
	return s.db.update(ctx, func(t *txn) error { return fn(&senderTx{t}) })
}

// View implements SenderStore.
func (s *senderStore) View(ctx context.Context, fn func(SenderTx) error) error {
	return s.db.view(ctx, func(t *txn) error { return fn(&senderTx{t}) })
}

type senderTx struct{ *txn }

var _ SenderTx = (*senderTx)(nil)

func (t *senderTx) Subscription(id SubID) (*SenderSubscription, error) {
	s := &SenderSubscription{}
	if err := t.get(ssubKey(id), s); err != nil {
		return nil, fmt.Errorf("subscription %s: %w", id, err)
	}
	return s, nil
}

func (t *senderTx) PutSubscription(s *SenderSubscription) error {
	switch {
	case s.ID.IsZero():
		return fmt.Errorf("%w: subscription without id", ErrInvalid)
	case !s.State.valid():
		return fmt.Errorf("%w: subscription %s state %d", ErrInvalid, s.ID, s.State)
	}
	old := &SenderSubscription{}
	err := t.get(ssubKey(s.ID), old)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return fmt.Errorf("subscription %s: %w", s.ID, err)
	case old.State != s.State:
		if err := t.del(ssubStateKey(old.State, s.ID)); err != nil {
			return err
		}
	}
	if err := t.set(ssubStateKey(s.State, s.ID), nil); err != nil {
		return err
	}
	return t.put(ssubKey(s.ID), s)
}

func (t *senderTx) ForEachSubscription(state SenderState, page Page,
	fn func(*SenderSubscription) error) error {

	return forEachSubscription(t.txn, pSSub, pSSubByState, uint8(state),
		page, func() *SenderSubscription { return &SenderSubscription{} },
		t.Subscription, fn)
}

func (t *senderTx) Attempt(sub SubID, seq uint64) (*Attempt, error) {
	a := &Attempt{}
	if err := t.get(attemptKey(sub, seq), a); err != nil {
		return nil, fmt.Errorf("attempt %s/%d: %w", sub, seq, err)
	}
	return a, nil
}

func (t *senderTx) AttemptByHash(hash Hash) (*Attempt, error) {
	v, err := t.getRaw(attemptHashKey(hash))
	switch {
	case err != nil:
		return nil, fmt.Errorf("attempt with hash %s: %w", hash, err)
	case len(v) != 24:
		return nil, fmt.Errorf("%w: hash index entry of %d bytes", ErrCorrupt, len(v))
	}
	var sub SubID
	copy(sub[:], v[:16])
	return t.Attempt(sub, beU64(v[16:]))
}

func (t *senderTx) PutAttempt(a *Attempt) error {
	switch {
	case a.SubID.IsZero():
		return fmt.Errorf("%w: attempt without subscription", ErrInvalid)
	case !a.State.valid():
		return fmt.Errorf("%w: attempt %s/%d state %d", ErrInvalid, a.SubID, a.Seq,
			a.State)
	}
	ref := append(append(make([]byte, 0, 24), a.SubID[:]...), be64(a.Seq)...)

	// The hash must be ours alone: two attempts on one hash would pay twice.
	v, err := t.getRaw(attemptHashKey(a.Hash))
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return err
	case string(v) != string(ref):
		return fmt.Errorf("%w: %s", ErrDuplicateHash, a.Hash)
	}

	old := &Attempt{}
	err = t.get(attemptKey(a.SubID, a.Seq), old)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return fmt.Errorf("attempt %s/%d: %w", a.SubID, a.Seq, err)
	case old.Hash != a.Hash:
		if err := t.del(attemptHashKey(old.Hash)); err != nil {
			return err
		}
	}

	if err := t.set(attemptHashKey(a.Hash), ref); err != nil {
		return err
	}
	if a.State.Final() {
		err = t.del(attemptOpenKey(a.SubID, a.Seq))
	} else {
		err = t.set(attemptOpenKey(a.SubID, a.Seq), nil)
	}
	if err != nil {
		return err
	}
	return t.put(attemptKey(a.SubID, a.Seq), a)
}

func (t *senderTx) ForEachAttempt(sub SubID, afterSeq uint64,
	fn func(*Attempt) error) error {

	if afterSeq == ^uint64(0) {
		return nil
	}
	prefix := key(pAttempt, sub[:])
	start := attemptKey(sub, afterSeq+1)
	return t.scan(prefix, start, true, func(_ []byte, item *badger.Item) error {
		a := &Attempt{}
		if err := item.Value(func(v []byte) error { return decodeRecord(v, a) }); err != nil {
			return err
		}
		return fn(a)
	})
}

func (t *senderTx) ForEachOpenAttempt(fn func(*Attempt) error) error {
	return t.scan([]byte{pAttemptOpen}, nil, false, func(k []byte, _ *badger.Item) error {
		var sub SubID
		copy(sub[:], k[1:17])
		a, err := t.Attempt(sub, beU64(k[17:25]))
		if err != nil {
			return fmt.Errorf("open attempt index: %w", err)
		}
		return fn(a)
	})
}

func (t *senderTx) AddSpend(sub SubID, day Day,
	amt lnwire.MilliSatoshi) (lnwire.MilliSatoshi, error) {

	cur, err := t.SpendOn(sub, day)
	if err != nil {
		return 0, err
	}
	total := cur + amt
	if total < cur {
		return 0, fmt.Errorf("%w: spend of %s on day %d overflows", ErrInvalid, sub, day)
	}
	if err := t.set(spendKey(sub, day), encodeCounter(uint64(total))); err != nil {
		return 0, err
	}
	return total, nil
}

func (t *senderTx) SpendOn(sub SubID, day Day) (lnwire.MilliSatoshi, error) {
	v, err := t.getRaw(spendKey(sub, day))
	switch {
	case errors.Is(err, ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, err
	}
	n, err := decodeCounter(v)
	return lnwire.MilliSatoshi(n), err
}

func (t *senderTx) ReleaseSpend(sub SubID, day Day,
	amt lnwire.MilliSatoshi) (lnwire.MilliSatoshi, error) {

	cur, err := t.SpendOn(sub, day)
	if err != nil {
		return 0, err
	}
	if amt > cur {
		return 0, fmt.Errorf("%w: release of %v from spend %v of %s on "+
			"day %d", ErrInvalid, amt, cur, sub, day)
	}
	total := cur - amt
	if err := t.set(spendKey(sub, day), encodeCounter(uint64(total))); err != nil {
		return 0, err
	}
	return total, nil
}
