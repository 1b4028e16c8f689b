package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/lightningnetwork/lnd/invoices"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/satstream/satstream/store"
)

// errStreamEnded means a single-invoice stream closed before a final state.
var errStreamEnded = errors.New("invoice subscription ended before a " +
	"final state")

// firstCheck is how long a follower waits for its subscription's first
// update before asking lnd directly: lnd sends nothing at all for an
// invoice it deleted.
const firstCheck = time.Second

// follower watches one keysend hash until lnd reports a final state. It
// decides the payment when lnd reports it ACCEPTED, settles or cancels it
// (again, while lnd still says ACCEPTED), records the settle, and reverses
// the credit when lnd cancels the HTLC. A failed lnd call or store step is
// logged and retried with backoff; the follower only ends at a final state
// or when Run ends.
type follower struct {
	p    *Pipeline
	hash lntypes.Hash

	// decided is set once the decision is committed; out is it.
	decided bool
	out     Outcome
	// unreported holds the invoice of a decision this follower made or
	// found committed (by a Run that ended before lnd took it) and has
	// not reported yet: it is reported when lnd took it (settle or
	// cancel done) or reached a final state, once per process (see
	// Reported).
	unreported *Invoice
}

// follow starts a follower for hash unless one is running.
func (p *Pipeline) follow(ctx context.Context, wg *sync.WaitGroup,
	hash lntypes.Hash) {

	p.followMu.Lock()
	if _, ok := p.following[hash]; ok {
		p.followMu.Unlock()
		return
	}
	p.following[hash] = struct{}{}
	p.followMu.Unlock()

	// The slot is asked for here, in the caller's order, so hashes
	// that wait for one get it in arrival order.
	slot := p.slots.enqueue()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() {
			p.followMu.Lock()
			delete(p.following, hash)
			p.followMu.Unlock()
		}()
		select {
		case <-slot:
		case <-ctx.Done():
			p.slots.abandon(slot)
			return
		}
		defer p.slots.release()
		f := &follower{p: p, hash: hash}
		f.run(ctx)
	}()
}

// fifoSem is a counting semaphore that grants slots in the order they
// were asked for. A follower holding a slot never waits for another, so
// it cannot deadlock.
type fifoSem struct {
	mu      sync.Mutex
	free    int
	waiting []chan struct{}
}

func newFifoSem(n int) *fifoSem { return &fifoSem{free: n} }

// enqueue asks for a slot; the channel closes when it is granted.
func (s *fifoSem) enqueue() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	if s.free > 0 && len(s.waiting) == 0 {
		s.free--
		close(ch)
		return ch
	}
	s.waiting = append(s.waiting, ch)
	return ch
}

// release returns a granted slot, to the longest waiter if any.
func (s *fifoSem) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.waiting) > 0 {
		close(s.waiting[0])
		s.waiting = s.waiting[1:]
		return
	}
	s.free++
}

// abandon gives up a slot asked for with enqueue, granted or not.
func (s *fifoSem) abandon(ch chan struct{}) {
	s.mu.Lock()
	for i, w := range s.waiting {
		if w == ch {
			s.waiting = append(s.waiting[:i], s.waiting[i+1:]...)
			s.mu.Unlock()
			return
		}
	}
	s.mu.Unlock()
	s.release()
}

// DefaultReportedSize bounds a Reported set (NewReported(0)).
const DefaultReportedSize = 100_000

// Reported is a bounded set of the hashes whose decision was reported
// (OnOutcome) and whose invoice has not reached a final state yet. It
// lets a follower report a decision found committed by an earlier Run
// (interrupted before lnd took it) while reporting each decision once per
// process, also for payments without a ledger entry (not satstream's).
type Reported struct {
	mu    sync.Mutex
	max   int
	set   map[lntypes.Hash]struct{}
	order []lntypes.Hash
}

// NewReported returns an empty set of at most max hashes (the oldest go
// first; DefaultReportedSize if 0).
func NewReported(max int) *Reported {
	if max <= 0 {
		max = DefaultReportedSize
	}
	return &Reported{max: max, set: map[lntypes.Hash]struct{}{}}
}

// claim adds hash and reports whether it was new.
func (r *Reported) claim(hash lntypes.Hash) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.set[hash]; ok {
		return false
	}
	r.set[hash] = struct{}{}
	r.order = append(r.order, hash)
	for len(r.set) > r.max && len(r.order) > 0 {
		delete(r.set, r.order[0])
		r.order = r.order[1:]
	}
	if len(r.order) > 2*r.max {
		// Drop hashes forgotten since; keep the order.
		kept := make([]lntypes.Hash, 0, len(r.set))
		for _, h := range r.order {
			if _, ok := r.set[h]; ok {
				kept = append(kept, h)
			}
		}
		r.order = kept
	}
	return true
}

// forget removes hash once its invoice reached a final state that was
// recorded: no follower decides it again.
func (r *Reported) forget(hash lntypes.Hash) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.set, hash)
}

// run subscribes to the invoice again and again, with backoff, until a
// final state or ctx end.
func (f *follower) run(ctx context.Context) {
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(f.p.cfg.RetryInterval),
		backoff.WithMaxInterval(f.p.cfg.SweepInterval),
		backoff.WithMaxElapsedTime(0),
	)
	for {
		done, err := f.once(ctx, bo)
		if done || ctx.Err() != nil {
			return
		}
		if errors.Is(err, store.ErrDiskFull) && f.p.cfg.SpaceErr != nil {
			// The store logs the episode; asking lnd again is
			// of no use before space returns.
			f.p.cfg.Log.Debugf("payment %v: %v; waiting for space",
				f.hash, err)
			if !f.p.waitForSpace(ctx) {
				return
			}
		}
		wait := bo.NextBackOff()
		f.p.cfg.Log.Warnf("payment %v: %v; trying again in %v", f.hash,
			err, wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// spacePoll is how often a follower refused for a full disk looks whether
// space has returned.
const spacePoll = time.Second

// waitForSpace waits while SpaceErr reports the disk full; false if ctx
// ended first.
func (p *Pipeline) waitForSpace(ctx context.Context) bool {
	for p.cfg.SpaceErr() != nil {
		t := time.NewTimer(spacePoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
	return true
}

// once follows one subscription. It reports done at a final state, and an
// error when the subscription or a step failed and must be tried again.
// Every update handled without error resets the backoff bo.
func (f *follower) once(ctx context.Context,
	bo backoff.BackOff) (bool, error) {

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	src := f.p.cfg.Source
	updates, errs, err := src.SubscribeSingleInvoice(ctx, f.hash)
	switch {
	case errors.Is(err, ErrInvoiceNotFound):
		return f.gone(ctx)
	case err != nil:
		return false, fmt.Errorf("subscribe: %w", err)
	}

	// lnd streams nothing for an invoice it no longer has, and an
	// update can be lost on the way: ask lnd directly when the stream
	// stays silent.
	check := time.NewTimer(min(firstCheck, f.p.cfg.SweepInterval))
	defer check.Stop()
	for {
		var inv *Invoice
		select {
		case <-ctx.Done():
			return false, ctx.Err()

		case err, ok := <-errs:
			if !ok {
				// lndclient closes both channels after the
				// final state; the final update may still be
				// on its way.
				errs = nil
				continue
			}
			return false, fmt.Errorf("invoice subscription: %w", err)

		case u, ok := <-updates:
			if !ok {
				return false, errStreamEnded
			}
			inv = u

		case <-check.C:
			u, err := src.LookupInvoice(ctx, f.hash)
			switch {
			case errors.Is(err, ErrInvoiceNotFound):
				return f.gone(ctx)
			case err != nil:
				return false, fmt.Errorf("look up: %w", err)
			}
			inv = u
		}
		check.Reset(f.p.cfg.SweepInterval)
		if done, err := f.handle(ctx, inv); done || err != nil {
			return done, err
		}
		bo.Reset()
	}
}

// handle acts on one state of the invoice.
func (f *follower) handle(ctx context.Context, inv *Invoice) (bool, error) {
	switch inv.State {
	case invoices.ContractAccepted:
		if !f.decided {
			out, err := f.p.decide(ctx, inv)
			if err != nil {
				return false, err
			}
			f.decided, f.out = true, out
			f.unreported = inv
		}
		err := f.p.act(ctx, inv, f.out)
		if errors.Is(err, ErrInvoiceNotFound) {
			return f.gone(ctx)
		}
		if err == nil {
			f.report()
		}
		return false, err

	case invoices.ContractSettled:
		f.report()
		err := f.p.settledHeld(ctx, inv)
		return f.final(err)

	case invoices.ContractCanceled:
		f.report()
		err := f.p.cancelled(ctx, f.hash)
		return f.final(err)
	}
	return false, nil
}

// final ends the follower once the final state is recorded (err nil):
// nothing decides the hash again, so it leaves the Reported set.
func (f *follower) final(err error) (bool, error) {
	if err != nil {
		return false, err
	}
	f.p.cfg.Reported.forget(f.hash)
	return true, nil
}

// report reports this follower's decision, unless it was reported
// already in this process.
func (f *follower) report() {
	if f.unreported != nil {
		if f.p.cfg.Reported.claim(f.hash) {
			f.p.report(f.unreported, f.out)
		}
		f.unreported = nil
	}
}

// gone handles an invoice lnd no longer has. lnd deletes only cancelled
// invoices (gc-canceled-invoices-on-the-fly, -on-startup), so it was
// cancelled.
func (f *follower) gone(ctx context.Context) (bool, error) {
	f.p.cfg.Log.Infof("lnd no longer has invoice %v; it deletes only "+
		"cancelled invoices, so the HTLC was cancelled", f.hash)
	f.report()
	return f.final(f.p.cancelled(ctx, f.hash))
}

// decide commits the decision about an ACCEPTED keysend, on the invoice's
// whole accepted amount (SettleInvoice settles every HTLC of the hash). A
// payment decided before (by a Run that ended before lnd took the
// decision) gets its recorded outcome back, as it was first decided, so it
// is reported like a new one.
func (p *Pipeline) decide(ctx context.Context, inv *Invoice) (Outcome,
	error) {

	p.crash(CrashBeforeCredit)
	in := p.incoming(inv, false)
	var (
		out   Outcome
		fresh bool
	)
	err := p.cfg.Store.Update(ctx, func(tx store.ReceiverTx) error {
		prev, err := tx.Payment(in.Hash)
		fresh = errors.Is(err, store.ErrNotFound)
		if err != nil && !fresh {
			return err
		}
		out, err = Apply(tx, in, p.cfg.Window)
		if err == nil && !fresh {
			out = recorded(out, prev)
		}
		return err
	})
	if err != nil {
		return out, fmt.Errorf("record decision: %w", err)
	}
	p.crash(CrashAfterCredit)
	if inv.HTLCs > 1 {
		p.cfg.Log.Warnf("payment %v came in %d HTLCs with one hash (the "+
			"payer paid it more than once); decided on all of them, %v",
			inv.Hash, inv.HTLCs, inv.Amount)
	}
	if !fresh {
		p.cfg.Log.Debugf("payment %v was decided before (credited %v, "+
			"reason %q); carrying that out", inv.Hash, out.Duplicate,
			out.Reason)
	}
	return out, nil
}

// recorded turns the outcome Apply gives for a payment decided before
// back into that first decision where it can tell: a credited payment lnd
// still holds ACCEPTED was credited by a Run that ended before the settle
// (lnd settles a new HTLC to a settled hash at once), so it is reported as
// the credit, not as a duplicate. A refused payment could equally be a
// payer's replay of the hash (lnd deleted the cancelled invoice), so it
// stays "previously refused". The action is Apply's.
func recorded(out Outcome, pay *store.Payment) Outcome {
	if pay.State != store.PaymentCredited || pay.SettleIndex != 0 {
		return out
	}
	return Outcome{Action: out.Action, Credited: true, SubID: pay.SubID,
		Seq: pay.Seq, Amount: pay.Amount, Seconds: pay.Seconds}
}

// act carries out a committed decision on lnd. It is repeated while lnd
// still reports the invoice ACCEPTED: settling a settled invoice and
// cancelling a cancelled one succeed.
func (p *Pipeline) act(ctx context.Context, inv *Invoice, out Outcome) error {
	switch out.Action {
	case ActionSettle:
		preimage, err := preimageOf(inv)
		if err != nil {
			p.cfg.Log.Errorf("payment %v: %v; cancelling", inv.Hash, err)
			if err := p.cfg.Source.CancelInvoice(ctx, inv.Hash); err != nil {
				return fmt.Errorf("cancel: %w", err)
			}
			return nil
		}
		if err := p.cfg.Source.SettleInvoice(ctx, preimage); err != nil {
			return fmt.Errorf("settle: %w", err)
		}
		p.crash(CrashAfterSettle)

	case ActionCancel:
		if err := p.cfg.Source.CancelInvoice(ctx, inv.Hash); err != nil {
			return fmt.Errorf("cancel: %w", err)
		}
	}
	return nil
}

// settledHeld records that lnd settled a payment a follower watched: a
// credited payment gets its settle index and leaves the held table. It does
// not move the stored settle index: only the invoice stream does, in lnd's
// settle order (a follower moving it past a settle the stream has not
// delivered yet would make a restart skip that settle). A settled invoice
// with no ledger entry (lnd settled it on its own, without hold time) is
// left to the stream, which credits it in that order. If lnd settled more
// than was credited (a payer added HTLCs with the same hash after the
// decision), the difference is reported, not kept silently.
func (p *Pipeline) settledHeld(ctx context.Context, inv *Invoice) error {
	var excess *store.Payment
	err := p.cfg.Store.Update(ctx, func(tx store.ReceiverTx) error {
		excess = nil
		pay, err := tx.Payment(store.Hash(inv.Hash))
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil
		case err != nil:
			return err
		}
		if pay.State == store.PaymentCredited {
			if pay.SettleIndex == 0 {
				// First to record the settle: the excess,
				// if any, is reported now and never again.
				if inv.Amount > pay.Amount {
					c := *pay
					excess = &c
				}
				pay.SettleIndex = inv.SettleIndex
				if pay.SettleIndex == 0 {
					// Settled, index unknown; keep it
					// non-zero (as MarkSettled does).
					pay.SettleIndex = 1
				}
				if err := tx.PutPayment(pay); err != nil {
					return err
				}
			}
		}
		return tx.ClearHeld(pay.Hash)
	})
	if err != nil {
		return fmt.Errorf("record settle: %w", err)
	}
	if excess != nil {
		p.excess(inv, excess)
	}
	return nil
}

// cancelled reverses the credit of a payment lnd cancelled before it
// settled (the hold time ran out before the settle, while we were away or
// because the decision came too late), and clears its held mark.
func (p *Pipeline) cancelled(ctx context.Context, hash lntypes.Hash) error {
	var (
		reversed bool
		out      Outcome
	)
	run := func(rev func(store.ReceiverTx, store.Hash, time.Time) (bool,
		error)) error {

		return p.cfg.Store.Update(ctx, func(tx store.ReceiverTx) error {
			var err error
			reversed, err = rev(tx, store.Hash(hash), p.cfg.Now())
			if err != nil || !reversed {
				return err
			}
			pay, err := tx.Payment(store.Hash(hash))
			if err != nil {
				return err
			}
			out = Outcome{SubID: pay.SubID, Seq: pay.Seq,
				Amount: pay.Amount, Reason: ReasonHoldExpired}
			return nil
		})
	}
	err := run(Reverse)
	if errors.Is(err, ErrCannotReverse) {
		// A credit from before schema 4: take it out as well as it
		// can be, rather than following the hash for ever.
		p.cfg.Log.Errorf("reversing %v: %v; taking out what the "+
			"subscription holds instead: check it", hash, err)
		err = run(ReverseApprox)
	}
	if err != nil {
		return fmt.Errorf("reverse: %w", err)
	}
	if reversed {
		p.cfg.Log.Warnf("lnd cancelled credited payment %v (sub %v seq "+
			"%d) before it settled; credit of %v reversed", hash,
			out.SubID, out.Seq, out.Amount)
		if p.cfg.OnReversed != nil {
			p.cfg.OnReversed(out)
		}
		if p.cfg.OnEvents != nil {
			p.cfg.OnEvents()
		}
	}
	return nil
}
