package webhook

import (
	"context"

	"github.com/satstream/satstream/store"
)

// tidyBatch bounds the rows deleted or events settled in one transaction.
const tidyBatch = 500

// tidy deletes the delivery rows of endpoints no longer configured, and
// settles the pending events that every configured endpoint has finished
// (delivered or dead): those an endpoint since removed was holding in the
// pending queue.
func (d *Dispatcher) tidy(ctx context.Context) error {
	if len(d.eps) == 0 {
		// Nothing is finished where nothing is configured: the
		// events wait for an endpoint.
		return nil
	}
	current := make(map[store.EndpointID]bool, len(d.eps))
	for _, ep := range d.eps {
		current[ep.id] = true
	}
	var stale []store.EndpointID
	err := d.cfg.Store.View(ctx, func(tx store.ReceiverTx) error {
		ids, err := tx.DeliveryEndpoints()
		stale = stale[:0]
		for _, id := range ids {
			if !current[id] {
				stale = append(stale, id)
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, id := range stale {
		total := 0
		for {
			var n int
			err := d.cfg.Store.Update(ctx, func(tx store.ReceiverTx) error {
				var err error
				n, err = tx.DeleteDeliveries(id, tidyBatch)
				return err
			})
			if err != nil {
				return err
			}
			total += n
			if n < tidyBatch {
				break
			}
		}
		d.cfg.Log.Infof("webhook: deleted %d delivery records of %v, "+
			"no longer configured", total, id)
	}

	var after store.EventID
	for {
		var (
			done    []store.EventID
			scanned int
		)
		err := d.cfg.Store.View(ctx, func(tx store.ReceiverTx) error {
			done, scanned = done[:0], 0
			return tx.ForEachPendingEvent(after,
				func(ev *store.Event) error {
					scanned++
					after = ev.ID
					fin, err := d.finished(tx, ev.ID)
					if err != nil {
						return err
					}
					if fin {
						done = append(done, ev.ID)
					}
					if scanned >= tidyBatch {
						return store.ErrStop
					}
					return nil
				})
		})
		if err != nil {
			return err
		}
		if len(done) > 0 {
			err := d.cfg.Store.Update(ctx, func(tx store.ReceiverTx) error {
				for _, id := range done {
					err := d.settle(tx, id, nil, nil, d.cfg.Now())
					if err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			// Named, so an endpoint removed by mistake can be
			// given them again: re-added, it shows them
			// not_sent, and a retry sends them there.
			d.cfg.Log.Warnf("webhook: %d events (%d to %d) left "+
				"the pending queue, finished at every "+
				"configured endpoint; an endpoint removed "+
				"from the config does not get them (re-add "+
				"it and POST /v1/webhooks/events/{id}/retry)",
				len(done), done[0], done[len(done)-1])
		}
		if scanned < tidyBatch {
			return nil
		}
	}
}

// finished tells whether every configured endpoint has event id delivered
// or given up.
func (d *Dispatcher) finished(tx store.ReceiverTx, id store.EventID) (bool,
	error) {

	for _, ep := range d.eps {
		dl, err := tx.Delivery(ep.id, id)
		if err != nil {
			return false, err
		}
		if dl.State == store.DeliveryPending {
			return false, nil
		}
	}
	return true, nil
}
