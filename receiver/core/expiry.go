package core

import (
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

// DueSubscriptions returns the ids of subscriptions the paid-until index says
// may need ageing at now: those whose paid time ended before now.
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
