// Package webhook delivers the receiver's event outbox to the provider's
// URLs: JSON bodies signed in Stripe's style, retried with exponential
// backoff, in order per subscription, resuming from the store after a
// restart.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/cenkalti/backoff/v4"
	"github.com/satstream/satstream/store"
)

// SignatureHeader is the HTTP header carrying the signature.
const SignatureHeader = "Satstream-Signature"

// ErrBadSignature is returned by Verify for a missing, malformed, stale or
// wrong signature.
var ErrBadSignature = errors.New("bad webhook signature")

// Sign returns the Satstream-Signature header value for body sent at t:
// "t=<unix>,v1=<hex HMAC-SHA256(secret, t + "." + body)>".
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a signature header the way a provider's endpoint should:
// the HMAC must match and the timestamp be within tolerance of now.
func Verify(secret []byte, header string, body []byte, now time.Time,
	tolerance time.Duration) error {

	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return fmt.Errorf("%w: malformed header %q", ErrBadSignature, header)
	}
	want := Sign(secret, time.Unix(sec, 0), body)
	if !hmac.Equal([]byte(want), []byte("t="+ts+",v1="+sig)) {
		return fmt.Errorf("%w: HMAC mismatch", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp %d outside tolerance",
			ErrBadSignature, sec)
	}
	return nil
}

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
	Store  store.ReceiverStore
	URLs   []string
	Secret []byte
	// Network is the Bitcoin network of the receiver's lnd, shown in
	// every body.
	Network string
	Client  *http.Client
	Log     btclog.Logger
	// InitialBackoff and MaxBackoff shape the retry schedule.
	InitialBackoff, MaxBackoff time.Duration
	// GiveUpAfter is how long an event is retried at one endpoint,
	// counted from its creation (or from a manual retry), before it is
	// given up there: the dead-letter state (DefaultGiveUpAfter if 0).
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
	url  string
	id   store.EndpointID
	wake chan struct{}
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
		d.eps = append(d.eps, &endpoint{url: u, id: id,
			wake: make(chan struct{}, 1)})
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

// Run delivers until ctx ends, one goroutine per endpoint.
func (d *Dispatcher) Run(ctx context.Context) error {
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

// runEndpoint is one endpoint's queue.
func (d *Dispatcher) runEndpoint(ctx context.Context, ep *endpoint) {
	for {
		next, err := d.pass(ctx, ep)
		if err != nil && ctx.Err() == nil {
			d.cfg.Log.Errorf("webhook pass for %s: %v",
				RedactURL(ep.url), err)
			next = d.cfg.Now().Add(d.cfg.InitialBackoff)
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
// events of a subscription whose earlier event waits for a retry there. It
// returns the earliest time a retry is due (zero: none).
func (d *Dispatcher) pass(ctx context.Context, ep *endpoint) (time.Time,
	error) {

	const batch = 500
	type item struct {
		ev *store.Event
		dl *store.Delivery
	}
	var (
		next    time.Time
		blocked = map[store.SubID]bool{}
		after   store.EventID
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
			return next, nil
		}
		for _, it := range items {
			ev, dl := it.ev, it.dl
			after = ev.ID
			if dl.State != store.DeliveryPending || blocked[ev.SubID] {
				continue
			}
			if dl.NextAttempt.After(d.cfg.Now()) {
				blocked[ev.SubID] = true
				if next.IsZero() || dl.NextAttempt.Before(next) {
					next = dl.NextAttempt
				}
				continue
			}
			err := d.deliver(ctx, ep, ev, dl)
			if ctx.Err() != nil {
				return next, nil
			}
			if err != nil {
				return next, err
			}
			if dl.State == store.DeliveryPending {
				blocked[ev.SubID] = true
				if next.IsZero() || dl.NextAttempt.Before(next) {
					next = dl.NextAttempt
				}
			}
		}
	}
}

// deliver sends ev to ep and records the result in ep's delivery state
// (and the event's summary). The record is written after the 2xx: a crash
// in between sends the event again after the restart (at least once;
// endpoints deduplicate by the event id).
func (d *Dispatcher) deliver(ctx context.Context, ep *endpoint,
	ev *store.Event, dl *store.Delivery) error {

	body, err := Body(ev, d.cfg.Network)
	if err != nil {
		return err
	}
	postErr := d.post(ctx, ep.url, body)
	if d.cfg.OnResult != nil && ctx.Err() == nil {
		d.cfg.OnResult(postErr == nil)
	}
	if postErr != nil && ctx.Err() != nil {
		return nil
	}
	now := d.cfg.Now()
	if postErr == nil {
		dl.State, dl.FinishedAt = store.DeliveryDelivered, now
		dl.LastError = ""
		d.cfg.Log.Debugf("event %d (%v) delivered to %s", ev.ID,
			ev.Type, RedactURL(ep.url))
	} else {
		dl.Attempts++
		dl.LastError = postErr.Error()
		since := dl.RetrySince
		if since.IsZero() {
			since = ev.CreatedAt
		}
		dl.NextAttempt = now.Add(d.cfg.Jitter(Delay(dl.Attempts,
			d.cfg.InitialBackoff, d.cfg.MaxBackoff)))
		if now.Sub(since) >= d.cfg.GiveUpAfter {
			dl.State, dl.FinishedAt = store.DeliveryDead, now
			dl.NextAttempt = time.Time{}
			d.cfg.Log.Warnf("event %d (%v) given up at %s after %d "+
				"attempts over %v (dead letter; POST "+
				"/v1/webhooks/events/%v/retry to try again): %v",
				ev.ID, ev.Type, RedactURL(ep.url), dl.Attempts,
				now.Sub(since).Round(time.Second), ev.UID, postErr)
		} else {
			d.cfg.Log.Warnf("event %d (%v) not delivered to %s "+
				"(attempt %d, next at %v): %v", ev.ID, ev.Type,
				RedactURL(ep.url), dl.Attempts,
				dl.NextAttempt.Format(time.RFC3339), postErr)
		}
	}
	// Record the result even if we are shutting down, so a delivered
	// event is not sent again after a restart.
	return d.cfg.Store.Update(context.WithoutCancel(ctx),
		func(tx store.ReceiverTx) error {
			if err := tx.PutDelivery(dl); err != nil {
				return err
			}
			return d.settle(tx, ev.ID, ep, postErr, now)
		})
}

// settle updates the event's summary after an attempt at ep: it leaves the
// outbox once every endpoint has it delivered; an event given up anywhere
// stays listed as pending (the dead letters) until retried.
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
	all := true
	ev.NextAttempt = time.Time{}
	for _, e := range d.eps {
		dl, err := tx.Delivery(e.id, id)
		if err != nil {
			return err
		}
		if dl.State != store.DeliveryDelivered {
			all = false
		}
		if dl.State == store.DeliveryPending &&
			(ev.NextAttempt.IsZero() || dl.NextAttempt.Before(
				ev.NextAttempt)) {

			ev.NextAttempt = dl.NextAttempt
		}
	}
	if all {
		ev.Delivered, ev.DeliveredAt = true, now
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
			// Delivered before per-endpoint state was kept.
			v.State = store.DeliveryDelivered.String()
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

// Retry makes the event with public id uid due now at urls: at the
// endpoints where it is dead or still pending, or, if every endpoint has
// it, at all of them again (a resend). The give-up clock restarts. The
// caller wakes the dispatcher.
func Retry(tx store.ReceiverTx, urls []string, uid store.EventUID,
	now time.Time) (*store.Event, error) {

	if len(urls) == 0 {
		return nil, ErrNoEndpoints
	}
	ev, err := tx.EventByUID(uid)
	if err != nil {
		return nil, err
	}
	var dls []*store.Delivery
	open := 0
	for _, u := range urls {
		dl, err := tx.Delivery(store.NewEndpointID(u), ev.ID)
		if err != nil {
			return nil, err
		}
		if ev.Delivered && dl.State == store.DeliveryPending {
			dl.State = store.DeliveryDelivered
		}
		if dl.State != store.DeliveryDelivered {
			open++
		}
		dls = append(dls, dl)
	}
	for _, dl := range dls {
		if open > 0 && dl.State == store.DeliveryDelivered {
			continue
		}
		dl.State = store.DeliveryPending
		dl.NextAttempt, dl.RetrySince = now, now
		dl.FinishedAt = time.Time{}
		if err := tx.PutDelivery(dl); err != nil {
			return nil, err
		}
	}
	ev.Delivered, ev.DeliveredAt, ev.NextAttempt = false, time.Time{}, now
	return ev, tx.PutEvent(ev)
}

// ErrRedirect reports an endpoint that answered with a redirect, which is
// never followed: the event counts as not delivered.
var ErrRedirect = errors.New("redirect not followed")

// post sends one signed request; any 2xx is success, anything else
// (redirects included) a failure. Errors never contain the URL's
// credentials or query.
func (d *Dispatcher) post(ctx context.Context, rawURL string,
	body []byte) error {

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL,
		bytes.NewReader(body))
	if err != nil {
		return errors.New("bad URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "satstream-receiver")
	req.Header.Set(SignatureHeader, Sign(d.cfg.Secret, d.cfg.Now(), body))
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
// fragment dropped.
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
	s := out.String()
	if u.User != nil {
		s = strings.Replace(s, "//", "//REDACTED@", 1)
	}
	if u.RawQuery != "" || u.ForceQuery {
		s += "?REDACTED"
	}
	return s
}
