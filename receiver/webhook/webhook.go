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
		ID:         ev.UID.String(),
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
	if !ev.SubID.IsZero() {
		env.SubscriptionID = ev.SubID.PublicID().String()
	}
	return env
}

// Body renders an event as the JSON a webhook receives.
func Body(ev *store.Event, network string) ([]byte, error) {
	return json.Marshal(NewEnvelope(ev, network))
}

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
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// OnResult, if set, is told about every delivery attempt.
	OnResult func(ok bool)
}

// Dispatcher delivers pending events.
type Dispatcher struct {
	cfg  Config
	wake chan struct{}

	// done remembers the URLs an event reached in this run, so a retry
	// after a partial failure does not resend to the others.
	mu   sync.Mutex
	done map[store.EventID]map[string]bool
}

// New returns a dispatcher; Run starts it.
func New(cfg Config) *Dispatcher {
	if cfg.Now == nil {
		cfg.Now = time.Now
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
	return &Dispatcher{
		cfg:  cfg,
		wake: make(chan struct{}, 1),
		done: map[store.EventID]map[string]bool{},
	}
}

// Notify tells the dispatcher new events were committed.
func (d *Dispatcher) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Delay returns the wait before retry number attempts (1-based) on the
// exponential schedule, capped at maxDelay.
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

// Run delivers until ctx ends. Retries never give up: at the longest
// interval an endpoint down for days still gets every event.
func (d *Dispatcher) Run(ctx context.Context) error {
	for {
		next, err := d.pass(ctx)
		if err != nil && ctx.Err() == nil {
			d.cfg.Log.Errorf("webhook pass: %v", err)
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
			return nil
		case <-d.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// pass tries every due event once, oldest first, holding back later events
// of a subscription whose earlier event is waiting for a retry. It returns
// the earliest time a retry is due (zero: none).
func (d *Dispatcher) pass(ctx context.Context) (time.Time, error) {
	const batch = 500
	var (
		next    time.Time
		blocked = map[store.SubID]bool{}
		after   store.EventID
	)
	for {
		var evs []*store.Event
		err := d.cfg.Store.View(ctx, func(tx store.ReceiverTx) error {
			evs = evs[:0]
			return tx.ForEachPendingEvent(after, func(ev *store.Event) error {
				evs = append(evs, ev)
				if len(evs) >= batch {
					return store.ErrStop
				}
				return nil
			})
		})
		if err != nil {
			return next, err
		}
		if len(evs) == 0 {
			return next, nil
		}
		for _, ev := range evs {
			after = ev.ID
			if blocked[ev.SubID] {
				continue
			}
			now := d.cfg.Now()
			if ev.NextAttempt.After(now) {
				blocked[ev.SubID] = true
				if next.IsZero() || ev.NextAttempt.Before(next) {
					next = ev.NextAttempt
				}
				continue
			}
			ok, err := d.deliver(ctx, ev)
			if ctx.Err() != nil {
				return next, nil
			}
			if err != nil {
				return next, err
			}
			if !ok {
				blocked[ev.SubID] = true
				if next.IsZero() || ev.NextAttempt.Before(next) {
					next = ev.NextAttempt
				}
			}
		}
	}
}

// deliver sends ev to every URL it has not reached yet and records the
// result.
func (d *Dispatcher) deliver(ctx context.Context, ev *store.Event) (bool, error) {
	body, err := Body(ev, d.cfg.Network)
	if err != nil {
		return false, err
	}
	d.mu.Lock()
	reached := d.done[ev.ID]
	if reached == nil {
		reached = map[string]bool{}
		d.done[ev.ID] = reached
	}
	d.mu.Unlock()

	var lastErr error
	for _, u := range d.cfg.URLs {
		if reached[u] {
			continue
		}
		err := d.post(ctx, u, body)
		if d.cfg.OnResult != nil && ctx.Err() == nil {
			d.cfg.OnResult(err == nil)
		}
		if err != nil {
			lastErr = fmt.Errorf("%s: %w", RedactURL(u), err)
			continue
		}
		reached[u] = true
	}

	now := d.cfg.Now()
	if lastErr == nil {
		d.mu.Lock()
		delete(d.done, ev.ID)
		d.mu.Unlock()
		d.cfg.Log.Debugf("event %d (%v) delivered", ev.ID, ev.Type)
		// Record the delivery even if we are shutting down, so the
		// endpoint does not get it again after a restart.
		return true, d.cfg.Store.Update(context.WithoutCancel(ctx),
			func(tx store.ReceiverTx) error {
				return tx.MarkEventDelivered(ev.ID, now)
			})
	}
	if ctx.Err() != nil {
		return false, nil
	}
	ev.Attempts++
	ev.LastError = lastErr.Error()
	ev.NextAttempt = now.Add(Delay(ev.Attempts, d.cfg.InitialBackoff,
		d.cfg.MaxBackoff))
	d.cfg.Log.Warnf("event %d (%v) not delivered (attempt %d, next at "+
		"%v): %v", ev.ID, ev.Type, ev.Attempts,
		ev.NextAttempt.Format(time.RFC3339), lastErr)
	return false, d.cfg.Store.Update(ctx, func(tx store.ReceiverTx) error {
		return tx.PutEvent(ev)
	})
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
