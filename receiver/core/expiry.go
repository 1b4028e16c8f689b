package core

import (
	"context"
	"errors"
	"time"

	"github.com/satstream/satstream/store"
)

// Age moves sub along the time-driven edges of the lifecycle at now: active
// to past due when paid time is over, active or past due to expired when the
// grace period is over too. It stores the change and queues its event in tx
// and reports whether anything changed.
func Age(tx store.ReceiverTx, sub *store.ReceiverSubscription,
	now time.Time) (bool, error) {

	var trig Trigger
	graceEnd := sub.PaidUntil.Add(sub.Terms.Grace)
	switch {
	case sub.State != store.SubActive && sub.State != store.SubPastDue:
		return false, nil
	case !now.Before(graceEnd):
		trig = TrigGraceOver
	case sub.State == store.SubActive && !now.Before(sub.PaidUntil):
		trig = TrigPaidTimeOver
	default:
		return false, nil
	}
	return true, transitionTo(tx, sub, trig, now, "")
}

// DueSubscriptions returns the ids of subscriptions the due index says need
// ageing at now: active ones whose paid time ended, past-due ones whose
// grace ended. The index keys a past-due subscription by the end of its
// grace, so one in grace is not read at all; the checks below stay as the
// rule itself.
func DueSubscriptions(tx store.ReceiverTx, now time.Time,
	limit int) ([]store.SubID, error) {

	var ids []store.SubID
	err := tx.SubscriptionsDueBefore(now.Add(time.Nanosecond),
		func(s *store.ReceiverSubscription) error {
			if s.State == store.SubPending {
				return nil
			}
			if s.State == store.SubPastDue &&
				now.Before(s.PaidUntil.Add(s.Terms.Grace)) {
				return nil
			}
			ids = append(ids, s.ID)
			if limit > 0 && len(ids) >= limit {
				return store.ErrStop
			}
			return nil
		})
	return ids, err
}

// AgeBatch is the most subscriptions one expiry transaction ages. Each
// ageing writes the subscription, its index entries and an event: a few
// hundred bytes, so a batch stays far below badger's transaction limit and
// a short step for the writers queued behind it.
const AgeBatch = 200

// Aged is a subscription whose state an expiry pass changed.
type Aged struct {
	ID    store.SubID
	State store.SubState
}

// AgeSubscriptions ages ids at now in transactions of at most AgeBatch
// subscriptions: one commit and one fsync per batch instead of one each,
// so the expiry pass of many subscriptions whose paid time ends together
// does not fill the group commit with single steps that readers and
// payments queue behind. It returns the changes that were committed. A
// batch too big for one transaction, or failing on one subscription, is
// split until the failure is isolated, so one bad record only costs its own
// ageing. ErrDiskFull and a cancelled ctx end the pass (every further step
// would be refused too); the error is returned with what was committed.
func AgeSubscriptions(ctx context.Context, rs store.ReceiverStore,
	ids []store.SubID, now time.Time,
	onErr func(id store.SubID, err error)) ([]Aged, error) {

	var out []Aged
	for len(ids) > 0 {
		n := min(len(ids), AgeBatch)
		aged, err := ageSplit(ctx, rs, ids[:n], now, onErr)
		out = append(out, aged...)
		if err != nil {
			return out, err
		}
		ids = ids[n:]
	}
	return out, nil
}

// ageSplit ages ids in one transaction, halving on failure.
func ageSplit(ctx context.Context, rs store.ReceiverStore, ids []store.SubID,
	now time.Time, onErr func(id store.SubID, err error)) ([]Aged, error) {

	var aged []Aged
	err := rs.Update(ctx, func(tx store.ReceiverTx) error {
		aged = aged[:0]
		for _, id := range ids {
			sub, err := tx.Subscription(id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			changed, err := Age(tx, sub, now)
			if err != nil {
				return err
			}
			if changed {
				aged = append(aged, Aged{ID: id, State: sub.State})
			}
		}
		return nil
	})
	switch {
	case err == nil:
		return aged, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, store.ErrDiskFull), errors.Is(err, store.ErrFailed),
		errors.Is(err, store.ErrClosed),
		errors.Is(err, store.ErrUnavailable):
		return nil, err
	case len(ids) == 1:
		onErr(ids[0], err)
		return nil, nil
	}
	half := len(ids) / 2
	first, err := ageSplit(ctx, rs, ids[:half], now, onErr)
	if err != nil {
		return first, err
	}
	second, err := ageSplit(ctx, rs, ids[half:], now, onErr)
	return append(first, second...), err
}
