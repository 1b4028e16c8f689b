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
	"github.com/lightningnetwork/lnd/lnwire"
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
	// unreported holds the invoice of a decision this follower made
	// and has not reported yet: it is reported once, when lnd took it
	// (settle or cancel done) or reached a final state.
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

	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() {
			p.followMu.Lock()
			delete(p.following, hash)
			p.followMu.Unlock()
		}()
		f := &follower{p: p, hash: hash}
		f.run(ctx)
	}()
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
		done, err := f.once(ctx)
		if done || ctx.Err() != nil {
			return
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

// once follows one subscription. It reports done at a final state, and an
// error when the subscription or a step failed and must be tried again.
func (f *follower) once(ctx context.Context) (bool, error) {
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
	}
}

// handle acts on one state of the invoice.
func (f *follower) handle(ctx context.Context, inv *Invoice) (bool, error) {
	switch inv.State {
	case invoices.ContractAccepted:
		if !f.decided {
			out, fresh, err := f.p.decide(ctx, inv)
			if err != nil {
				return false, err
			}
			f.decided, f.out = true, out
			if fresh {
				f.unreported = inv
			}
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
		return err == nil, err

	case invoices.ContractCanceled:
		f.report()
		err := f.p.cancelled(ctx, f.hash)
		return err == nil, err
	}
	return false, nil
}

// report reports this follower's decision once.
func (f *follower) report() {
	if f.unreported != nil {
		f.p.report(f.unreported, f.out)
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
	if err := f.p.cancelled(ctx, f.hash); err != nil {
		return false, err
	}
	return true, nil
}

// decide commits the decision about an ACCEPTED keysend, on the invoice's
// whole accepted amount (SettleInvoice settles every HTLC of the hash). A
// payment decided before, by this run or an earlier one, gets its recorded
// outcome back; fresh tells a new decision (to be reported) from that.
func (p *Pipeline) decide(ctx context.Context, inv *Invoice) (Outcome,
	bool, error) {

	p.crash(CrashBeforeCredit)
	in := p.incoming(inv, false)
	var (
		out   Outcome
		fresh bool
	)
	err := p.cfg.Store.Update(ctx, func(tx store.ReceiverTx) error {
		_, err := tx.Payment(in.Hash)
		fresh = errors.Is(err, store.ErrNotFound)
		if err != nil && !fresh {
			return err
		}
		out, err = Apply(tx, in, p.cfg.Window)
		return err
	})
	if err != nil {
		return out, false, fmt.Errorf("record decision: %w", err)
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
	return out, fresh, nil
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
	var (
		credited bool
		amount   lnwire.MilliSatoshi
		subID    store.SubID
		seq      uint64
	)
	err := p.cfg.Store.Update(ctx, func(tx store.ReceiverTx) error {
		credited = false
		pay, err := tx.Payment(store.Hash(inv.Hash))
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil
		case err != nil:
			return err
		}
		if pay.State == store.PaymentCredited {
			credited, amount = true, pay.Amount
			subID, seq = pay.SubID, pay.Seq
			if pay.SettleIndex == 0 {
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
	if credited && inv.Amount > amount {
		p.cfg.Log.Warnf("EXCESS: lnd settled %v for payment %v (sub %v "+
			"seq %d) of which %v was credited: the payer added HTLCs "+
			"with the same hash after the decision; %v was kept "+
			"without credit, refund it out of band", inv.Amount,
			inv.Hash, subID, seq, amount, inv.Amount-amount)
		if p.cfg.OnExcess != nil {
			p.cfg.OnExcess(inv.Hash, amount, inv.Amount)
		}
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
	err := p.cfg.Store.Update(ctx, func(tx store.ReceiverTx) error {
		var err error
		reversed, err = Reverse(tx, store.Hash(hash), p.cfg.Now())
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
