package sender

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
)

// Run drives payments until ctx ends. It first tracks every attempt that
// was open at startup and sends nothing new until lnd has told it where
// each of them stands.
func (e *Engine) Run(ctx context.Context, router PaymentSender) error {
	e.mu.Lock()
	e.router = router
	e.running = true
	e.runCtx = ctx
	for _, r := range e.subs {
		for _, ar := range r.open {
			ar.running = true
			e.slots--
			e.inFlight++
			e.wg.Add(1)
			go e.runAttempt(ctx, r, ar, false)
		}
		e.scheduleLocked(r, e.clock.Now())
	}
	e.metricsInFlightLocked()
	e.mu.Unlock()

	defer e.wg.Wait()
	for {
		e.mu.Lock()
		now := e.clock.Now()
		var due []*subRun
		for e.queue.Len() > 0 && !e.queue[0].due.After(now) {
			due = append(due, heap.Pop(&e.queue).(*subRun))
		}
		e.mu.Unlock()

		for _, r := range due {
			e.step(ctx, r)
		}

		e.mu.Lock()
		// A slot left free for a retry or cancel message that no
		// longer took it goes to the attempts written ahead.
		e.dispatchReadyLocked()
		var timer <-chan time.Time
		e.timerDue = time.Time{}
		if e.queue.Len() > 0 {
			e.timerDue = e.queue[0].due
			timer = e.clock.After(e.timerDue.Sub(e.clock.Now()))
		}
		e.waiting = true
		e.mu.Unlock()

		select {
		case <-timer:
		case <-e.wakeCh:
		case <-ctx.Done():
			return nil
		}
		e.mu.Lock()
		e.waiting = false
		e.mu.Unlock()
	}
}

// wake makes the scheduler look at its queue again.
func (e *Engine) wake() {
	e.changed()
	select {
	case e.wakeCh <- struct{}{}:
	default:
	}
}

// scheduleLocked queues r for evaluation at t (an earlier due time wins).
func (e *Engine) scheduleLocked(r *subRun, t time.Time) {
	if r.idx >= 0 {
		if t.Before(r.due) {
			r.due = t
			heap.Fix(&e.queue, r.idx)
		}
		return
	}
	r.due = t
	heap.Push(&e.queue, r)
}

// action is what step decided to do for a subscription.
type action int

const (
	actWait action = iota
	actCreate
	actCancelMsg
	actResumeDay
	actProbe
)

// decideLocked is the scheduling rule for one subscription. It starts
// retries itself and returns what else to do.
func (e *Engine) decideLocked(ctx context.Context, r *subRun,
	now time.Time) action {

	s := r.sub
	// Still waiting for a slot for a retry or a cancel message is
	// decided again below.
	delete(e.slotNeed, r.id)
	if r.creating {
		return actWait
	}
	if now.Before(r.notBefore) {
		e.scheduleLocked(r, r.notBefore)
		return actWait
	}

	// Retries of transiently failed attempts come first, with their
	// own hash, and hold back anything new.
	pending := false
	for _, ar := range r.open {
		if !ar.needsRetry || ar.running {
			continue
		}
		if e.slots <= 0 {
			e.slotWait[r.id] = r
			e.slotNeed[r.id] = struct{}{}
			return actWait
		}
		ar.needsRetry = false
		ar.lndFailed = false
		ar.running = true
		e.slots--
		e.inFlight++
		e.metricsInFlightLocked()
		e.wg.Add(1)
		go e.runAttempt(ctx, r, ar, true)
		pending = true
	}
	if pending || e.recovering > 0 {
		return actWait
	}
	for _, ar := range r.open {
		if !ar.known {
			return actWait
		}
	}

	switch s.State {
	case store.SenderActive:
		projected := tlv.CreditStart(s.PaidUntil, now,
			s.Offer.Terms.Grace).Add(r.openTime())
		if projected.Sub(now) > s.Buffer {
			e.scheduleLocked(r, projected.Add(-s.Buffer))
			return actWait
		}
		if r.openPayments() >= e.cfg.MaxInFlightPerSub {
			return actWait
		}
		if s.Refusals >= e.cfg.RefusalLimit && r.openPayments() > 0 {
			// Probing after refusals: one payment at a time.
			return actWait
		}
		if !e.slotFreeLocked() && !e.mayWriteAheadLocked() {
			e.slotWait[r.id] = r
			return actWait
		}
		return actCreate

	case store.SenderCapReached:
		if s.ResumeAt.IsZero() {
			return actWait
		}
		if now.Before(s.ResumeAt) {
			e.scheduleLocked(r, s.ResumeAt)
			return actWait
		}
		return actResumeDay

	case store.SenderRefused:
		// Not terminal: after a long wait, probe with one payment.
		// (Load gives a zero ResumeAt, from a ledger older than
		// probing, a probe time.)
		if now.Before(s.ResumeAt) {
			e.scheduleLocked(r, s.ResumeAt)
			return actWait
		}
		return actProbe

	case store.SenderCancelled:
		if !s.CancelPending || r.hasCancelOpen() {
			return actWait
		}
		if e.slots <= 0 {
			e.slotWait[r.id] = r
			e.slotNeed[r.id] = struct{}{}
			return actWait
		}
		return actCancelMsg
	}
	return actWait
}

// mayWriteAheadLocked reports whether a payment due while every slot is
// taken may be written now, to be sent when a slot frees (at most a
// quarter of MaxInFlight, at least one, written or being written at once).
// Its write (and fsync) then happens while lnd carries the payments in
// flight, instead of after a slot freed, while the slot waits for it. A
// written attempt is open like any other: its reservation counts against
// the caps, its time against the buffer, and after a restart it is
// tracked with lnd and sent if lnd never saw it (as a crash between an
// attempt's write and its send always was), so the in-flight bound can be
// passed by this many payments once after a restart.
func (e *Engine) mayWriteAheadLocked() bool {
	return len(e.slotNeed) == 0 &&
		e.ahead+len(e.ready) < max(1, e.cfg.MaxInFlight/4)
}

// slotFreeLocked reports whether a new payment may take a slot now: one
// is free and no attempt written ahead waits for it (those go first, in
// the order they were written, so a subscription's payments leave in
// sequence order).
func (e *Engine) slotFreeLocked() bool {
	return e.slots > 0 && len(e.ready) == 0
}

// step evaluates one subscription until it has nothing more to do now.
func (e *Engine) step(ctx context.Context, r *subRun) {
	for i := 0; i < 10_000 && ctx.Err() == nil; i++ {
		slotted := false
		e.mu.Lock()
		act := e.decideLocked(ctx, r, e.clock.Now())
		if act == actCreate || act == actCancelMsg {
			r.creating = true
			if e.slotFreeLocked() || act == actCancelMsg {
				e.slots--
				slotted = true
			} else {
				// Written ahead (only payments; a cancel
				// message waits for a slot).
				e.ahead++
			}
		}
		e.mu.Unlock()

		switch act {
		case actWait:
			return

		case actResumeDay:
			err := e.updateSub(ctx, r.id, func(_ store.SenderTx,
				s *store.SenderSubscription) error {

				if s.State != store.SenderCapReached ||
					s.ResumeAt.IsZero() {
					return errNotActive
				}
				s.State = store.SenderActive
				s.ResumeAt = time.Time{}
				s.Reason = ""
				return nil
			})
			if err != nil && !errors.Is(err, errNotActive) {
				e.failStep(r, "resume after daily cap", err)
				return
			}
			if err == nil {
				e.log.Infof("Subscription %s: new day, daily "+
					"cap no longer blocks", r.id)
			}

		case actProbe:
			err := e.updateSub(ctx, r.id, func(_ store.SenderTx,
				s *store.SenderSubscription) error {

				if s.State != store.SenderRefused ||
					e.clock.Now().Before(s.ResumeAt) {
					return errNotActive
				}
				s.State = store.SenderActive
				s.ResumeAt = time.Time{}
				s.Reason = fmt.Sprintf("probing the receiver "+
					"after %d refusals in a row", s.Refusals)
				return nil
			})
			if err != nil && !errors.Is(err, errNotActive) {
				e.failStep(r, "probe after refusals", err)
				return
			}
			if err == nil {
				e.log.Infof("Subscription %s: probing the "+
					"receiver again after refusals", r.id)
			}

		case actCreate, actCancelMsg:
			// The attempt is written and sent in its own goroutine,
			// so the attempts of every due subscription are created
			// concurrently and share one group-commit fsync instead
			// of waiting for one each, in turn. r.creating keeps
			// this subscription's next decision until it is stored.
			e.wg.Add(1)
			go e.createAndRun(ctx, r, act == actCancelMsg, slotted)
			return
		}
	}
}

// createAndRun stores a new attempt and, once that is durable, hands it to
// lnd. With slotted it holds one of the slots step took; else it was
// written ahead and takes a slot now if one is free, or waits in ready
// for the next one freed. A shutdown (or crash) between the write and the
// send leaves the attempt open, and the next start tracks it with lnd and
// sends it only if lnd never saw it.
func (e *Engine) createAndRun(ctx context.Context, r *subRun, cancel,
	slotted bool) {

	defer e.wg.Done()
	ar, err := e.createAttempt(ctx, r, cancel)
	e.mu.Lock()
	r.creating = false
	if !slotted {
		e.ahead--
	}
	if err != nil {
		// A subscription that found no slot (or no room to write
		// ahead) while this creation held it waits in slotWait.
		if slotted {
			e.releaseSlotLocked()
		} else {
			e.rescheduleSlotWaitLocked()
		}
		e.mu.Unlock()
		switch {
		case errors.Is(err, errNotActive), errors.Is(err, ErrCapReached):
			e.mu.Lock()
			e.scheduleLocked(r, e.clock.Now())
			e.mu.Unlock()
		case ctx.Err() != nil:
		default:
			e.failStep(r, "store payment attempt", err)
		}
		// The scheduler looks at its queue again (this
		// subscription's backoff, or its next decision).
		e.wake()
		return
	}
	r.open[ar.a.Seq] = ar
	ar.running = true
	if ctx.Err() != nil {
		// Stopping: the stored attempt is resolved with lnd at the
		// next start.
		ar.running = false
		if slotted {
			e.releaseSlotLocked()
		}
		e.mu.Unlock()
		return
	}
	// More may be due for this subscription now that it is not
	// creating.
	e.scheduleLocked(r, e.clock.Now())
	if !slotted && (e.slots <= 0 || len(e.ready) > 0) {
		// Written ahead and every slot is taken: the next freed
		// slot sends it (releaseSlotLocked). running keeps the
		// scheduler off it meanwhile.
		e.ready = append(e.ready, readyAttempt{r: r, ar: ar})
		e.mu.Unlock()
		e.wake()
		return
	}
	if !slotted {
		e.slots--
	}
	e.inFlight++
	e.metricsInFlightLocked()
	e.mu.Unlock()
	e.wake()
	e.wg.Add(1)
	e.runAttempt(ctx, r, ar, false)
}

// openTime is the service time the subscription's open payments will buy
// if they succeed, so they are not paid for twice.
func (r *subRun) openTime() time.Duration {
	var d time.Duration
	for _, ar := range r.open {
		if !ar.a.Cancel {
			d += timeBought(ar.a.Amount, r.sub.Offer.Terms.RatePerSecond)
		}
	}
	return d
}

// openPayments counts open attempts that are not cancel messages.
func (r *subRun) openPayments() int {
	n := 0
	for _, ar := range r.open {
		if !ar.a.Cancel {
			n++
		}
	}
	return n
}

// hasCancelOpen reports whether a cancel message is under way.
func (r *subRun) hasCancelOpen() bool {
	for _, ar := range r.open {
		if ar.a.Cancel {
			return true
		}
	}
	return false
}

// dueHeap orders subscriptions by their next evaluation time.
type dueHeap []*subRun

func (h dueHeap) Len() int { return len(h) }

func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }

func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}

func (h *dueHeap) Push(x any) {
	r := x.(*subRun)
	r.idx = len(*h)
	*h = append(*h, r)
}

func (h *dueHeap) Pop() any {
	old := *h
	n := len(old)
	r := old[n-1]
	old[n-1] = nil
	r.idx = -1
	*h = old[:n-1]
	return r
}
