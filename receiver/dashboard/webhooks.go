package dashboard

import (
	"errors"
	"net/http"

	"github.com/satstream/satstream/store"
)

// maxRetryBatch bounds the events one retry click reschedules (one store
// transaction).
const maxRetryBatch = 1000

// retryWebhooks makes every queued event due now (the oldest
// maxRetryBatch) and wakes the dispatcher, instead of waiting out the
// backoff after an endpoint was fixed.
func (d *Dashboard) retryWebhooks(w http.ResponseWriter, r *http.Request) {
	now := d.cfg.Now()
	err := d.cfg.Store.Update(r.Context(), func(tx store.ReceiverTx) error {
		var due []*store.Event
		err := tx.ForEachPendingEvent(0, func(ev *store.Event) error {
			if ev.NextAttempt.After(now) {
				due = append(due, ev)
			}
			if len(due) >= maxRetryBatch {
				return store.ErrStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, store.ErrStop) {
			return err
		}
		for _, ev := range due {
			ev.NextAttempt = now
			if err := tx.PutEvent(ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		d.pages.Error(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	if d.cfg.WakeWebhooks != nil {
		d.cfg.WakeWebhooks()
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
