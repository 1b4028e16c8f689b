package sender

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/cenkalti/backoff/v4"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/routing/route"
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
	// UnavailableAfter tells lnd's hold expiry from a refusal: both fail
	// with INCORRECT_PAYMENT_DETAILS, but a live receiver answers within
	// a second or two while lnd cancels an unanswered keysend only when
	// its hold time runs out. A failure whose HTLC was held this long or
	// longer means "receiver unavailable" (back off and pay again), a
	// quicker one is a refusal. Keep it well below the receiver's hold
	// time (30 s recommended).
	UnavailableAfter time.Duration
	// RefusedRetry and RefusedRetryMax shape the long, doubling wait
	// after which a refused subscription probes the receiver again with
	// one payment.
	RefusedRetry    time.Duration
	RefusedRetryMax time.Duration
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
		UnavailableAfter:  10 * time.Second,
		RefusedRetry:      10 * time.Minute,
		RefusedRetryMax:   4 * time.Hour,
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
	case c.UnavailableAfter <= 0:
		return fmt.Errorf("--payments.unavailableafter must be "+
			"positive (and below the receiver's hold time), got %v",
			c.UnavailableAfter)
	case c.RefusedRetry <= 0 || c.RefusedRetryMax < c.RefusedRetry:
		return fmt.Errorf("--payments.refusedretry (%v) must be "+
			"positive and at most --payments.refusedretrymax (%v)",
			c.RefusedRetry, c.RefusedRetryMax)
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
	// lndFailed is set when lnd's last answer about the attempt was
	// FAILED, so nothing of it is in flight. An attempt waiting for a
	// retry after lnd was unreachable or its stream broke may still be
	// in flight and settle: only lndFailed ones may be dropped unsent.
	lndFailed bool
	// known is set once lnd told us the attempt's status at least once.
	known bool
	// recovering marks attempts found open at startup.
	recovering bool
	// handed is set once the attempt was handed to lnd's SendPayment in
	// this run, whatever the call returned, and for every attempt found
	// open at startup (it may have been handed before the restart). lnd
	// goes on with a send whose connection dropped: it stores the payment
	// (InitPayment) a moment later and sends it, so a TrackPayment in
	// between answers "never saw it" for a payment that will be made.
	handed bool
	// notFoundAt is when lnd first answered "never saw it" about a handed
	// attempt since it was last handed; the answer is final only once it
	// still holds a payment timeout later (see neverSawFinal).
	notFoundAt time.Time
	// failovers counts the quick retries at other nodes since the
	// attempt last waited out a backoff (see quickFailoverLocked).
	failovers int
	// handedTo is the node the attempt was last handed to lnd for in this
	// run; sawAt is that node once lnd answered that send's own status
	// stream (so lnd has that send, and a later FAILED is about a send
	// to it). A send whose call errored leaves sawAt zero: lnd may report
	// an older FAILED, from another node, for the same hash.
	handedTo, sawAt route.Vertex
	// handedAt is when the attempt was last handed to lnd in this run;
	// sendErred is set when that call ended in an error before lnd
	// answered its status stream. lnd may still store and send such a
	// call, so an older FAILED of the hash is not final yet (see
	// staleFailed).
	handedAt  time.Time
	sendErred bool
}

// readyAttempt is an attempt written ahead, waiting for a payment slot.
type readyAttempt struct {
	r  *subRun
	ar *attemptRun
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

	// refusedProbes counts the probes of a refused subscription that the
	// receiver refused too; it doubles the wait before the next probe.
	// It is not the in-a-row refusal count, which refusals of payments
	// that were in flight together keep raising. It lives in memory: a
	// restart starts the doubling over (a probe costs nothing), and a
	// success or the payer's resume ends it.
	refusedProbes uint32

	// dest is the choice among the offer's nodes (destinations.go).
	dest destinations

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

	mu       sync.Mutex
	subs     map[store.SubID]*subRun
	byPublic map[tlv.PublicID]store.SubID // see addSubLocked
	queue    dueHeap
	slots    int
	slotWait map[store.SubID]*subRun
	// slotNeed holds the subscriptions in slotWait that wait for a
	// slot for something that cannot be written ahead (a retry, a
	// cancel message): while one waits, a freed slot is left for it
	// instead of going to a written-ahead attempt, and nothing more is
	// written ahead, else a busy subscription writing ahead again and
	// again would take every freed slot and starve them.
	slotNeed map[store.SubID]struct{}
	// ahead counts attempts being written without a slot, and ready
	// holds the written ones waiting for a slot, oldest first (see
	// mayWriteAheadLocked). Each ready attempt is durable already, so a
	// freed slot sends it at once: the attempt write's fsync is no
	// longer part of the slot's time.
	ahead int
	ready []readyAttempt
	// runCtx is Run's context, for attempts started by a freed slot.
	runCtx     context.Context
	recovering int
	running    bool
	inFlight   int
	// waiting is set while the scheduler waits for its timer (timerDue,
	// zero for none) or a wake-up; tests read both to know the engine
	// is quiescent (see Run).
	waiting  bool
	timerDue time.Time

	wakeCh chan struct{}
	wg     sync.WaitGroup

	// onChange, if set, is called (it must not block) whenever a
	// subscription's state, payments or waiting changed: the dashboard
	// streams it to open pages.
	onChange func()
}

// SetOnChange installs the change hook; call it before Run.
func (e *Engine) SetOnChange(f func()) { e.onChange = f }

// changed calls the change hook.
func (e *Engine) changed() {
	if e.onChange != nil {
		e.onChange()
	}
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
		slotNeed: map[store.SubID]struct{}{},
		wakeCh:   make(chan struct{}, 1),
	}
}

// newSubRun builds the live view of a stored subscription.
func (e *Engine) newSubRun(s *store.SenderSubscription) (*subRun, error) {
	// Stored offers are parsed leniently: an older sender accepted offers
	// whose extra_node_ids this version refuses, and one of them must not
	// stop the daemon. New offers were checked strictly by Add.
	o, dropped, err := tlv.ParseStoredOffer(s.OfferString)
	if err != nil {
		return nil, fmt.Errorf("subscription %s: stored offer: %w",
			s.ID, err)
	}
	if dropped != nil {
		e.log.Warnf("Subscription %s: its stored offer's extra nodes "+
			"are invalid (accepted by an older version); paying "+
			"node %s only: %v", s.ID, o.Node, dropped)
	}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = e.cfg.BackoffInitial
	bo.MaxInterval = e.cfg.BackoffMax
	bo.MaxElapsedTime = 0
	bo.Clock = e.clock
	bo.Reset()
	return &subRun{id: s.ID, sub: s, offer: o, open: map[uint64]*attemptRun{},
		bo: bo, idx: -1, dest: newDestinations(o)}, nil
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
	if err := e.scheduleOldRefused(ctx, subs); err != nil {
		return err
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range subs {
		r, err := e.newSubRun(s)
		if err != nil {
			return err
		}
		e.addSubLocked(s.ID, r)
	}
	for _, a := range open {
		r, ok := e.subs[a.SubID]
		if !ok {
			return fmt.Errorf("open attempt %s/%d has no "+
				"subscription", a.SubID, a.Seq)
		}
		r.open[a.Seq] = &attemptRun{a: a, recovering: true,
			handed: true}
		e.recovering++
	}
	e.log.Infof("Loaded %d subscriptions, %d payments to resolve with "+
		"lnd first", len(subs), len(open))
	return nil
}

// scheduleOldRefused gives each refused subscription without a probe time
// (written by a version that did not probe) one at RefusedRetry from now,
// plus a random part of another RefusedRetry, so an upgrade does not start
// paying on every refused subscription at once.
func (e *Engine) scheduleOldRefused(ctx context.Context,
	subs []*store.SenderSubscription) error {

	now := e.clock.Now()
	for i, s := range subs {
		if s.State != store.SenderRefused || !s.ResumeAt.IsZero() {
			continue
		}
		at := now.Add(e.cfg.RefusedRetry + time.Duration(
			mrand.Int64N(int64(e.cfg.RefusedRetry))))
		var out *store.SenderSubscription
		err := e.db.Update(ctx, func(tx store.SenderTx) error {
			st, err := tx.Subscription(s.ID)
			if err != nil {
				return err
			}
			if st.State != store.SenderRefused ||
				!st.ResumeAt.IsZero() {
				out = st
				return nil
			}
			st.ResumeAt = at
			st.Revision++
			st.UpdatedAt = now
			out = st
			return tx.PutSubscription(st)
		})
		if err != nil {
			return fmt.Errorf("schedule probe of refused "+
				"subscription %s: %w", s.ID, err)
		}
		subs[i] = out
		e.log.Infof("Subscription %s: refused, next probe of the "+
			"receiver at %s", s.ID, at.UTC().Format(time.RFC3339))
	}
	return nil
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
	e.changed()
	if old != s.State {
		e.log.Infof("Subscription %s: %v -> %v %s", s.ID, old, s.State,
			s.Reason)
	}
}
