// Package sendertest holds the test doubles of the sender's seams: a clock
// moved by hand and an lnd router whose payments the test decides.
package sendertest

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwire"
	paymentsdb "github.com/lightningnetwork/lnd/payments/db"
)

// The router's two answers about a hash, the values lndclient returns
// (lnd's payments/db errors).
var (
	// ErrAlreadyPaid is lnd's answer to a send of a hash that is in
	// flight or settled.
	ErrAlreadyPaid = paymentsdb.ErrAlreadyPaid
	// ErrPaymentNotInitiated is lnd's answer to tracking a hash it never
	// saw.
	ErrPaymentNotInitiated = paymentsdb.ErrPaymentNotInitiated
)

// Clock is a manual clock. After channels fire when Advance passes them.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// NewClock starts a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that receives once the clock reaches now+d.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{at: c.now.Add(d), ch: ch})
	return ch
}

// Advance moves the clock forward and fires every waiter that is due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
			continue
		}
		kept = append(kept, w)
	}
	c.waiters = kept
}

// NextWake returns the earliest pending waiter's time (zero if none), so a
// test can advance straight to the next scheduled event.
func (c *Clock) NextWake() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ts []time.Time
	for _, w := range c.waiters {
		ts = append(ts, w.at)
	}
	if len(ts) == 0 {
		return time.Time{}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	return ts[0]
}

// Outcome is how the fake network ends a payment. Hold keeps it in flight
// until Resolve is called.
type Outcome struct {
	Hold   bool
	State  lnrpc.Payment_PaymentStatus
	Reason lnrpc.PaymentFailureReason
	Fee    lnwire.MilliSatoshi
	// Err, when set, is returned by SendPayment itself (lnd unreachable).
	Err error
}

// Succeed is the outcome of a settled payment with fee.
func Succeed(fee lnwire.MilliSatoshi) Outcome {
	return Outcome{State: lnrpc.Payment_SUCCEEDED, Fee: fee}
}

// Fail is the outcome of a failed payment.
func Fail(reason lnrpc.PaymentFailureReason) Outcome {
	return Outcome{State: lnrpc.Payment_FAILED, Reason: reason}
}

// Payment is what the fake router knows about one hash.
type Payment struct {
	Req    lndclient.SendPaymentRequest
	Status lndclient.PaymentStatus
	// Sends counts SendPayment calls that (re)started this hash.
	Sends int
	subs  []watcher
}

// watcher is one open status stream of a payment in flight.
type watcher struct {
	final chan lndclient.PaymentStatus
	errs  chan error
}

// Router is a fake lnd router with lnd's hash rules: a hash that is in
// flight or succeeded can't be sent again (ErrAlreadyPaid); a failed one
// can.
type Router struct {
	mu       sync.Mutex
	payments map[lntypes.Hash]*Payment
	order    []lntypes.Hash
	// Decide picks the outcome of each send; nil succeeds with no fee.
	decide func(req lndclient.SendPaymentRequest) Outcome
	// down makes every call fail as if lnd were unreachable.
	down error
	// clock, when set, stamps each payment's HTLC with the times it was
	// sent and resolved, as lnd reports them.
	clock *Clock
	// tracks counts TrackPayment calls per hash.
	tracks map[lntypes.Hash]int
}

// NewRouter makes a router whose payments succeed unless SetDecide says
// otherwise.
func NewRouter() *Router {
	return &Router{payments: map[lntypes.Hash]*Payment{},
		tracks: map[lntypes.Hash]int{}}
}

// SetDecide sets the function that decides each payment's outcome.
func (r *Router) SetDecide(f func(req lndclient.SendPaymentRequest) Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.decide = f
}

// SetDown makes every call fail with err (nil: back up).
func (r *Router) SetDown(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = err
}

// SetClock makes the router stamp HTLC attempt and resolve times from c.
func (r *Router) SetClock(c *Clock) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clock = c
}

// SendPayment implements the sender's PaymentSender.
func (r *Router) SendPayment(ctx context.Context,
	req lndclient.SendPaymentRequest) (chan lndclient.PaymentStatus,
	chan error, error) {

	r.mu.Lock()
	if r.down != nil {
		err := r.down
		r.mu.Unlock()
		return nil, nil, err
	}
	hash := *req.PaymentHash
	p, ok := r.payments[hash]
	if ok && p.Status.State != lnrpc.Payment_FAILED {
		r.mu.Unlock()
		errs := make(chan error, 1)
		errs <- ErrAlreadyPaid
		return make(chan lndclient.PaymentStatus), errs, nil
	}
	decide := r.decide
	r.mu.Unlock()

	out := Succeed(0)
	if decide != nil {
		out = decide(req)
	}
	if out.Err != nil {
		return nil, nil, out.Err
	}

	r.mu.Lock()
	if !ok {
		p = &Payment{}
		r.payments[hash] = p
		r.order = append(r.order, hash)
	}
	p.Req = req
	p.Sends++
	p.Status = lndclient.PaymentStatus{
		State: lnrpc.Payment_IN_FLIGHT,
		Value: lnwire.NewMSatFromSatoshis(req.Amount),
	}
	if r.clock != nil {
		p.Status.Htlcs = []*lndclient.HtlcAttempt{{
			Status:      lnrpc.HTLCAttempt_IN_FLIGHT,
			AttemptTime: r.clock.Now(),
		}}
	}
	if !out.Hold {
		r.finishLocked(p, out)
	}
	ch, errs := r.streamLocked(ctx, p)
	r.mu.Unlock()
	return ch, errs, nil
}

// TrackPayment implements the sender's PaymentSender.
func (r *Router) TrackPayment(ctx context.Context,
	hash lntypes.Hash) (chan lndclient.PaymentStatus, chan error, error) {

	r.mu.Lock()
	defer r.mu.Unlock()
	r.tracks[hash]++
	if r.down != nil {
		return nil, nil, r.down
	}
	p, ok := r.payments[hash]
	if !ok {
		errs := make(chan error, 1)
		errs <- ErrPaymentNotInitiated
		return make(chan lndclient.PaymentStatus), errs, nil
	}
	ch, errs := r.streamLocked(ctx, p)
	return ch, errs, nil
}

// streamLocked delivers the current status and, if the payment is in
// flight, its final one later.
func (r *Router) streamLocked(ctx context.Context,
	p *Payment) (chan lndclient.PaymentStatus, chan error) {

	out := make(chan lndclient.PaymentStatus)
	errs := make(chan error, 1)
	first := copyStatus(p.Status)
	var later chan lndclient.PaymentStatus
	if first.State == lnrpc.Payment_IN_FLIGHT {
		later = make(chan lndclient.PaymentStatus, 1)
		p.subs = append(p.subs, watcher{final: later, errs: errs})
	}
	go func() {
		select {
		case out <- first:
		case <-ctx.Done():
			return
		}
		if later == nil {
			return
		}
		select {
		case s := <-later:
			select {
			case out <- s:
			case <-ctx.Done():
			}
		case <-ctx.Done():
		}
	}()
	return out, errs
}

// finishLocked gives a payment its final status and tells its watchers.
func (r *Router) finishLocked(p *Payment, out Outcome) {
	p.Status.State = out.State
	p.Status.FailureReason = out.Reason
	if out.State == lnrpc.Payment_SUCCEEDED {
		p.Status.Fee = out.Fee
	} else {
		p.Status.Value = 0
	}
	if r.clock != nil && len(p.Status.Htlcs) > 0 {
		h := *p.Status.Htlcs[0]
		h.ResolveTime = r.clock.Now()
		h.Status = lnrpc.HTLCAttempt_FAILED
		if out.State == lnrpc.Payment_SUCCEEDED {
			h.Status = lnrpc.HTLCAttempt_SUCCEEDED
		}
		p.Status.Htlcs = []*lndclient.HtlcAttempt{&h}
	}
	for _, w := range p.subs {
		w.final <- copyStatus(p.Status)
	}
	p.subs = nil
}

// copyStatus copies a status so a stream's reader never shares the HTLC
// list the router goes on changing.
func copyStatus(s lndclient.PaymentStatus) lndclient.PaymentStatus {
	s.Htlcs = append([]*lndclient.HtlcAttempt(nil), s.Htlcs...)
	return s
}

// BreakStreams ends every open status stream of hash with err, as a lost
// connection to lnd does, and leaves the payment where it is (in flight
// payments stay in flight and may still settle).
func (r *Router) BreakStreams(hash lntypes.Hash, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.payments[hash]
	if !ok {
		return
	}
	for _, w := range p.subs {
		w.errs <- err
	}
	p.subs = nil
}

// Resolve ends a held payment.
func (r *Router) Resolve(hash lntypes.Hash, out Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.payments[hash]; ok {
		r.finishLocked(p, out)
	}
}

// Held lists the hashes in flight, in the order they were first sent.
func (r *Router) Held() []lntypes.Hash {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []lntypes.Hash
	for _, h := range r.order {
		if r.payments[h].Status.State == lnrpc.Payment_IN_FLIGHT {
			out = append(out, h)
		}
	}
	return out
}

// Payments returns copies of every payment, in first-send order.
func (r *Router) Payments() []Payment {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Payment, 0, len(r.order))
	for _, h := range r.order {
		p := *r.payments[h]
		p.subs = nil
		out = append(out, p)
	}
	return out
}

// Forget drops a payment as if lnd had never recorded it (a crash between
// storing the attempt and lnd receiving it).
func (r *Router) Forget(hash lntypes.Hash) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.payments, hash)
	for i, h := range r.order {
		if h == hash {
			r.order = append(r.order[:i], r.order[i+1:]...)
			break
		}
	}
}

// Tracks counts the TrackPayment calls for hash so far.
func (r *Router) Tracks(hash lntypes.Hash) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tracks[hash]
}

// Arrive records a send of req as lnd's SendPaymentV2 handler does when it
// goes on with a call whose connection dropped after lnd received it (the
// caller saw an error): lnd stores the payment late and sends it, and out
// decides how it ends.
func (r *Router) Arrive(req lndclient.SendPaymentRequest, out Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	hash := *req.PaymentHash
	p, ok := r.payments[hash]
	if !ok {
		p = &Payment{}
		r.payments[hash] = p
		r.order = append(r.order, hash)
	}
	p.Req = req
	p.Sends++
	p.Status = lndclient.PaymentStatus{
		State: lnrpc.Payment_IN_FLIGHT,
		Value: lnwire.NewMSatFromSatoshis(req.Amount),
	}
	if !out.Hold {
		r.finishLocked(p, out)
	}
}
