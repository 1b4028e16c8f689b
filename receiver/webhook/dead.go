package webhook

import (
	"errors"
	"slices"

	"github.com/satstream/satstream/store"
)

// Dead letters are events given up at one endpoint at least. They left the
// pending queue (or will, once the other endpoints finish), so they are
// found from the delivery rows instead: a finished event's delivered rows
// are deleted, so the rows left are pending or dead, and a scan of one
// endpoint's rows skips the events delivered there.

// Endpoints returns the ids of urls, each once (a URL given twice is one
// endpoint, as in the dispatcher).
func Endpoints(urls []string) []store.EndpointID {
	out := make([]store.EndpointID, 0, len(urls))
	for _, u := range urls {
		id := store.NewEndpointID(u)
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// DeadLetters returns the ids of the first limit events after after that
// are dead at one of eps at least, in id order (an event dead at two
// endpoints once).
func DeadLetters(tx store.ReceiverTx, eps []store.EndpointID,
	after store.EventID, limit int) ([]store.EventID, error) {

	if limit <= 0 {
		return nil, nil
	}
	// Each endpoint's first limit dead letters hold the first limit of
	// them all.
	var ids []store.EventID
	for _, ep := range eps {
		n := 0
		err := tx.ForEachDelivery(ep, after, func(dl *store.Delivery) error {
			if dl.State != store.DeliveryDead {
				return nil
			}
			ids = append(ids, dl.Event)
			n++
			if n >= limit {
				return store.ErrStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, store.ErrStop) {
			return nil, err
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > limit {
		ids = ids[:limit]
	}
	return ids, nil
}

// CountDead counts the events dead at one of eps at least. It reads every
// row of eps, pending or dead, but no event.
func CountDead(tx store.ReceiverTx, eps []store.EndpointID) (int, error) {
	if len(eps) == 1 {
		n := 0
		err := tx.ForEachDelivery(eps[0], 0, func(dl *store.Delivery) error {
			if dl.State == store.DeliveryDead {
				n++
			}
			return nil
		})
		return n, err
	}
	dead := map[store.EventID]struct{}{}
	for _, ep := range eps {
		err := tx.ForEachDelivery(ep, 0, func(dl *store.Delivery) error {
			if dl.State == store.DeliveryDead {
				dead[dl.Event] = struct{}{}
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return len(dead), nil
}
