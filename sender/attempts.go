package sender

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
)

// request builds the keysend for an attempt: our records, the keysend
// preimage record and the hash we chose (never lndclient's KeySend, which
// would pick a preimage we don't know).
func (e *Engine) request(r *subRun, a *store.Attempt) (
	lndclient.SendPaymentRequest, error) {

	recs := tlv.Records{
		Version:        tlv.Version1,
		SubscriptionID: tlv.SubscriptionID(a.SubID),
		Sequence:       a.Seq,
		PlanID:         r.offer.PlanID,
		Cancel:         a.Cancel,
	}
	custom, err := recs.Encode()
	if err != nil {
		return lndclient.SendPaymentRequest{}, err
	}
	custom[record.KeySendType] = append([]byte{}, a.Preimage[:]...)
	hash := lntypes.Hash(a.Hash)
	return lndclient.SendPaymentRequest{
		Target:        attemptDestination(r, a),
		Amount:        btcutil.Amount(a.Amount / 1000),
		MaxFeeMsat:    a.MaxFee,
		Timeout:       e.cfg.PaymentTimeout,
		PaymentHash:   &hash,
		CustomRecords: custom,
	}, nil
}

// errMaybeStarting keeps open an attempt that lnd says it never saw, but
// that was handed to lnd too recently for that answer to be final: lnd may
// still be storing it (see attemptRun.handed). It is asked again later.
var errMaybeStarting = errors.New("lnd has no record of the payment yet; " +
	"it may still be starting it")

// errNotSent ends an attempt that lnd holds nothing of (it reported it
// FAILED, or never saw it) and that the subscription no longer wants sent:
// the payer paused or cancelled it meanwhile.
var errNotSent = errors.New("not sent: the subscription no longer wants it")

// pay resolves one attempt with lnd and returns its final status and when
// this call handed it to lnd (zero if it only tracked). With track set it
// first asks lnd what it knows (after a restart or a failure); it sends
// only what lnd has never seen, or, with resend, what lnd reports FAILED,
// and only while maySend agrees, else it returns errNotSent (or
// errMaybeStarting while lnd's "never saw it" about an attempt handed to
// it is not final yet). onKnown is called once lnd has answered about the
// attempt.
func (e *Engine) pay(ctx context.Context, r *subRun, ar *attemptRun,
	track, resend bool, maySend func() bool, onKnown func()) (
	lndclient.PaymentStatus, time.Time, error) {

	a := ar.a
	hash := lntypes.Hash(a.Hash)
	send := !track
	var sentAt time.Time
	// neverSaw is set when lnd's last answer was "never saw it".
	neverSaw := false
	for round := 0; round < 4; round++ {
		var (
			statuses chan lndclient.PaymentStatus
			errs     chan error
			err      error
		)
		if send {
			if !maySend() {
				if neverSaw && !e.neverSawFinal(ar) {
					return lndclient.PaymentStatus{},
						time.Time{}, errMaybeStarting
				}
				return lndclient.PaymentStatus{}, time.Time{},
					errNotSent
			}
			req, rerr := e.request(r, a)
			if rerr != nil {
				return lndclient.PaymentStatus{}, time.Time{},
					rerr
			}
			e.payLog.Debugf("Sending %s seq %d hash %v amount %v",
				a.SubID, a.Seq, hash, a.Amount)
			sentAt = e.clock.Now()
			e.markHanded(ar, attemptDestination(r, a))
			statuses, errs, err = e.router.SendPayment(ctx, req)
		} else {
			statuses, errs, err = e.router.TrackPayment(ctx, hash)
		}
		if err != nil {
			if send {
				e.markSendErred(ar)
			}
			return lndclient.PaymentStatus{}, sentAt, err
		}

	recv:
		for {
			select {
			case st, ok := <-statuses:
				if !ok {
					return lndclient.PaymentStatus{}, sentAt,
						errors.New("payment stream " +
							"closed before a final " +
							"state")
				}
				onKnown()
				neverSaw = false
				if send {
					e.markSaw(ar)
				}
				switch st.State {
				case lnrpc.Payment_SUCCEEDED:
					return st, sentAt, nil
				case lnrpc.Payment_FAILED:
					if !send && e.staleFailed(ar, st) {
						return lndclient.PaymentStatus{},
							sentAt, errMaybeStarting
					}
					if send || !resend ||
						!transient(st.FailureReason) {
						return st, sentAt, nil
					}
					// A transient failure we decided
					// to retry: same hash again, at
					// another node if this one is
					// unreachable (lnd's FAILED is
					// final: nothing is in flight).
					if err := e.failoverBeforeResend(ctx,
						r, ar, st); err != nil {

						return lndclient.PaymentStatus{},
							sentAt, err
					}
					a = ar.a
					send = true
					break recv
				}

			case err, ok := <-errs:
				if !ok {
					continue
				}
				switch {
				case lndHasPayment(err):
					neverSaw = false
					// In flight or settled from an
					// earlier send: follow it.
					send = false
					sentAt = time.Time{}
					break recv
				case lndNeverSaw(err):
					onKnown()
					// Sending the same hash again is
					// safe: lnd refuses a hash it has.
					neverSaw = true
					send = true
					break recv
				}
				if send {
					e.markSendErred(ar)
				}
				return lndclient.PaymentStatus{}, sentAt, err

			case <-ctx.Done():
				return lndclient.PaymentStatus{}, sentAt,
					ctx.Err()
			}
		}
	}
	return lndclient.PaymentStatus{}, sentAt, errors.New("lnd keeps " +
		"changing its answer about the payment")
}

// wantsSent reports whether the subscription still wants the attempt sent:
// a payment while it is active (or stopped at a cap, which its reservation
// already fits), a cancel message while the cancel is pending.
func (e *Engine) wantsSent(r *subRun, a *store.Attempt) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := r.sub
	if a.Cancel {
		return s.State == store.SenderCancelled && s.CancelPending
	}
	return s.State == store.SenderActive ||
		s.State == store.SenderCapReached
}

// heldUntilExpiry judges an INCORRECT_PAYMENT_DETAILS failure (see
// EngineConfig.UnavailableAfter): it returns how long the HTLC was held
// and whether that is long enough to be lnd's hold expiry rather than the
// receiver's refusal. lnd's own times of the last HTLC count first, then
// the engine's clock since this run sent it. A failure found after a
// restart, with neither, is not judged a refusal.
func (e *Engine) heldUntilExpiry(st lndclient.PaymentStatus,
	sentAt time.Time) (time.Duration, bool) {

	for i := len(st.Htlcs) - 1; i >= 0; i-- {
		h := st.Htlcs[i]
		if h == nil || h.AttemptTime.IsZero() || h.ResolveTime.IsZero() {
			continue
		}
		held := h.ResolveTime.Sub(h.AttemptTime)
		return held, held >= e.cfg.UnavailableAfter
	}
	if !sentAt.IsZero() {
		held := e.clock.Now().Sub(sentAt)
		return held, held >= e.cfg.UnavailableAfter
	}
	return 0, true
}

// sentAt is when the settled HTLC left lnd (lnd's own time of its last
// HTLC), else fallback. The receiver credits the payment a little after
// that, so an estimate from this time never runs ahead of the receiver's
// paid_until (tlv.CreditStart only moves later as time goes on): at worst
// the payer pays a little early.
func sentAt(st lndclient.PaymentStatus, fallback time.Time) time.Time {
	for i := len(st.Htlcs) - 1; i >= 0; i-- {
		if h := st.Htlcs[i]; h != nil && !h.AttemptTime.IsZero() {
			return h.AttemptTime
		}
	}
	return fallback
}

// runAttempt takes one attempt to a final state, or to "retry later".
func (e *Engine) runAttempt(ctx context.Context, r *subRun, ar *attemptRun,
	retry bool) {

	defer e.wg.Done()
	onKnown := func() { e.markKnown(ar) }
	maySend := func() bool { return e.wantsSent(r, ar.a) }
	track := retry || ar.recovering
	st, sentAt, err := e.pay(ctx, r, ar, track, retry, maySend, onKnown)
	if ctx.Err() != nil {
		// Shutting down: the attempt stays open and is tracked at the
		// next start.
		return
	}
	// lnd has said where the payment stands: nothing of it is in
	// flight any more (or, after an error, it waits for a retry that
	// takes a slot again), so its slot goes to the next payment now.
	// The booking below is off that payment's critical path. The
	// attempt stays open (and running) until it is booked, so the
	// scheduler neither pays its time again nor retries it meanwhile,
	// and its reservation against the caps is only released by the
	// booking itself. A crash before the booking leaves it open: the
	// next start tracks it with lnd and books it once.
	e.freeSlot()

	failed := err == nil && st.State == lnrpc.Payment_FAILED
	switch {
	case err == nil && st.State == lnrpc.Payment_SUCCEEDED:
		err = e.finishSucceeded(ctx, r, ar, st)

	case errors.Is(err, errNotSent):
		err = e.finishUnsentDone(ctx, r, ar, "not sent: "+e.stateName(r))

	case failed && !transient(st.FailureReason):
		held, expired := e.heldUntilExpiry(st, sentAt)
		if expired {
			err = e.finishUnavailable(ctx, r, ar, st, held)
		} else {
			err = e.finishRefused(ctx, r, ar, st)
		}

	case failed && !maySend():
		// Failed for good in lnd, and no longer wanted: nothing to
		// retry.
		err = e.finishUnsentDone(ctx, r, ar, "failed ("+
			reasonName(st.FailureReason)+"), then "+e.stateName(r))

	default:
		err = e.retryLater(ctx, r, ar, st, err)
	}
	if err != nil && ctx.Err() == nil {
		e.log.Errorf("Attempt %s/%d: %v", ar.a.SubID, ar.a.Seq, err)
	}

	e.mu.Lock()
	if err != nil && ctx.Err() == nil && !errors.Is(err, store.ErrFailed) {
		// The store refused to book the outcome (a full disk) and
		// wrote nothing: the attempt stays open. Its retry tracks the
		// payment in lnd (never sending what lnd holds or settled) and
		// books the outcome again.
		ar.needsRetry = true
		ar.lndFailed = false
		e.setLocalWaitingLocked(r, err)
	}
	ar.running = false
	e.scheduleLocked(r, e.clock.Now())
	e.mu.Unlock()
	e.wake()
}

// freeSlot gives a payment's in-flight slot back and lets the
// subscriptions waiting for one decide again.
func (e *Engine) freeSlot() {
	e.mu.Lock()
	e.inFlight--
	e.metricsInFlightLocked()
	e.releaseSlotLocked()
	e.mu.Unlock()
	e.wake()
}

// releaseSlotLocked gives a payment slot back: to the oldest attempt
// written ahead (ready), which is sent at once, else to the subscriptions
// that found none meanwhile (slotWait): nothing else wakes them. Every path
// that frees a slot goes through here.
func (e *Engine) releaseSlotLocked() {
	e.slots++
	e.dispatchReadyLocked()
	e.rescheduleSlotWaitLocked()
}

// dispatchReadyLocked sends written-ahead attempts while slots are free,
// unless a retry or a cancel message waits for a slot (slotNeed): a free
// slot is then left for it.
func (e *Engine) dispatchReadyLocked() {
	for len(e.slotNeed) == 0 && len(e.ready) > 0 && e.slots > 0 &&
		e.runCtx != nil && e.runCtx.Err() == nil {

		ra := e.ready[0]
		e.ready = e.ready[1:]
		e.slots--
		e.inFlight++
		e.metricsInFlightLocked()
		e.wg.Add(1)
		go e.runAttempt(e.runCtx, ra.r, ra.ar, false)
	}
}

// rescheduleSlotWaitLocked reschedules the subscriptions waiting for a
// slot (or for room to write ahead).
func (e *Engine) rescheduleSlotWaitLocked() {
	for id, w := range e.slotWait {
		e.scheduleLocked(w, e.clock.Now())
		delete(e.slotWait, id)
	}
}

// markHanded notes that the attempt is being handed to lnd: lnd may hold
// it from now on, whatever the call returns.
func (e *Engine) markHanded(ar *attemptRun, dest route.Vertex) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ar.handed = true
	ar.notFoundAt = time.Time{}
	ar.handedTo = dest
	ar.sawAt = route.Vertex{}
	ar.handedAt = e.clock.Now()
	ar.sendErred = false
}

// markSendErred notes that the send last handed to lnd ended in an error
// before lnd answered its status stream.
func (e *Engine) markSendErred(ar *attemptRun) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ar.sendErred = true
}

// staleFailed judges lnd's FAILED about an attempt whose last send call, in
// this run, errored: lnd's SendPaymentV2 handler does not watch the
// caller's context and may still re-open the failed hash and send it. A
// FAILED with no HTLC after that hand-off is therefore not final until a
// payment timeout has passed since it (notFoundAt is set to the hand-off so
// the retry is scheduled then).
func (e *Engine) staleFailed(ar *attemptRun, st lndclient.PaymentStatus) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !ar.handed || !ar.sendErred || ar.handedAt.IsZero() {
		return false
	}
	for _, h := range st.Htlcs {
		if h != nil && !h.AttemptTime.Before(ar.handedAt) {
			return false
		}
	}
	if e.clock.Now().Sub(ar.handedAt) >= e.cfg.PaymentTimeout {
		return false
	}
	ar.notFoundAt = ar.handedAt
	return true
}

// markSaw notes that lnd answered the status stream of the send last
// handed to it: lnd has that send, to ar.handedTo.
func (e *Engine) markSaw(ar *attemptRun) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ar.sawAt = ar.handedTo
}

// neverSawFinal judges lnd's "never saw it" about an attempt: final for
// one never handed to lnd, and for a handed one only when lnd said so
// already a payment timeout ago, long after lnd would
// have stored a send it received. The first such answer starts the wait.
func (e *Engine) neverSawFinal(ar *attemptRun) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !ar.handed {
		return true
	}
	now := e.clock.Now()
	if ar.notFoundAt.IsZero() {
		ar.notFoundAt = now
	}
	return now.Sub(ar.notFoundAt) >= e.cfg.PaymentTimeout
}

// stateName is the subscription's stored state for failure texts.
func (e *Engine) stateName(r *subRun) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return "subscription " + r.sub.State.String()
}

// markKnown notes that lnd answered about an attempt; when the last attempt
// open at startup is known, new payments may start.
func (e *Engine) markKnown(ar *attemptRun) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ar.known {
		return
	}
	ar.known = true
	if ar.recovering {
		ar.recovering = false
		e.recovering--
		if e.recovering == 0 {
			e.log.Infof("Every payment open at startup is " +
				"tracked; new payments may start")
			for _, r := range e.subs {
				e.scheduleLocked(r, e.clock.Now())
			}
			e.wake()
		}
	}
}

// finishSucceeded books a settled payment: amount and actual fee spent, the
// unused fee reservation released, paid time advanced as the receiver
// credits it.
func (e *Engine) finishSucceeded(ctx context.Context, r *subRun,
	ar *attemptRun, st lndclient.PaymentStatus) error {

	now := e.clock.Now()
	a := *ar.a
	err := e.updateSub(ctx, a.SubID, func(tx store.SenderTx,
		s *store.SenderSubscription) error {

		fee := st.Fee
		release := lnwire.MilliSatoshi(0)
		if fee <= a.MaxFee {
			release = a.MaxFee - fee
		} else {
			// lnd enforces the limit; if it ever doesn't, count
			// the truth.
			if _, err := tx.AddSpend(s.ID, a.Day,
				fee-a.MaxFee); err != nil {
				return err
			}
		}
		if release > 0 {
			if _, err := tx.ReleaseSpend(s.ID, a.Day,
				release); err != nil {
				return err
			}
		}
		s.Reserved -= a.Amount + a.MaxFee
		s.TotalSent += a.Amount
		s.TotalFees += fee
		s.Payments++
		if a.Cancel {
			s.CancelPending = false
			s.Reason = "cancelled by payer; the receiver kept " +
				"the cancel payment (it runs without a hold " +
				"time)"
		} else {
			secs, rem := tlv.SecondsForAmount(a.Amount,
				s.Remainder, s.Offer.Terms.RatePerSecond)
			s.PaidUntil = tlv.PaidUntilAfter(s.PaidUntil,
				sentAt(st, now), s.Offer.Terms.Grace, secs)
			s.Remainder = rem
			s.Refusals = 0
			if s.State == store.SenderRefused {
				// The receiver credits it again (a payment
				// in flight when the refusals came settled).
				s.State = store.SenderActive
				s.ResumeAt = time.Time{}
				s.Reason = ""
			}
		}

		a.State = store.AttemptSucceeded
		a.Fee = fee
		a.FailureReason = ""
		a.UpdatedAt = now
		return tx.PutAttempt(&a)
	})
	if err != nil {
		return err
	}
	e.payLog.Infof("Paid %s seq %d: %v + fee %v (tries %d) to node %s",
		a.SubID, a.Seq, a.Amount, st.Fee, a.Tries+1,
		attemptDestination(r, &a))
	e.metrics.paid(a.Amount, st.Fee)

	e.mu.Lock()
	if !a.Cancel {
		r.refusedProbes = 0
	}
	delete(r.open, a.Seq)
	stillWaiting := false
	for _, o := range r.open {
		stillWaiting = stillWaiting || o.needsRetry
	}
	if !stillWaiting {
		e.clearWaitingLocked(r)
	}
	e.mu.Unlock()
	return nil
}

// finishRefused books a payment the receiver refused: nothing spent, the
// whole reservation released; after RefusalLimit refusals in a row the
// subscription is marked refused. For a cancel message, the refusal is the
// receiver's acknowledgement.
func (e *Engine) finishRefused(ctx context.Context, r *subRun,
	ar *attemptRun, st lndclient.PaymentStatus) error {

	now := e.clock.Now()
	a := *ar.a
	why := reasonName(st.FailureReason)
	e.mu.Lock()
	probes := r.refusedProbes
	e.mu.Unlock()
	stopped, probeRefused := false, false
	err := e.updateSub(ctx, a.SubID, func(tx store.SenderTx,
		s *store.SenderSubscription) error {

		stopped, probeRefused = false, false
		if err := e.releaseLocked(tx, s, &a); err != nil {
			return err
		}
		if a.Cancel {
			s.CancelPending = false
			s.Reason = "cancelled by payer; receiver acknowledged"
		} else {
			// An active subscription past the limit is probing:
			// this was its probe.
			probeRefused = s.State == store.SenderActive &&
				s.Refusals >= e.cfg.RefusalLimit
			s.Refusals++
			if s.Refusals >= e.cfg.RefusalLimit &&
				s.State == store.SenderActive {

				wait := e.refusedWait(probes)
				if probeRefused {
					wait = e.refusedWait(probes + 1)
				}
				s.State = store.SenderRefused
				s.ResumeAt = now.Add(wait)
				s.Reason = fmt.Sprintf("the receiver refused "+
					"%d payments in a row (%s): it does "+
					"not credit this subscription "+
					"(cancelled, unknown or terms "+
					"violated); probing again at %s",
					s.Refusals, why,
					s.ResumeAt.UTC().Format(time.RFC3339))
				stopped = true
			}
		}
		a.State = store.AttemptRefused
		a.FailureReason = why
		a.UpdatedAt = now
		return tx.PutAttempt(&a)
	})
	if err != nil {
		return err
	}
	if a.Cancel {
		e.payLog.Infof("Receiver acknowledged cancel of %s (seq %d)",
			a.SubID, a.Seq)
	} else {
		e.payLog.Warnf("Receiver refused %s seq %d (%s)%s", a.SubID,
			a.Seq, why, map[bool]string{true: "; subscription " +
				"marked refused"}[stopped])
		e.metrics.failed(why)
	}

	e.mu.Lock()
	if probeRefused {
		r.refusedProbes++
	}
	delete(r.open, a.Seq)
	if !a.Cancel && !stopped {
		e.setWaitingLocked(r, "receiver refused payment seq "+
			fmt.Sprint(a.Seq)+" ("+why+")")
	}
	e.mu.Unlock()
	return nil
}

// retryLater keeps an attempt open after a transient failure (or lnd being
// unreachable) and backs its subscription off; the retry reuses the hash.
func (e *Engine) retryLater(ctx context.Context, r *subRun, ar *attemptRun,
	st lndclient.PaymentStatus, cause error) error {

	reason := waitingReason(st, cause)
	unreachable := false
	if cause == nil && st.FailureReason ==
		lnrpc.PaymentFailureReason_FAILURE_REASON_NO_ROUTE {

		// Say whether the fee limit or the receiver is the fault.
		e.mu.Lock()
		router, a := e.router, ar.a
		dest := attemptDestination(r, a)
		e.mu.Unlock()
		why, feeLimit := probeNoRoute(ctx, router, dest, a.Amount,
			a.MaxFee)
		if why != "" {
			reason = why
		}
		if len(r.dest.nodes) > 1 {
			reason += " at node " + dest.String()
		}
		unreachable = !feeLimit
	}
	if cause != nil {
		e.metrics.failed("lnd_error")
	}

	// Record the try; the attempt stays open (not final).
	if cause == nil {
		now := e.clock.Now()
		a := *ar.a
		a.Tries++
		a.FailureReason = reason
		a.UpdatedAt = now
		err := e.db.Update(ctx, func(tx store.SenderTx) error {
			return tx.PutAttempt(&a)
		})
		if err != nil {
			return err
		}
		e.metrics.failed(reasonName(st.FailureReason))
		e.mu.Lock()
		ar.a = &a
		e.mu.Unlock()
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	ar.needsRetry = true
	ar.lndFailed = cause == nil && st.State == lnrpc.Payment_FAILED
	e.setWaitingLocked(r, reason)
	e.quickFailoverLocked(r, ar, ar.lndFailed && unreachable)
	if errors.Is(cause, errMaybeStarting) {
		// Ask again once lnd's answer can be final.
		final := ar.notFoundAt.Add(e.cfg.PaymentTimeout)
		if r.notBefore.Before(final) {
			r.notBefore = final
			e.scheduleLocked(r, final)
		}
	}
	e.payLog.Warnf("Subscription %s seq %d: %s; retrying the same hash "+
		"at %s", ar.a.SubID, ar.a.Seq, reason,
		r.notBefore.UTC().Format(time.RFC3339))
	return nil
}

// abandonWaiting closes, as failed, the attempts of a subscription that
// wait for a retry after lnd reported them FAILED: nothing of them is in
// flight, and the payer no longer wants them sent (pause, cancel). An
// attempt that waits because lnd was unreachable or its status stream
// broke may still be in flight and settle; it stays open, and its retry
// tracks it to a final state without sending it again (see wantsSent).
func (e *Engine) abandonWaiting(ctx context.Context, r *subRun,
	why string) error {

	e.mu.Lock()
	var todo []*attemptRun
	for _, ar := range r.open {
		if ar.needsRetry && ar.lndFailed && !ar.running &&
			!ar.a.Cancel {

			ar.needsRetry = false
			ar.running = true // keep the scheduler off it
			todo = append(todo, ar)
		}
	}
	e.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	err := e.finishUnsent(ctx, r, todo, "abandoned: "+why)

	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ar := range todo {
		ar.running = false
		if err != nil {
			ar.needsRetry = true
		}
	}
	if err == nil {
		e.clearWaitingIfDoneLocked(r)
	}
	return err
}

// finishUnsent closes attempts of which lnd holds nothing (it reported
// them FAILED, or never saw them) as failed and gives back their whole
// reservation. The caller keeps the scheduler off them meanwhile.
func (e *Engine) finishUnsent(ctx context.Context, r *subRun,
	todo []*attemptRun, why string) error {

	now := e.clock.Now()
	err := e.updateSub(ctx, r.id, func(tx store.SenderTx,
		s *store.SenderSubscription) error {

		for _, ar := range todo {
			a := *ar.a
			if err := e.releaseLocked(tx, s, &a); err != nil {
				return err
			}
			a.State = store.AttemptFailed
			a.FailureReason = why
			a.UpdatedAt = now
			if err := tx.PutAttempt(&a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, ar := range todo {
		e.payLog.Infof("Subscription %s seq %d closed unpaid: %s",
			ar.a.SubID, ar.a.Seq, why)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ar := range todo {
		delete(r.open, ar.a.Seq)
	}
	return nil
}

// finishUnsentDone closes one attempt the subscription no longer wants
// (see finishUnsent) and ends its waiting state if nothing else waits.
func (e *Engine) finishUnsentDone(ctx context.Context, r *subRun,
	ar *attemptRun, why string) error {

	if err := e.finishUnsent(ctx, r, []*attemptRun{ar}, why); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.clearWaitingIfDoneLocked(r)
	return nil
}

// clearWaitingIfDoneLocked ends the waiting state once no open attempt
// waits for a retry.
func (e *Engine) clearWaitingIfDoneLocked(r *subRun) {
	for _, o := range r.open {
		if o.needsRetry {
			return
		}
	}
	e.clearWaitingLocked(r)
}

// finishUnavailable closes an attempt that the receiving lnd held until
// its hold time ran out and then cancelled: the receiver daemon never
// answered (down, restarting, upgrading). Nothing was paid and it is no
// refusal: the whole reservation is given back, the subscription backs off
// and pays on later under a fresh sequence and hash (lnd keeps the expired
// hash cancelled, and the receiver never credited the sequence or freed it
// again). A cancel message stays pending and is sent again.
func (e *Engine) finishUnavailable(ctx context.Context, r *subRun,
	ar *attemptRun, st lndclient.PaymentStatus, held time.Duration) error {

	why := fmt.Sprintf("receiver unavailable: lnd held payment seq %d "+
		"for %v, then failed it (%s) at the end of its hold time",
		ar.a.Seq, held.Round(time.Second), reasonName(st.FailureReason))
	if err := e.finishUnsent(ctx, r, []*attemptRun{ar}, why); err != nil {
		return err
	}
	e.metrics.failed("receiver_unavailable")
	e.mu.Lock()
	defer e.mu.Unlock()
	// Each node of a cluster has its own receiver: one that is down
	// behind a running lnd is a node failure, so new payments move to
	// the offer's next node (sticky; the primary is tried again after
	// primaryRetryAfter). This attempt is closed and lnd keeps its hash
	// FAILED, and the next one has a fresh sequence and hash, so nothing
	// can be paid twice.
	if len(r.dest.nodes) > 1 {
		from := attemptDestination(r, ar.a)
		if r.dest.index(from) >= 0 && r.dest.paying() == from {
			next := r.dest.nextNode(from)
			e.moveOnLocked(r, from, next)
			why += "; paying node " + next.String() + " instead of " +
				from.String()
		}
	}
	e.setWaitingLocked(r, why)
	e.payLog.Warnf("Subscription %s: %s; paying again from %s", r.id, why,
		r.notBefore.UTC().Format(time.RFC3339))
	return nil
}
