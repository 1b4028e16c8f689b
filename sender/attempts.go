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
		Target:        r.offer.Node,
		Amount:        btcutil.Amount(a.Amount / 1000),
		MaxFeeMsat:    a.MaxFee,
		Timeout:       e.cfg.PaymentTimeout,
		PaymentHash:   &hash,
		CustomRecords: custom,
	}, nil
}

// pay resolves one attempt with lnd and returns its final status. With
// track set it first asks lnd what it knows (after a restart or a failure);
// it sends only what lnd has never seen, or, with resend, what lnd reports
// FAILED. onKnown is called once lnd has answered about the attempt.
func (e *Engine) pay(ctx context.Context, r *subRun, a *store.Attempt,
	track, resend bool, onKnown func()) (lndclient.PaymentStatus, error) {

	hash := lntypes.Hash(a.Hash)
	send := !track
	for round := 0; round < 4; round++ {
		var (
			statuses chan lndclient.PaymentStatus
			errs     chan error
			err      error
		)
		if send {
			req, rerr := e.request(r, a)
			if rerr != nil {
				return lndclient.PaymentStatus{}, rerr
			}
			e.payLog.Debugf("Sending %s seq %d hash %v amount %v",
				a.SubID, a.Seq, hash, a.Amount)
			statuses, errs, err = e.router.SendPayment(ctx, req)
		} else {
			statuses, errs, err = e.router.TrackPayment(ctx, hash)
		}
		if err != nil {
			return lndclient.PaymentStatus{}, err
		}

	recv:
		for {
			select {
			case st, ok := <-statuses:
				if !ok {
					return lndclient.PaymentStatus{},
						errors.New("payment stream " +
							"closed before a final " +
							"state")
				}
				onKnown()
				switch st.State {
				case lnrpc.Payment_SUCCEEDED:
					return st, nil
				case lnrpc.Payment_FAILED:
					if send || !resend ||
						!transient(st.FailureReason) {
						return st, nil
					}
					// A transient failure we decided
					// to retry: same hash again.
					send = true
					break recv
				}

			case err, ok := <-errs:
				if !ok {
					continue
				}
				switch {
				case lndHasPayment(err):
					// In flight or settled: follow it.
					send = false
					break recv
				case lndNeverSaw(err):
					onKnown()
					send = true
					break recv
				}
				return lndclient.PaymentStatus{}, err

			case <-ctx.Done():
				return lndclient.PaymentStatus{}, ctx.Err()
			}
		}
	}
	return lndclient.PaymentStatus{}, errors.New("lnd keeps changing " +
		"its answer about the payment")
}

// runAttempt takes one attempt to a final state, or to "retry later".
func (e *Engine) runAttempt(ctx context.Context, r *subRun, ar *attemptRun,
	retry bool) {

	defer e.wg.Done()
	onKnown := func() { e.markKnown(ar) }
	track := retry || ar.recovering
	st, err := e.pay(ctx, r, ar.a, track, retry, onKnown)
	if ctx.Err() != nil {
		// Shutting down: the attempt stays open and is tracked at the
		// next start.
		return
	}

	switch {
	case err == nil && st.State == lnrpc.Payment_SUCCEEDED:
		err = e.finishSucceeded(ctx, r, ar, st)

	case err == nil && !transient(st.FailureReason):
		err = e.finishRefused(ctx, r, ar, st)

	default:
		err = e.retryLater(ctx, r, ar, st, err)
	}
	if err != nil && ctx.Err() == nil {
		e.log.Errorf("Attempt %s/%d: %v", ar.a.SubID, ar.a.Seq, err)
	}

	e.mu.Lock()
	ar.running = false
	e.slots++
	e.inFlight--
	e.metricsInFlightLocked()
	for id, w := range e.slotWait {
		e.scheduleLocked(w, e.clock.Now())
		delete(e.slotWait, id)
	}
	e.scheduleLocked(r, e.clock.Now())
	e.mu.Unlock()
	e.wake()
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
			s.PaidUntil = maxTime(now, s.PaidUntil).Add(
				time.Duration(secs) * time.Second)
			s.Remainder = rem
			s.Refusals = 0
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
	e.payLog.Infof("Paid %s seq %d: %v + fee %v (tries %d)", a.SubID,
		a.Seq, a.Amount, st.Fee, a.Tries+1)
	e.metrics.paid(a.Amount, st.Fee)

	e.mu.Lock()
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
	stopped := false
	err := e.updateSub(ctx, a.SubID, func(tx store.SenderTx,
		s *store.SenderSubscription) error {

		stopped = false
		if err := e.releaseLocked(tx, s, &a); err != nil {
			return err
		}
		if a.Cancel {
			s.CancelPending = false
			s.Reason = "cancelled by payer; receiver acknowledged"
		} else {
			s.Refusals++
			if s.Refusals >= e.cfg.RefusalLimit &&
				s.State == store.SenderActive {

				s.State = store.SenderRefused
				s.Reason = fmt.Sprintf("the receiver refused "+
					"%d payments in a row (%s): it does "+
					"not credit this subscription "+
					"(cancelled, unknown or terms "+
					"violated)", s.Refusals, why)
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
	if cause == nil {
		e.metrics.failed(reasonName(st.FailureReason))
	} else {
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
		e.mu.Lock()
		ar.a = &a
		e.mu.Unlock()
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	ar.needsRetry = true
	e.setWaitingLocked(r, reason)
	e.payLog.Warnf("Subscription %s seq %d: %s; retrying the same hash "+
		"at %s", ar.a.SubID, ar.a.Seq, reason,
		r.notBefore.UTC().Format(time.RFC3339))
	return nil
}

// abandonWaiting closes, as failed, the attempts of a subscription that
// wait for a retry: lnd reported them FAILED, so nothing was paid, and the
// payer no longer wants them sent (pause, cancel).
func (e *Engine) abandonWaiting(ctx context.Context, r *subRun,
	why string) error {

	e.mu.Lock()
	var todo []*attemptRun
	for _, ar := range r.open {
		if ar.needsRetry && !ar.running && !ar.a.Cancel {
			ar.needsRetry = false
			ar.running = true // keep the scheduler off it
			todo = append(todo, ar)
		}
	}
	e.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}

	now := e.clock.Now()
	err := e.updateSub(ctx, r.id, func(tx store.SenderTx,
		s *store.SenderSubscription) error {

		for _, ar := range todo {
			a := *ar.a
			if err := e.releaseLocked(tx, s, &a); err != nil {
				return err
			}
			a.State = store.AttemptFailed
			a.FailureReason = "abandoned: " + why
			a.UpdatedAt = now
			if err := tx.PutAttempt(&a); err != nil {
				return err
			}
		}
		return nil
	})

	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ar := range todo {
		ar.running = false
		if err == nil {
			delete(r.open, ar.a.Seq)
		} else {
			ar.needsRetry = true
		}
	}
	if err == nil {
		e.clearWaitingLocked(r)
	}
	return err
}
