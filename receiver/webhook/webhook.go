// Package webhook delivers the receiver's event outbox to the provider's
// URLs: JSON bodies signed in Stripe's style, retried with exponential
// backoff, in order per subscription, resuming from the store after a
// restart.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/cenkalti/backoff/v4"
	"github.com/satstream/satstream/store"
)

// APIVersion names the shape of event bodies (this envelope and the
// views in data). It changes, to the date of the change, whenever a field
// is renamed, removed or changes meaning; added fields do not change it.
const APIVersion = "2026-11-29"

// Envelope is the JSON body of every delivery (and of the API's event
// list). It names the subscription by its public id only: the secret
// subscription id is never in a body.
type Envelope struct {
	// ID is the event's random id (evt_ + 32 hex), what a consumer
	// deduplicates by: unlike Sequence it is never reused, even by a new
	// or restored ledger.
	ID string `json:"id"`
	// Sequence orders the events of one ledger.
	Sequence   uint64 `json:"sequence"`
	APIVersion string `json:"api_version"`
	// Network is the Bitcoin network of the receiver's lnd, so a test
	// node's events are never taken for real money.
	Network        string          `json:"network"`
	Type           string          `json:"type"`
	CreatedAt      time.Time       `json:"created_at"`
	SubscriptionID string          `json:"subscription_id,omitempty"`
	Data           json.RawMessage `json:"data"`
}

// NewEnvelope wraps a stored event for delivery from a receiver on
// network.
func NewEnvelope(ev *store.Event, network string) Envelope {
	env := Envelope{
		Sequence:   uint64(ev.ID),
		APIVersion: APIVersion,
		Network:    network,
		Type:       ev.Type.String(),
		CreatedAt:  ev.CreatedAt.UTC(),
		Data:       ev.Payload,
	}
	if len(env.Data) == 0 {
		env.Data = json.RawMessage("{}")
	}
	// Every stored event has a UID (AppendEvent and the schema 5
	// migration give one); a zero one is not rendered as the id
	// evt_000..., which every such event would share.
	if !ev.UID.IsZero() {
		env.ID = ev.UID.String()
	}
	if !ev.SubID.IsZero() {
		env.SubscriptionID = ev.SubID.PublicID().String()
	}
	return env
}

// ErrNoEventID is returned for an event without a UID, which no consumer
// could deduplicate.
var ErrNoEventID = errors.New("event has no id")

// Body renders an event as the JSON a webhook receives.
func Body(ev *store.Event, network string) ([]byte, error) {
	if ev.UID.IsZero() {
		return nil, fmt.Errorf("%w: event %d", ErrNoEventID, ev.ID)
	}
	return json.Marshal(NewEnvelope(ev, network))
}

// DefaultGiveUpAfter is how long an event is retried at one endpoint
// before it is given up there (Stripe: 3 days).
const DefaultGiveUpAfter = 3 * 24 * time.Hour

// Config wires a Dispatcher.
type Config struct {
	Store store.ReceiverStore
	URLs  []string
	// Secret signs the requests to every URL without secrets of its
	// own in EndpointSecrets.
	Secret []byte
	// EndpointSecrets are per-URL secrets: each request to the URL is
	// signed with every one of them (several while rotating, so the
	// endpoint can switch to the new one at its own pace).
	EndpointSecrets map[string][][]byte
	// Network is the Bitcoin network of the receiver's lnd, shown in
	// every body.
	Network string
	Client  *http.Client
	Log     btclog.Logger
	// InitialBackoff and MaxBackoff shape the retry schedule.
	InitialBackoff, MaxBackoff time.Duration
	// GiveUpAfter is how long an event is retried at one endpoint,
	// counted from its first failed attempt there (or from a manual
	// retry), before it is given up there: the dead-letter state
	// (DefaultGiveUpAfter if 0).
	GiveUpAfter time.Duration
	// Jitter spreads a retry delay (nil: a uniform pick in [d/2, d]).
	Jitter func(d time.Duration) time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// OnResult, if set, is told about every delivery attempt.
	OnResult func(ok bool)
}

// endpoint is one webhook URL with its own queue: its own pass over the
// outbox, its own retry schedule and its own wake-up.
type endpoint struct {
	url string
	id  store.EndpointID
	// secrets sign every request to this endpoint (several while one
	// is being rotated).
	secrets [][]byte
	wake    chan struct{}

	mu sync.Mutex
	// floor is the endpoint's cursor: every event up to it is finished
	// here (delivered or dead) or out of the pending queue, so a pass
	// starts after it instead of rescanning the backlog. It lives in
	// memory: after a restart the first pass scans once from the start.
	floor store.EventID
	// rewound tells a pass running while Rewind lowered the floor not
	// to move it up again with what it scanned before.
	rewound bool
	// seen is the last event the previous pass looked at (0: the next
	// pass is a full one). While no retry is due, a pass only looks at
	// the events after it, with blocked and due as that pass left them:
	// a down endpoint does not reread its backlog for every new event.
	seen store.EventID
	// blocked are the subscriptions with an event waiting for a retry
	// here, as of seen.
	blocked map[store.SubID]bool
	// due is the earliest retry due here, as of seen (zero: none).
	due time.Time
	// open is the oldest event pending here, as of seen (0: none).
	open store.EventID

	// Touched only by the endpoint's goroutine.
	//
	// unmarked is an event the endpoint accepted (2xx) whose delivery
	// could not be recorded: the next pass records it before anything
	// else instead of POSTing it again.
	unmarked *accepted
	// passErrs counts the passes in a row that failed (store errors),
	// for the backoff between them.
	passErrs uint32
}

// accepted is a 2xx not yet recorded: the event, its delivery row as it
// was read before the POST, and when the endpoint answered.
type accepted struct {
	ev   *store.Event
	read store.Delivery
	at   time.Time
}

// passStart is where a pass starts and what it knows already.
type passStart struct {
	after store.EventID
	// full is a pass over the whole queue from the floor; otherwise it
	// looks only at the events after the last one seen.
	full    bool
	blocked map[store.SubID]bool
	next    time.Time
	// open is the oldest event still pending here as of after (0:
	// none).
	open store.EventID
}

// startPass returns where a pass starts: after the floor (a full pass)
// when a retry is due or nothing was seen since the start or a rewind,
// else after the last event seen, with the blocked subscriptions and the
// earliest retry the previous pass left.
func (ep *endpoint) startPass(now time.Time) passStart {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.rewound = false
	if ep.seen == 0 || ep.seen < ep.floor ||
		(!ep.due.IsZero() && !now.Before(ep.due)) {

		return passStart{after: ep.floor, full: true,
			blocked: map[store.SubID]bool{}}
	}
	blocked := make(map[store.SubID]bool, len(ep.blocked))
	for sub := range ep.blocked {
		blocked[sub] = true
	}
	return passStart{after: ep.seen, blocked: blocked, next: ep.due,
		open: ep.open}
}

// advance moves the floor up to floor after a complete pass and keeps
// what it saw for the next one, unless a rewind came in meanwhile.
func (ep *endpoint) advance(floor, seen, open store.EventID,
	blocked map[store.SubID]bool, due time.Time) {

	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.rewound {
		return
	}
	if floor > ep.floor {
		ep.floor = floor
	}
	ep.seen, ep.open, ep.blocked, ep.due = seen, open, blocked, due
}

// forget makes the next pass a full one (after a pass that failed half
// way, whose view of the queue is incomplete).
func (ep *endpoint) forget() {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.seen = 0
}

// rewind lowers the floor below id, so the next pass scans it again.
func (ep *endpoint) rewind(id store.EventID) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if id > 0 && id-1 < ep.floor {
		ep.floor = id - 1
	}
	ep.rewound = true
	ep.seen = 0
}

// Dispatcher delivers pending events, one independent queue per endpoint,
// so an endpoint that is down never holds back the others.
type Dispatcher struct {
	cfg Config
	eps []*endpoint
}

// New returns a dispatcher; Run starts it.
func New(cfg Config) *Dispatcher {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.GiveUpAfter <= 0 {
		cfg.GiveUpAfter = DefaultGiveUpAfter
	}
	if cfg.Jitter == nil {
		cfg.Jitter = equalJitter
	}
	client := &http.Client{Timeout: 10 * time.Second}
	if cfg.Client != nil {
		c := *cfg.Client
		client = &c
	}
	// A redirect is never followed: Go's client turns a POST into a
	// GET on 301/302/303, whose 200 would mark an event delivered that
	// the endpoint never received. Any 3xx is a failed delivery.
	client.CheckRedirect = func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}
	cfg.Client = client
	d := &Dispatcher{cfg: cfg}
	seen := make(map[store.EndpointID]bool, len(cfg.URLs))
	for _, u := range cfg.URLs {
		// A URL given twice is one endpoint: two queues on the same
		// delivery state would send every event twice.
		id := store.NewEndpointID(u)
		if seen[id] {
			continue
		}
		seen[id] = true
		secrets := cfg.EndpointSecrets[u]
		if len(secrets) == 0 {
			secrets = [][]byte{cfg.Secret}
		}
		d.eps = append(d.eps, &endpoint{url: u, id: id,
			secrets: secrets, wake: make(chan struct{}, 1)})
	}
	return d
}

// equalJitter picks a delay uniformly in [d/2, d], so endpoints that
// failed together do not retry in lockstep.
func equalJitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// Notify tells the dispatcher new events were committed.
func (d *Dispatcher) Notify() {
	for _, ep := range d.eps {
		select {
		case ep.wake <- struct{}{}:
		default:
		}
	}
}

// Rewind tells the dispatcher that event id is pending again (a manual
// Retry committed): each endpoint's cursor moves back to it and the
// endpoints wake up. Without it the event waits for the next start.
func (d *Dispatcher) Rewind(id store.EventID) {
	for _, ep := range d.eps {
		ep.rewind(id)
	}
	d.Notify()
}

// Delay returns the wait before retry number attempts (1-based) on the
// exponential schedule, capped at maxDelay (before jitter).
func Delay(attempts uint32, initial, maxDelay time.Duration) time.Duration {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = initial
	b.MaxInterval = maxDelay
	b.Multiplier = 2
	b.RandomizationFactor = 0
	b.MaxElapsedTime = 0
	b.Reset()
	d := initial
	for i := uint32(0); i < attempts; i++ {
		d = b.NextBackOff()
	}
	return d
}

// Run delivers until ctx ends, one goroutine per endpoint. It first
// tidies what a change of the configured endpoints left behind.
func (d *Dispatcher) Run(ctx context.Context) error {
	if err := d.tidy(ctx); err != nil && ctx.Err() == nil {
		// Not fatal: delivery works without it, and the next start
		// tries again.
		d.cfg.Log.Warnf("webhook: tidying after a change of "+
			"endpoints: %v", err)
	}
	var wg sync.WaitGroup
	for _, ep := range d.eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.runEndpoint(ctx, ep)
		}()
	}
	wg.Wait()
	return nil
}

// runEndpoint is one endpoint's queue. A pass that fails (the store
// refused a read or write) is retried on the same exponential schedule,
// with jitter, as a failed delivery.
func (d *Dispatcher) runEndpoint(ctx context.Context, ep *endpoint) {
	for {
		next, err := d.pass(ctx, ep)
		if err != nil {
			ep.forget()
		}
		switch {
		case err != nil && ctx.Err() == nil:
			ep.passErrs++
			wait := d.cfg.Jitter(Delay(ep.passErrs,
				d.cfg.InitialBackoff, d.cfg.MaxBackoff))
			next = d.cfg.Now().Add(wait)
			d.cfg.Log.Warnf("webhook pass for %s failed %d times in "+
				"a row, next in %v: %v", RedactURL(ep.url),
				ep.passErrs, wait, err)
		case err == nil:
			ep.passErrs = 0
		}
		wait := time.Minute
		if !next.IsZero() {
			wait = next.Sub(d.cfg.Now())
			if wait < 10*time.Millisecond {
				wait = 10 * time.Millisecond
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-ep.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// pass tries every event due at ep once, oldest first, holding back later
// events of a subscription whose earlier event waits for a retry there. A
// full pass (a retry is due) starts after the endpoint's floor and, once
// it has seen the whole queue, moves the floor up to just below the oldest
// event still pending here; a pass woken by new events only looks at the
// events after the last one seen. It returns the earliest time a retry is
// due (zero: none).
func (d *Dispatcher) pass(ctx context.Context, ep *endpoint) (time.Time,
	error) {

	// An event the endpoint accepted but we could not record is
	// recorded first, never POSTed again.
	if a := ep.unmarked; a != nil {
		dl := a.read
		if err := d.record(ctx, ep, a.ev, &dl, nil, a.at); err != nil {
			return time.Time{}, err
		}
		ep.unmarked = nil
	}

	const batch = 500
	type item struct {
		ev *store.Event
		dl *store.Delivery
	}
	start := ep.startPass(d.cfg.Now())
	var (
		next    = start.next
		blocked = start.blocked
		after   = start.after
		// open is the oldest event seen still pending here (0: none).
		open = start.open
	)
	for {
		var items []item
		err := d.cfg.Store.View(ctx, func(tx store.ReceiverTx) error {
			items = items[:0]
			return tx.ForEachPendingEvent(after, func(ev *store.Event) error {
				dl, err := tx.Delivery(ep.id, ev.ID)
				if err != nil {
					return err
				}
				items = append(items, item{ev, dl})
				if len(items) >= batch {
					return store.ErrStop
				}
				return nil
			})
		})
		if err != nil {
			return next, err
		}
		if len(items) == 0 {
			floor := after
			if open != 0 {
				floor = open - 1
			}
			ep.advance(floor, after, open, blocked, next)
			return next, nil
		}
		for _, it := range items {
			ev, dl := it.ev, it.dl
			after = ev.ID
			err := d.try(ctx, ep, ev, dl, blocked, &next)
			if ctx.Err() != nil {
				return next, nil
			}
			if err != nil {
				return next, err
			}
			if dl.State == store.DeliveryPending && open == 0 {
				open = ev.ID
			}
		}
	}
}

// try delivers ev at ep if it is pending and due there and no earlier
// event of its subscription waits; otherwise it notes when it is due.
func (d *Dispatcher) try(ctx context.Context, ep *endpoint, ev *store.Event,
	dl *store.Delivery, blocked map[store.SubID]bool, next *time.Time) error {

	if dl.State != store.DeliveryPending || blocked[ev.SubID] {
		return nil
	}
	due := func() {
		// A manually retried event does not hold back the later
		// events of its subscription: they went on when it was
		// given up, and waiting behind it could take the whole
		// retry period.
		if !dl.Manual {
			blocked[ev.SubID] = true
		}
		if next.IsZero() || dl.NextAttempt.Before(*next) {
			*next = dl.NextAttempt
		}
	}
	if dl.NextAttempt.After(d.cfg.Now()) {
		due()
		return nil
	}
	if err := d.deliver(ctx, ep, ev, dl); err != nil || ctx.Err() != nil {
		return err
	}
	if dl.State == store.DeliveryPending {
		due()
	}
	return nil
}

// deliver sends ev to ep and records the result in ep's delivery state
// (and the event's summary); on return dl is the row as stored. The
// record is written after the 2xx: a crash in between sends the event
// again after the restart (at least once; endpoints deduplicate by the
// event id). If only the record fails, the 2xx is kept in memory and the
// next pass records it without a second POST.
func (d *Dispatcher) deliver(ctx context.Context, ep *endpoint,
	ev *store.Event, dl *store.Delivery) error {

	body, err := Body(ev, d.cfg.Network)
	if err != nil {
		return err
	}
	postErr := d.post(ctx, ep, ev.UID.String(), body)
	if d.cfg.OnResult != nil && ctx.Err() == nil {
		d.cfg.OnResult(postErr == nil)
	}
	if postErr != nil && ctx.Err() != nil {
		return nil
	}
	now := d.cfg.Now()
	read := *dl
	err = d.record(ctx, ep, ev, dl, postErr, now)
	if err != nil && postErr == nil {
		ep.unmarked = &accepted{ev: ev, read: read, at: now}
	}
	return err
}

// sameDelivery tells whether a row is unchanged since it was read.
func sameDelivery(a, b *store.Delivery) bool {
	return a.State == b.State && a.Attempts == b.Attempts &&
		a.NextAttempt.Equal(b.NextAttempt) &&
		a.RetrySince.Equal(b.RetrySince) &&
		a.FinishedAt.Equal(b.FinishedAt) && a.LastError == b.LastError &&
		a.Manual == b.Manual
}

// record writes the outcome of one attempt at ep over the row dl was read
// as, and sets dl to what it stored. The write is conditional: if the row
// changed since it was read (a manual Retry reset it during the POST), a
// failure is dropped so the reset stands, and a success is written over
// the new row (the retry wanted the event delivered, and it is).
func (d *Dispatcher) record(ctx context.Context, ep *endpoint,
	ev *store.Event, dl *store.Delivery, postErr error, now time.Time) error {

	read := *dl
	var (
		out     store.Delivery
		dropped bool
	)
	// Record the result even if we are shutting down, so a delivered
	// event is not sent again after a restart.
	err := d.cfg.Store.Update(context.WithoutCancel(ctx),
		func(tx store.ReceiverTx) error {
			cur, err := tx.Delivery(ep.id, ev.ID)
			if err != nil {
				return err
			}
			dropped = false
			upd := read
			if !sameDelivery(cur, &read) {
				if postErr != nil {
					out, dropped = *cur, true
					return nil
				}
				upd = *cur
			}
			d.outcome(&upd, ev, postErr, now)
			if err := tx.PutDelivery(&upd); err != nil {
				return err
			}
			out = upd
			return d.settle(tx, ev.ID, ep, postErr, now)
		})
	if err != nil {
		return err
	}
	*dl = out
	switch {
	case dropped:
		d.cfg.Log.Infof("event %d (%v): attempt at %s failed while "+
			"its delivery was reset (manual retry); the retry "+
			"stands: %v", ev.ID, ev.Type, RedactURL(ep.url), postErr)
	case postErr == nil:
		d.cfg.Log.Debugf("event %d (%v) delivered to %s", ev.ID,
			ev.Type, RedactURL(ep.url))
	case out.State == store.DeliveryDead:
		d.cfg.Log.Warnf("event %d (%v) given up at %s after %d "+
			"attempts (dead letter; POST /v1/webhooks/events/%v/"+
			"retry to try again): %v", ev.ID, ev.Type,
			RedactURL(ep.url), out.Attempts, ev.UID, postErr)
	default:
		d.cfg.Log.Warnf("event %d (%v) not delivered to %s "+
			"(attempt %d, next at %v): %v", ev.ID, ev.Type,
			RedactURL(ep.url), out.Attempts,
			out.NextAttempt.Format(time.RFC3339), postErr)
	}
	return nil
}

// outcome applies one attempt's result to dl: delivered, or the next
// attempt on the backoff schedule, or dead once the give-up time is over.
func (d *Dispatcher) outcome(dl *store.Delivery, ev *store.Event,
	postErr error, now time.Time) {

	if postErr == nil {
		dl.State, dl.FinishedAt = store.DeliveryDelivered, now
		dl.LastError, dl.NextAttempt = "", time.Time{}
		dl.Manual = false
		return
	}
	// The give-up clock runs from the first attempt at this endpoint
	// (or a manual retry), not from the event's creation: an event that
	// waited in order behind another one, through downtime, or for an
	// endpoint added later gets its whole retry period here. A row
	// attempted before the clock was kept falls back to the creation.
	switch {
	case dl.RetrySince.IsZero() && dl.Attempts == 0:
		dl.RetrySince = now
	case dl.RetrySince.IsZero():
		dl.RetrySince = ev.CreatedAt
	}
	since := dl.RetrySince
	dl.Attempts++
	dl.LastError = postErr.Error()
	dl.NextAttempt = now.Add(d.cfg.Jitter(Delay(dl.Attempts,
		d.cfg.InitialBackoff, d.cfg.MaxBackoff)))
	if now.Sub(since) >= d.cfg.GiveUpAfter {
		dl.State, dl.FinishedAt = store.DeliveryDead, now
		dl.NextAttempt, dl.Manual = time.Time{}, false
	}
}

// settle updates the event's summary after an attempt at ep (nil: none):
// it leaves the pending queue once every configured endpoint has it
// delivered or given up, and records which endpoints those were. Its
// delivered rows are then deleted (an absent row of a finished event
// reads as delivered at the endpoints it finished at, as not sent at any
// other); dead rows stay, as the dead-letter record a manual retry works
// from.
func (d *Dispatcher) settle(tx store.ReceiverTx, id store.EventID,
	ep *endpoint, postErr error, now time.Time) error {

	ev, err := tx.Event(id)
	if err != nil {
		return err
	}
	if postErr != nil {
		ev.Attempts++
		ev.LastError = RedactURL(ep.url) + ": " + postErr.Error()
	}
	done := true
	ev.NextAttempt = time.Time{}
	var delivered []store.EndpointID
	for _, e := range d.eps {
		dl, err := tx.Delivery(e.id, id)
		if err != nil {
			return err
		}
		switch dl.State {
		case store.DeliveryPending:
			done = false
			if ev.NextAttempt.IsZero() ||
				dl.NextAttempt.Before(ev.NextAttempt) {

				ev.NextAttempt = dl.NextAttempt
			}
		case store.DeliveryDelivered:
			delivered = append(delivered, e.id)
		}
	}
	if done {
		ev.Delivered, ev.DeliveredAt = true, now
		ev.FinishedAt = make([]store.EndpointID, 0, len(d.eps))
		for _, e := range d.eps {
			ev.FinishedAt = append(ev.FinishedAt, e.id)
		}
		for _, e := range delivered {
			if err := tx.DeleteDelivery(e, id); err != nil {
				return err
			}
		}
	}
	return tx.PutEvent(ev)
}

// DeliveryView is one event's state at one endpoint, as the API shows it.
type DeliveryView struct {
	Endpoint    string     `json:"endpoint"`
	URL         string     `json:"url"`
	State       string     `json:"state"`
	Attempts    uint32     `json:"attempts"`
	LastError   string     `json:"last_error,omitempty"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
}

// StateNotSent is the API's state of a finished event at an endpoint it
// was never sent to (one configured after the event left the queue).
const StateNotSent = "not_sent"

// finishedState is the state of a finished event at ep whose row reads
// pending (absent): the row of a delivered endpoint is deleted once the
// event is finished everywhere, and events delivered before per-endpoint
// state was kept have none; an endpoint the event did not finish at
// never had it.
func finishedState(ev *store.Event, ep store.EndpointID) string {
	if at, known := ev.FinishedAtEndpoint(ep); known && !at {
		return StateNotSent
	}
	return store.DeliveryDelivered.String()
}

// Deliveries returns ev's state at each of urls.
func Deliveries(tx store.ReceiverTx, urls []string, ev *store.Event) (
	[]DeliveryView, error) {

	out := make([]DeliveryView, 0, len(urls))
	for _, u := range urls {
		dl, err := tx.Delivery(store.NewEndpointID(u), ev.ID)
		if err != nil {
			return nil, err
		}
		v := DeliveryView{Endpoint: dl.Endpoint.String(),
			URL: RedactURL(u), State: dl.State.String(),
			Attempts: dl.Attempts, LastError: dl.LastError}
		if ev.Delivered && dl.State == store.DeliveryPending {
			v.State = finishedState(ev, dl.Endpoint)
		}
		if dl.State == store.DeliveryPending && dl.Attempts > 0 {
			t := dl.NextAttempt.UTC()
			v.NextAttempt = &t
		}
		if !dl.FinishedAt.IsZero() {
			t := dl.FinishedAt.UTC()
			v.FinishedAt = &t
		}
		out = append(out, v)
	}
	return out, nil
}

// ErrNoEndpoints is returned by Retry when no webhook URL is configured.
var ErrNoEndpoints = errors.New("no webhook endpoints configured")

// Retry makes the event with public id uid due now at urls (RetryEvent):
// at the endpoints where it is dead or still pending or was never sent
// (added after the event finished), or, if every endpoint has it, at all
// of them again (a resend). The give-up clock restarts. The caller wakes
// the dispatcher.
func Retry(tx store.ReceiverTx, urls []string, uid store.EventUID,
	now time.Time) (*store.Event, error) {

	if len(urls) == 0 {
		return nil, ErrNoEndpoints
	}
	ev, err := tx.EventByUID(uid)
	if err != nil {
		return nil, err
	}
	return ev, RetryEvent(tx, urls, ev, now)
}

// RetryEvent makes ev due now at urls: at the endpoints where it is dead or
// still pending, or, if every endpoint has it, at all of them again (a
// resend). The give-up clock restarts. The caller tells the dispatcher
// (Dispatcher.Rewind) once the transaction committed: the event may lie
// below the endpoints' cursors.
func RetryEvent(tx store.ReceiverTx, urls []string, ev *store.Event,
	now time.Time) error {

	if len(urls) == 0 {
		return ErrNoEndpoints
	}
	var dls []*store.Delivery
	open := 0
	for _, u := range urls {
		dl, err := tx.Delivery(store.NewEndpointID(u), ev.ID)
		if err != nil {
			return err
		}
		if ev.Delivered && dl.State == store.DeliveryPending &&
			finishedState(ev, dl.Endpoint) != StateNotSent {

			dl.State = store.DeliveryDelivered
		}
		if dl.State != store.DeliveryDelivered {
			open++
		}
		dls = append(dls, dl)
	}
	for _, dl := range dls {
		if open > 0 && dl.State == store.DeliveryDelivered {
			// Written back: the row of a finished event may have
			// been deleted, and read as pending once the event is
			// pending again it would be sent there a second time.
			if err := tx.PutDelivery(dl); err != nil {
				return err
			}
			continue
		}
		dl.State = store.DeliveryPending
		dl.NextAttempt, dl.RetrySince = now, now
		dl.FinishedAt, dl.Manual = time.Time{}, true
		if err := tx.PutDelivery(dl); err != nil {
			return err
		}
	}
	ev.Delivered, ev.DeliveredAt, ev.NextAttempt = false, time.Time{}, now
	ev.FinishedAt = nil
	return tx.PutEvent(ev)
}

// ErrRedirect reports an endpoint that answered with a redirect, which is
// never followed: the event counts as not delivered.
var ErrRedirect = errors.New("redirect not followed")

// post sends one signed request; any 2xx is success, anything else
// (redirects included) a failure. Errors never contain the URL's
// credentials or query.
func (d *Dispatcher) post(ctx context.Context, ep *endpoint, id string,
	body []byte) error {

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.url,
		bytes.NewReader(body))
	if err != nil {
		return errors.New("bad URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "satstream-receiver")
	SetSignatureHeaders(req.Header, ep.secrets, id, d.cfg.Now(), body)
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		// *url.Error repeats the URL, query included.
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode <= 399:
		return fmt.Errorf("%w: status %d to %s; configure the final "+
			"URL in --webhook.url", ErrRedirect, resp.StatusCode,
			RedactURL(resp.Header.Get("Location")))
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// RedactURL is rawURL fit for logs and last_error: user information and
// query (where endpoints keep tokens) are replaced by "REDACTED", the
// fragment dropped, and the path kept to its first segment, the rest
// replaced by "REDACTED": Slack, Discord and Zapier put the token in the
// path (/services/T../B../<token>, /api/webhooks/<id>/<token>). The
// endpoint's we_ id tells endpoints apart.
func RedactURL(rawURL string) string {
	if rawURL == "" {
		return `""`
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	out := *u
	out.User = nil
	out.RawQuery = ""
	out.ForceQuery = false
	out.Fragment, out.RawFragment = "", ""
	if first, rest, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"),
		"/"); ok && rest != "" {

		out.Path, out.RawPath = "/"+first+"/REDACTED", ""
	}
	s := out.String()
	if u.User != nil {
		s = strings.Replace(s, "//", "//REDACTED@", 1)
	}
	if u.RawQuery != "" || u.ForceQuery {
		s += "?REDACTED"
	}
	return s
}
