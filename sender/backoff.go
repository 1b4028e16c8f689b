package sender

import (
	"errors"
	"time"

	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/satstream/satstream/store"
)

// failStep backs a subscription off after a local (store) error; the
// error level is right because the store failing is not a peer's doing.
func (e *Engine) failStep(r *subRun, what string, err error) {
	e.log.Errorf("Subscription %s: %s: %v", r.id, what, err)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.setLocalWaitingLocked(r, err)
}

// diskFullRetry bounds the wait after the store refused a step for a full
// disk: space may come back any moment (an operator frees it), and the
// backoff must not have grown to BackoffMax by then.
const diskFullRetry = 10 * time.Second

// setLocalWaitingLocked records a local (store) failure like
// setWaitingLocked, retrying within diskFullRetry while the disk is full.
func (e *Engine) setLocalWaitingLocked(r *subRun, err error) {
	e.setWaitingLocked(r, "local error: "+err.Error())
	if !errors.Is(err, store.ErrDiskFull) {
		return
	}
	if limit := e.clock.Now().Add(diskFullRetry); r.notBefore.After(limit) {
		r.notBefore = limit
		e.scheduleLocked(r, limit)
	}
}

// setWaitingLocked records a failure and the next time to try.
func (e *Engine) setWaitingLocked(r *subRun, reason string) {
	now := e.clock.Now()
	if r.waitingSince.IsZero() {
		r.waitingSince = now
	}
	r.waitingReason = reason
	r.notBefore = now.Add(r.bo.NextBackOff())
	e.changed()
	e.scheduleLocked(r, r.notBefore)
}

// clearWaitingLocked ends the waiting state after a success.
func (e *Engine) clearWaitingLocked(r *subRun) {
	if !r.waitingSince.IsZero() {
		e.log.Infof("Subscription %s: payments flow again after "+
			"waiting since %v", r.id,
			r.waitingSince.UTC().Format(time.RFC3339))
	}
	if !r.waitingSince.IsZero() {
		e.changed()
	}
	r.waitingSince = time.Time{}
	r.waitingReason = ""
	r.notBefore = time.Time{}
	r.bo.Reset()
}

// refusedWait is how long a refused subscription waits before the next
// probe: RefusedRetry, doubled for each refused probe, at most
// RefusedRetryMax.
func (e *Engine) refusedWait(probes uint32) time.Duration {
	d := e.cfg.RefusedRetry
	for n := uint32(0); n < probes && d < e.cfg.RefusedRetryMax; n++ {
		d *= 2
	}
	if d > e.cfg.RefusedRetryMax {
		d = e.cfg.RefusedRetryMax
	}
	return d
}

// transient reports failures worth retrying with the same hash after a
// backoff: the receiver (or our channel) may come back.
func transient(reason lnrpc.PaymentFailureReason) bool {
	return reason != lnrpc.PaymentFailureReason_FAILURE_REASON_INCORRECT_PAYMENT_DETAILS
}

// waitingReason turns a failure into the text of the waiting state.
func waitingReason(st lndclient.PaymentStatus, err error) string {
	switch {
	case errors.Is(err, errMaybeStarting):
		return "handed to lnd, which has no record of it yet: " +
			"asking again"
	case err != nil:
		return "own lnd unreachable: " + err.Error()
	}
	switch st.FailureReason {
	case lnrpc.PaymentFailureReason_FAILURE_REASON_NO_ROUTE,
		lnrpc.PaymentFailureReason_FAILURE_REASON_TIMEOUT:
		return "receiver offline (" + reasonName(st.FailureReason) + ")"
	case lnrpc.PaymentFailureReason_FAILURE_REASON_INSUFFICIENT_BALANCE:
		return "insufficient balance"
	}
	return "payment failed (" + reasonName(st.FailureReason) + ")"
}

// reasonName shortens lnd's failure reason names for logs and metrics.
func reasonName(r lnrpc.PaymentFailureReason) string {
	const prefix = "FAILURE_REASON_"
	n := r.String()
	if len(n) > len(prefix) && n[:len(prefix)] == prefix {
		n = n[len(prefix):]
	}
	return lowerASCII(n)
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
