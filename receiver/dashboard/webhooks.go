package dashboard

import (
	"errors"
	"net/http"
)

// ErrNoRetry is shown when the dashboard was built without a way to retry
// webhook events.
var ErrNoRetry = errors.New("webhook retry is not available")

// retryWebhooks retries the dead letters (the oldest of them, a batch per
// click) exactly as the API's POST /v1/webhooks/events/{id}/retry retries
// one: due now at the endpoints that gave them up, the give-up clock
// restarted, and the dispatcher rewound to them.
func (d *Dashboard) retryWebhooks(w http.ResponseWriter, r *http.Request) {
	if d.cfg.RetryDeadLetters == nil {
		d.pages.Error(w, r, http.StatusInternalServerError,
			ErrNoRetry.Error())
		return
	}
	if _, err := d.cfg.RetryDeadLetters(r.Context()); err != nil {
		d.pages.Error(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
