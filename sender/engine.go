package sender

import (
	"container/heap"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btclog/v2"
	"github.com/cenkalti/backoff/v4"
	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwire"
	paymentsdb "github.com/lightningnetwork/lnd/payments/db"
	"github.com/lightningnetwork/lnd/record"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
)

var (
	// ErrNotFound is returned for an unknown subscription id.
	ErrNotFound = errors.New("subscription not found")

	// ErrBadState is returned for a move the state table does not allow
	// (resuming a cancelled subscription, ...).
	ErrBadState = errors.New("not allowed in the subscription's state")

	// ErrCapReached is returned internally when the next payment would
	// pass a spending cap.
	ErrCapReached = errors.New("spending cap reached")

	// errNotActive stops an attempt whose subscription changed state
	// between the decision and the store write.
	errNotActive = errors.New("subscription no longer active")
)

// cancelAmount is what a cancel message carries: the smallest amount a
// channel takes. The receiver refuses it, so it costs nothing.
const cancelAmount = lnwire.MilliSatoshi(1000)

// EngineConfig tunes the payment engine.
type EngineConfig struct {
	// MaxInFlight bounds payments handed to lnd at once, over all
	// subscriptions.
	MaxInFlight int
	// MaxInFlightPerSub bounds one subscription's payments in flight.
	MaxInFlightPerSub int
	// PaymentTimeout is lnd's timeout for finding a route.
	PaymentTimeout time.Duration
	// RefusalLimit is how many refused payments in a row mark a
	// subscription refused.
	RefusalLimit uint32
	// BackoffInitial and BackoffMax shape the waits after failures.
	BackoffInitial time.Duration
	BackoffMax     time.Duration
}

// DefaultEngineConfig are the engine's defaults.
func DefaultEngineConfig() EngineConfig {
	return EngineConfig{
		MaxInFlight:       32,
		MaxInFlightPerSub: 4,
		PaymentTimeout:    60 * time.Second,
		RefusalLimit:      3,
		BackoffInitial:    time.Second,
		BackoffMax:        5 * time.Minute,
	}
}

// Validate names the first bad setting.
func (c EngineConfig) Validate() error {
	switch {
	case c.MaxInFlight < 1:
		return fmt.Errorf("--payments.maxinflight must be at least 1, "+
			"got %d", c.MaxInFlight)
	case c.MaxInFlightPerSub < 1:
		return fmt.Errorf("--payments.maxinflightpersub must be at "+
			"least 1, got %d", c.MaxInFlightPerSub)
	case c.PaymentTimeout < time.Second:
		return fmt.Errorf("--payments.timeout must be at least 1s, "+
			"got %v", c.PaymentTimeout)
	case c.RefusalLimit < 1:
		return fmt.Errorf("--payments.refusallimit must be at least "+
			"1, got %d", c.RefusalLimit)
	case c.BackoffInitial <= 0 || c.BackoffMax < c.BackoffInitial:
		return fmt.Errorf("--payments.backoffinitial (%v) must be "+
			"positive and at most --payments.backoffmax (%v)",
			c.BackoffInitial, c.BackoffMax)
	}
	return nil
}

// attemptRun is the engine's live view of one open attempt.
type attemptRun struct {
	a *store.Attempt
	// running is set while a goroutine talks to lnd about it.
	running bool
	// needsRetry is set after a transient failure: resend it (same hash)
	// once the subscription's backoff allows.
	needsRetry bool
	// known is set once lnd told us the attempt's status at least once.
	known bool
	// recovering marks attempts found open at startup.
	recovering bool
}

// subRun is the engine's live view of one subscription.
type subRun struct {
	id    store.SubID
	sub   *store.SenderSubscription
	offer *tlv.Offer

	open map[uint64]*attemptRun

	// creating is set while an attempt is being written.
	creating bool

	// notBefore holds back payments after a failure (backoff).
	notBefore time.Time
	bo        *backoff.ExponentialBackOff
	// waitingSince and waitingReason make the waiting state visible.
	waitingSince  time.Time
	waitingReason string

	// heap bookkeeping: due is when to evaluate next; idx < 0 if not
	// queued.
	due time.Time
	idx int
}

// Engine keeps every active subscription paid its buffer ahead, one
// payment at a time per need, exactly once. All subscriptions share one
// timer (a heap of due times) and one scheduler goroutine; payments run in
// goroutines bounded by MaxInFlight.
type Engine struct {
	cfg     EngineConfig
	db      store.SenderStore
	clock   Clock
	log     btclog.Logger
	payLog  btclog.Logger
	metrics *Metrics

	// router is set by Run.
	router PaymentSender

	mu         sync.Mutex
	subs       map[store.SubID]*subRun
	queue      dueHeap
	slots      int
	slotWait   map[store.SubID]*subRun
	recovering int
	running    bool
	inFlight   int

	wakeCh chan struct{}
	wg     sync.WaitGroup
}

// NewEngine makes an engine over the store. Call Load before anything
// else, then Run once lnd is connected.
func NewEngine(cfg EngineConfig, db store.SenderStore, clock Clock,
	log, payLog btclog.Logger, metrics *Metrics) *Engine {

	if clock == nil {
		clock = systemClock{}
	}
	return &Engine{
		cfg:      cfg,
		db:       db,
		clock:    clock,
		log:      log,
		payLog:   payLog,
		metrics:  metrics,
		subs:     map[store.SubID]*subRun{},
		slots:    cfg.MaxInFlight,
		slotWait: map[store.SubID]*subRun{},
		wakeCh:   make(chan struct{}, 1),
	}
}

// newSubRun builds the live view of a stored subscription.
func (e *Engine) newSubRun(s *store.SenderSubscription) (*subRun, error) {
	o, err := tlv.ParseOffer(s.OfferString)
	if err != nil {
		return nil, fmt.Errorf("subscription %s: stored offer: %w",
			s.ID, err)
	}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = e.cfg.BackoffInitial
	bo.MaxInterval = e.cfg.BackoffMax
	bo.MaxElapsedTime = 0
	bo.Clock = e.clock
	bo.Reset()
	return &subRun{id: s.ID, sub: s, offer: o, open: map[uint64]*attemptRun{},
		bo: bo, idx: -1}, nil
}

// Load reads every subscription and open attempt from the store. It runs
// before the API serves, so the engine's view is complete from the start.
func (e *Engine) Load(ctx context.Context) error {
	var subs []*store.SenderSubscription
	var open []*store.Attempt
	err := e.db.View(ctx, func(tx store.SenderTx) error {
		subs, open = nil, nil
		err := tx.ForEachSubscription(0, store.Page{},
			func(s *store.SenderSubscription) error {
				subs = append(subs, s)
				return nil
			})
		if err != nil {
			return err
		}
		return tx.ForEachOpenAttempt(func(a *store.Attempt) error {
			open = append(open, a)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("load subscriptions: %w", err)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range subs {
		r, err := e.newSubRun(s)
		if err != nil {
			return err
		}
		e.subs[s.ID] = r
	}
	for _, a := range open {
		r, ok := e.subs[a.SubID]
		if !ok {
			return fmt.Errorf("open attempt %s/%d has no "+
				"subscription", a.SubID, a.Seq)
		}
		r.open[a.Seq] = &attemptRun{a: a, recovering: true}
		e.recovering++
	}
	e.log.Infof("Loaded %d subscriptions, %d payments to resolve with "+
		"lnd first", len(subs), len(open))
	return nil
}

// Run drives payments until ctx ends. It first tracks every attempt that
// was open at startup and sends nothing new until lnd has told it where
// each of them stands.
func (e *Engine) Run(ctx context.Context, router PaymentSender) error {
	e.mu.Lock()
	e.router = router
	e.running = true
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
		var timer <-chan time.Time
		if e.queue.Len() > 0 {
			timer = e.clock.After(e.queue[0].due.Sub(e.clock.Now()))
		}
		e.mu.Unlock()

		select {
		case <-timer:
		case <-e.wakeCh:
		case <-ctx.Done():
			return nil
		}
	}
}

// wake makes the scheduler look at its queue again.
func (e *Engine) wake() {
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
)

// decideLocked is the scheduling rule for one subscription. It starts
// retries itself and returns what else to do.
func (e *Engine) decideLocked(ctx context.Context, r *subRun,
	now time.Time) action {

	s := r.sub
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
			return actWait
		}
		ar.needsRetry = false
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
		projected := tlv.CreditStart(s.PaidUntil, now).Add(r.openTime())
		if projected.Sub(now) > s.Buffer {
			e.scheduleLocked(r, projected.Add(-s.Buffer))
			return actWait
		}
		if r.openPayments() >= e.cfg.MaxInFlightPerSub {
			return actWait
		}
		if e.slots <= 0 {
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

	case store.SenderCancelled:
		if !s.CancelPending || r.hasCancelOpen() {
			return actWait
		}
		if e.slots <= 0 {
			e.slotWait[r.id] = r
			return actWait
		}
		return actCancelMsg
	}
	return actWait
}

// step evaluates one subscription until it has nothing more to do now.
func (e *Engine) step(ctx context.Context, r *subRun) {
	for i := 0; i < 10_000 && ctx.Err() == nil; i++ {
		e.mu.Lock()
		act := e.decideLocked(ctx, r, e.clock.Now())
		if act == actCreate || act == actCancelMsg {
			r.creating = true
			e.slots--
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

		case actCreate, actCancelMsg:
			ar, err := e.createAttempt(ctx, r, act == actCancelMsg)
			e.mu.Lock()
			r.creating = false
			if err != nil {
				e.slots++
				e.mu.Unlock()
				switch {
				case errors.Is(err, errNotActive),
					errors.Is(err, ErrCapReached):
					continue
				default:
					e.failStep(r, "store payment attempt", err)
					return
				}
			}
			r.open[ar.a.Seq] = ar
			ar.running = true
			e.inFlight++
			e.metricsInFlightLocked()
			e.wg.Add(1)
			go e.runAttempt(ctx, r, ar, false)
			e.mu.Unlock()
		}
	}
}

// failStep backs a subscription off after a local (store) error; the
// error level is right because the store failing is not a peer's doing.
func (e *Engine) failStep(r *subRun, what string, err error) {
	e.log.Errorf("Subscription %s: %s: %v", r.id, what, err)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.setWaitingLocked(r, "local error: "+err.Error())
}

// setWaitingLocked records a failure and the next time to try.
func (e *Engine) setWaitingLocked(r *subRun, reason string) {
	now := e.clock.Now()
	if r.waitingSince.IsZero() {
		r.waitingSince = now
	}
	r.waitingReason = reason
	r.notBefore = now.Add(r.bo.NextBackOff())
	e.scheduleLocked(r, r.notBefore)
}

// clearWaitingLocked ends the waiting state after a success.
func (e *Engine) clearWaitingLocked(r *subRun) {
	if !r.waitingSince.IsZero() {
		e.log.Infof("Subscription %s: payments flow again after "+
			"waiting since %v", r.id,
			r.waitingSince.UTC().Format(time.RFC3339))
	}
	r.waitingSince = time.Time{}
	r.waitingReason = ""
	r.notBefore = time.Time{}
	r.bo.Reset()
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

// updateSub runs fn on the stored subscription in one store step, bumps
// its revision, writes it and refreshes the engine's copy.
func (e *Engine) updateSub(ctx context.Context, id store.SubID,
	fn func(tx store.SenderTx, s *store.SenderSubscription) error) error {

	var out *store.SenderSubscription
	err := e.db.Update(ctx, func(tx store.SenderTx) error {
		s, err := tx.Subscription(id)
		if err != nil {
			return err
		}
		if err := fn(tx, s); err != nil {
			return err
		}
		s.Revision++
		s.UpdatedAt = e.clock.Now()
		out = s
		return tx.PutSubscription(s)
	})
	if err != nil {
		return err
	}
	e.refresh(out)
	return nil
}

// refresh installs a newer copy of a subscription in the engine's view.
func (e *Engine) refresh(s *store.SenderSubscription) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.subs[s.ID]
	if !ok || s.Revision <= r.sub.Revision {
		return
	}
	old := r.sub.State
	r.sub = s
	if old != s.State {
		e.log.Infof("Subscription %s: %v -> %v %s", s.ID, old, s.State,
			s.Reason)
	}
}

// createAttempt reserves the payment's amount and fee limit against the
// caps, takes the next sequence and a fresh preimage, and stores the
// attempt, all in one store step, before anything is sent. When a cap
// would be passed it marks the subscription cap_reached instead.
func (e *Engine) createAttempt(ctx context.Context, r *subRun,
	cancel bool) (*attemptRun, error) {

	var preimage lntypes.Preimage
	if _, err := rand.Read(preimage[:]); err != nil {
		return nil, fmt.Errorf("make preimage: %w", err)
	}
	hash := sha256.Sum256(preimage[:])

	var (
		a        *store.Attempt
		capped   string
		resumeAt time.Time
	)
	now := e.clock.Now()
	err := e.updateSub(ctx, r.id, func(tx store.SenderTx,
		s *store.SenderSubscription) error {

		a, capped, resumeAt = nil, "", time.Time{}
		if cancel && !(s.State == store.SenderCancelled &&
			s.CancelPending) {
			return errNotActive
		}
		if !cancel && s.State != store.SenderActive {
			return errNotActive
		}

		amt := PaymentAmount(s.Offer.Terms.RatePerSecond, s.Increment)
		if cancel {
			amt = cancelAmount
		}
		maxFee := MaxFee(amt, s.FeeLimitPPM, s.Limits.MaxFee)
		if cancel {
			// A proportional limit on 1 sat is below any base fee,
			// so the goodbye could never route. The receiver refuses
			// it, and a failed payment pays no fee, so the absolute
			// limit costs nothing.
			maxFee = s.Limits.MaxFee
		}
		need := amt + maxFee
		day := store.DayOf(now)
		spentToday, err := tx.SpendOn(s.ID, day)
		if err != nil {
			return err
		}
		committed := s.TotalSent + s.TotalFees + s.Reserved
		switch {
		case s.Limits.MaxTotal != 0 &&
			committed+need > s.Limits.MaxTotal:
			capped = fmt.Sprintf("total cap %d msat reached: %d "+
				"msat spent or reserved, the next payment "+
				"needs %d with its fee limit",
				s.Limits.MaxTotal, committed, need)

		case s.Limits.MaxPerDay != 0 &&
			spentToday+need > s.Limits.MaxPerDay:
			resumeAt = (day + 1).Start()
			capped = fmt.Sprintf("daily cap %d msat reached: %d "+
				"msat spent or reserved today, the next "+
				"payment needs %d with its fee limit; "+
				"resumes at %s", s.Limits.MaxPerDay,
				spentToday, need,
				resumeAt.Format(time.RFC3339))
		}
		if capped != "" {
			if cancel {
				// Don't pass a cap to say goodbye: cancel
				// locally only.
				s.CancelPending = false
				s.Reason += "; receiver not told: " + capped
				return nil
			}
			s.State = store.SenderCapReached
			s.Reason = capped
			s.ResumeAt = resumeAt
			return nil
		}

		a = &store.Attempt{
			SubID:     s.ID,
			Seq:       s.NextSeq,
			Preimage:  store.Preimage(preimage),
			Hash:      store.Hash(hash),
			Amount:    amt,
			MaxFee:    maxFee,
			Day:       day,
			Cancel:    cancel,
			State:     store.AttemptCreated,
			CreatedAt: now,
			UpdatedAt: now,
		}
		s.NextSeq++
		s.Reserved += need
		if _, err := tx.AddSpend(s.ID, day, need); err != nil {
			return err
		}
		return tx.PutAttempt(a)
	})
	if err != nil {
		return nil, err
	}
	if a == nil {
		if capped != "" && !cancel {
			e.payLog.Infof("Subscription %s stopped: %s", r.id,
				capped)
			e.mu.Lock()
			e.scheduleLocked(r, e.clock.Now())
			e.mu.Unlock()
		}
		return nil, fmt.Errorf("%w: %s", ErrCapReached, capped)
	}
	e.payLog.Debugf("Subscription %s: stored attempt seq %d hash %x "+
		"amount %v max fee %v cancel=%v", a.SubID, a.Seq, a.Hash[:],
		a.Amount, a.MaxFee, a.Cancel)
	return &attemptRun{a: a, known: true}, nil
}

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
				case errors.Is(err, paymentsdb.ErrAlreadyPaid):
					// In flight or settled: follow it.
					send = false
					break recv
				case errors.Is(err,
					paymentsdb.ErrPaymentNotInitiated):
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

// transient reports failures worth retrying with the same hash after a
// backoff: the receiver (or our channel) may come back.
func transient(reason lnrpc.PaymentFailureReason) bool {
	return reason != lnrpc.PaymentFailureReason_FAILURE_REASON_INCORRECT_PAYMENT_DETAILS
}

// waitingReason turns a failure into the text of the waiting state.
func waitingReason(st lndclient.PaymentStatus, err error) string {
	if err != nil {
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
			s.PaidUntil = tlv.PaidUntilAfter(s.PaidUntil, now, secs)
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

// releaseLocked gives back an attempt's whole reservation.
func (e *Engine) releaseLocked(tx store.SenderTx, s *store.SenderSubscription,
	a *store.Attempt) error {

	need := a.Amount + a.MaxFee
	s.Reserved -= need
	_, err := tx.ReleaseSpend(s.ID, a.Day, need)
	return err
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

// maxTime returns the later of a and b.
func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// dueHeap orders subscriptions by their next evaluation time.
type dueHeap []*subRun

func (h dueHeap) Len() int           { return len(h) }
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
