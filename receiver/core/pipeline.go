package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/lightningnetwork/lnd/invoices"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
	"github.com/satstream/satstream/store"
)

// Invoice is what the pipeline needs to know about one lnd invoice.
type Invoice struct {
	Hash      lntypes.Hash
	Preimage  *lntypes.Preimage
	State     invoices.ContractState
	IsKeysend bool
	// Amount is what the HTLCs carry (accepted or settled), in msat.
	Amount lnwire.MilliSatoshi
	// Custom are the custom records of the (first) HTLC.
	Custom      map[uint64][]byte
	AddIndex    uint64
	SettleIndex uint64
	// AcceptTime is when lnd accepted the first HTLC (zero if unknown).
	AcceptTime time.Time
	// HTLCs counts the HTLCs Amount adds up (0 if unknown).
	HTLCs int
}

// ErrInvoiceNotFound means lnd does not hold the invoice. For a hash lnd
// once held it means cancelled: lnd deletes only cancelled invoices
// (gc-canceled-invoices-on-the-fly, gc-canceled-invoices-on-startup).
var ErrInvoiceNotFound = errors.New("invoice not found")

// InvoiceSource is the narrow view of lnd the payment pipeline needs.
type InvoiceSource interface {
	// SubscribeInvoices streams add and settle events after the indices.
	SubscribeInvoices(ctx context.Context, addIndex, settleIndex uint64) (
		<-chan *Invoice, <-chan error, error)
	// SubscribeSingleInvoice streams every state of one invoice, starting
	// with the current one; the channels close at a final state.
	SubscribeSingleInvoice(ctx context.Context, hash lntypes.Hash) (
		<-chan *Invoice, <-chan error, error)
	// LookupInvoice returns one invoice's current state.
	LookupInvoice(ctx context.Context, hash lntypes.Hash) (*Invoice, error)
	// ListPendingInvoices returns every OPEN or ACCEPTED invoice.
	ListPendingInvoices(ctx context.Context) ([]*Invoice, error)
	// SettleInvoice settles a held invoice with its preimage.
	SettleInvoice(ctx context.Context, preimage lntypes.Preimage) error
	// CancelInvoice refuses a held invoice; its HTLCs fail back.
	CancelInvoice(ctx context.Context, hash lntypes.Hash) error
}

// Crash points a test build may kill the process at (see CrashHook).
const (
	CrashBeforeCredit = "before-credit"
	CrashAfterCredit  = "after-credit"
	CrashAfterSettle  = "after-settle"
)

// PipelineConfig wires a Pipeline.
type PipelineConfig struct {
	Store  store.ReceiverStore
	Source InvoiceSource
	Log    btclog.Logger
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// Window is the sequence window (DefaultSeqWindow if 0).
	Window uint64
	// OnOutcome, if set, is told about every committed decision and the
	// time from HTLC acceptance to the decision.
	OnOutcome func(Outcome, time.Duration)
	// OnReversed, if set, is told about each reversed credit.
	OnReversed func(Outcome)
	// OnEvents, if set, is called after a commit that queued events.
	OnEvents func()
	// CrashHook, if set, is called at the named crash points (tests).
	CrashHook func(point string)
	// SweepInterval is how often every held hash and pending keysend is
	// made sure to have a follower, and how often a follower asks lnd
	// about an invoice it heard nothing of (DefaultSweepInterval if 0).
	SweepInterval time.Duration
	// RetryInterval is the first wait before a follower whose lnd call
	// failed tries again; it doubles up to SweepInterval
	// (DefaultRetryInterval if 0).
	RetryInterval time.Duration
	// OnExcess, if set, is told when lnd settled more for a credited
	// payment than was credited (a payer added HTLCs to the hash after
	// the decision).
	OnExcess func(hash lntypes.Hash, credited, settled lnwire.MilliSatoshi)
}

// Defaults of PipelineConfig.
const (
	DefaultSweepInterval = 30 * time.Second
	DefaultRetryInterval = 500 * time.Millisecond
)

// Pipeline turns lnd's keysend invoices into credits and refusals, exactly
// once per payment hash, surviving crashes at any point (docs/protocol.md,
// "Exactly-once crediting").
type Pipeline struct {
	cfg PipelineConfig

	// mu serialises decisions so that sequence checks see every held
	// payment, and so that a hash is decided by one goroutine at a time.
	mu sync.Mutex

	watchMu  sync.Mutex
	watching map[lntypes.Hash]bool

	autoSettleWarned atomic.Bool
}

// NewPipeline returns a pipeline; Run starts it.
func NewPipeline(cfg PipelineConfig) *Pipeline {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Pipeline{cfg: cfg, watching: map[lntypes.Hash]bool{}}
}

// AutoSettleDetected reports whether lnd was seen settling a satstream
// keysend on its own (no --keysend-hold-time).
func (p *Pipeline) AutoSettleDetected() bool { return p.autoSettleWarned.Load() }

// Run follows lnd until ctx ends or a stream fails; it returns the error
// (nil on ctx end). It can be run again after a reconnect: all its state
// is in the store and in lnd.
func (p *Pipeline) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()

	var addIdx, settleIdx uint64
	err := p.cfg.Store.View(ctx, func(tx store.ReceiverTx) error {
		var err error
		if addIdx, err = tx.AddIndex(); err != nil {
			return err
		}
		settleIdx, err = tx.SettleIndex()
		return err
	})
	if err != nil {
		return fmt.Errorf("read stream position: %w", err)
	}

	// Subscribe first so nothing that happens during recovery is missed.
	invs, errs, err := p.cfg.Source.SubscribeInvoices(ctx, addIdx, settleIdx)
	if err != nil {
		return fmt.Errorf("subscribe to invoices: %w", err)
	}
	p.cfg.Log.Infof("following lnd invoices from add index %d, settle "+
		"index %d", addIdx, settleIdx)

	if err := p.recoverHeld(ctx); err != nil {
		return err
	}
	pending, err := p.cfg.Source.ListPendingInvoices(ctx)
	if err != nil {
		return fmt.Errorf("list pending invoices: %w", err)
	}
	for _, inv := range pending {
		if inv.IsKeysend {
			p.watch(ctx, &wg, inv.Hash)
		}
	}

	for {
		select {
		case <-ctx.Done():
			return nil

		case err := <-errs:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("invoice stream: %w", err)

		case inv, ok := <-invs:
			if !ok {
				return fmt.Errorf("invoice stream closed")
			}
			if err := p.handleStream(ctx, &wg, inv); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
	}
}

// handleStream handles one add or settle event of the invoice stream.
func (p *Pipeline) handleStream(ctx context.Context, wg *sync.WaitGroup,
	inv *Invoice) error {

	if inv.State == invoices.ContractSettled {
		return p.handleSettled(ctx, inv)
	}
	if inv.IsKeysend && (inv.State == invoices.ContractOpen ||
		inv.State == invoices.ContractAccepted) {

		p.watch(ctx, wg, inv.Hash)
	}
	if inv.AddIndex == 0 {
		return nil
	}
	return p.cfg.Store.Update(ctx, func(tx store.ReceiverTx) error {
		cur, err := tx.AddIndex()
		if err != nil || inv.AddIndex <= cur {
			return err
		}
		return tx.SetAddIndex(inv.AddIndex)
	})
}

// recoverHeld settles, records or reverses every payment credited before
// a crash whose HTLC was not yet known to be settled.
func (p *Pipeline) recoverHeld(ctx context.Context) error {
	var held []store.Hash
	err := p.cfg.Store.View(ctx, func(tx store.ReceiverTx) error {
		held = held[:0]
		return tx.ForEachHeld(func(h store.Hash) error {
			held = append(held, h)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("list held payments: %w", err)
	}
	for _, h := range held {
		inv, err := p.cfg.Source.LookupInvoice(ctx, lntypes.Hash(h))
		if err != nil {
			return fmt.Errorf("look up held payment %v: %w", h, err)
		}
		p.cfg.Log.Infof("recovering credited payment %v: lnd says %v",
			h, inv.State)
		switch inv.State {
		case invoices.ContractAccepted:
			// Left to the watcher started from the pending list,
			// which settles it as a duplicate.
		case invoices.ContractSettled:
			if err := p.handleSettled(ctx, inv); err != nil {
				return err
			}
		case invoices.ContractCanceled:
			if err := p.handleCanceled(ctx, inv.Hash); err != nil {
				return err
			}
		}
	}
	return nil
}

// watch follows one keysend invoice until it reaches a final state.
func (p *Pipeline) watch(ctx context.Context, wg *sync.WaitGroup,
	hash lntypes.Hash) {

	p.watchMu.Lock()
	if p.watching[hash] {
		p.watchMu.Unlock()
		return
	}
	p.watching[hash] = true
	p.watchMu.Unlock()

	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() {
			p.watchMu.Lock()
			delete(p.watching, hash)
			p.watchMu.Unlock()
		}()
		if err := p.follow(ctx, hash); err != nil && ctx.Err() == nil {
			p.cfg.Log.Warnf("watching invoice %v: %v (picked up again "+
				"after reconnect)", hash, err)
		}
	}()
}

// follow reads one invoice's updates and acts on ACCEPTED, SETTLED and
// CANCELED.
func (p *Pipeline) follow(ctx context.Context, hash lntypes.Hash) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	updates, errs, err := p.cfg.Source.SubscribeSingleInvoice(ctx, hash)
	if err != nil {
		return err
	}
	decided := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-errs:
			if !ok {
				return nil
			}
			return err
		case inv, ok := <-updates:
			if !ok {
				return nil
			}
			switch inv.State {
			case invoices.ContractAccepted:
				if decided {
					continue
				}
				decided = true
				if err := p.decide(ctx, inv); err != nil {
					return err
				}
			case invoices.ContractSettled:
				return p.handleSettled(ctx, inv)
			case invoices.ContractCanceled:
				return p.handleCanceled(ctx, hash)
			}
		}
	}
}

// incoming converts an invoice to the domain's view.
func (p *Pipeline) incoming(inv *Invoice, settled bool) Incoming {
	return Incoming{
		Hash:        store.Hash(inv.Hash),
		Amount:      inv.Amount,
		Custom:      inv.Custom,
		Settled:     settled,
		SettleIndex: inv.SettleIndex,
		Now:         p.cfg.Now(),
	}
}

// decide handles an ACCEPTED keysend: commit the decision, then settle or
// cancel the HTLC.
func (p *Pipeline) decide(ctx context.Context, inv *Invoice) error {
	p.mu.Lock()
	defer p.mu.Unlock()

	p.crash(CrashBeforeCredit)
	in := p.incoming(inv, false)
	var out Outcome
	err := p.cfg.Store.Update(ctx, func(tx store.ReceiverTx) error {
		var err error
		out, err = Apply(tx, in, p.cfg.Window)
		return err
	})
	if err != nil {
		return fmt.Errorf("record decision on %v: %w", inv.Hash, err)
	}
	p.crash(CrashAfterCredit)

	switch out.Action {
	case ActionSettle:
		preimage, err := preimageOf(inv)
		if err != nil {
			p.cfg.Log.Errorf("payment %v: %v; cancelling", inv.Hash, err)
			return p.cfg.Source.CancelInvoice(ctx, inv.Hash)
		}
		if err := p.cfg.Source.SettleInvoice(ctx, preimage); err != nil {
			return fmt.Errorf("settle %v: %w", inv.Hash, err)
		}
		p.crash(CrashAfterSettle)

	case ActionCancel:
		if err := p.cfg.Source.CancelInvoice(ctx, inv.Hash); err != nil {
			return fmt.Errorf("cancel %v: %w", inv.Hash, err)
		}
	}
	p.report(inv, out)
	return nil
}

// report logs and counts a committed decision.
func (p *Pipeline) report(inv *Invoice, out Outcome) {
	log := p.cfg.Log
	switch {
	case out.NotOurs:
		log.Debugf("payment %v of %v is not satstream's; left alone",
			inv.Hash, inv.Amount)
	case out.Duplicate:
		log.Infof("payment %v (sub %v seq %d) was already credited; "+
			"not credited again", inv.Hash, out.SubID, out.Seq)
	case out.Credited:
		log.Infof("credited %v (%d s) to subscription %v seq %d, "+
			"payment %v", out.Amount, out.Seconds, out.SubID,
			out.Seq, inv.Hash)
	case out.Unclaimed:
		log.Warnf("UNCLAIMED: lnd settled payment %v of %v (sub %v "+
			"seq %d) that can't be credited: %s: %s; refund it out "+
			"of band", inv.Hash, out.Amount, out.SubID, out.Seq,
			out.Reason, out.Detail)
	default:
		log.Infof("refused payment %v of %v (sub %v seq %d): %s: %s",
			inv.Hash, out.Amount, out.SubID, out.Seq, out.Reason,
			out.Detail)
	}
	if (out.Credited || out.Reason != "" || out.Cancelled) &&
		p.cfg.OnEvents != nil {
		p.cfg.OnEvents()
	}
	if p.cfg.OnOutcome != nil {
		var lat time.Duration
		if !inv.AcceptTime.IsZero() {
			lat = p.cfg.Now().Sub(inv.AcceptTime)
		}
		p.cfg.OnOutcome(out, lat)
	}
}

// handleSettled records a settled invoice: marks our credited payment
// settled, or, when lnd settled a satstream payment on its own, credits it
// (or records it unclaimed).
func (p *Pipeline) handleSettled(ctx context.Context, inv *Invoice) error {
	p.mu.Lock()
	defer p.mu.Unlock()

	var (
		out     Outcome
		decided bool
	)
	err := p.cfg.Store.Update(ctx, func(tx store.ReceiverTx) error {
		decided = false
		if !inv.IsKeysend {
			return BumpSettleIndex(tx, inv.SettleIndex)
		}
		prev, err := tx.Payment(store.Hash(inv.Hash))
		switch {
		case err == nil:
			if prev.State == store.PaymentCredited {
				return MarkSettled(tx, prev.Hash, inv.SettleIndex)
			}
			return BumpSettleIndex(tx, inv.SettleIndex)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		out, err = Apply(tx, p.incoming(inv, true), p.cfg.Window)
		if err != nil {
			return err
		}
		decided = true
		return BumpSettleIndex(tx, inv.SettleIndex)
	})
	if err != nil {
		return fmt.Errorf("record settled invoice %v: %w", inv.Hash, err)
	}
	if decided && !out.NotOurs {
		if p.autoSettleWarned.CompareAndSwap(false, true) {
			p.cfg.Log.Errorf("lnd settled satstream payment %v on "+
				"its own: it runs WITHOUT --keysend-hold-time, so "+
				"payments that can't be credited can't be refused "+
				"(they are recorded as unclaimed). Restart lnd "+
				"with --keysend-hold-time=30s.", inv.Hash)
		}
		p.report(inv, out)
	}
	return nil
}

// handleCanceled reverses the credit of a payment lnd cancelled before it
// settled (hold time ran out while we were away).
func (p *Pipeline) handleCanceled(ctx context.Context, hash lntypes.Hash) error {
	p.mu.Lock()
	defer p.mu.Unlock()

	var reversed bool
	var out Outcome
	err := p.cfg.Store.Update(ctx, func(tx store.ReceiverTx) error {
		var err error
		reversed, err = Reverse(tx, store.Hash(hash), p.cfg.Now())
		if reversed {
			pay, err := tx.Payment(store.Hash(hash))
			if err != nil {
				return err
			}
			out = Outcome{SubID: pay.SubID, Seq: pay.Seq,
				Amount: pay.Amount, Reason: ReasonHoldExpired}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("reverse %v: %w", hash, err)
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

// crash calls the test crash hook.
func (p *Pipeline) crash(point string) {
	if p.cfg.CrashHook != nil {
		p.cfg.CrashHook(point)
	}
}

// ErrNoPreimage means a keysend invoice came without its preimage record.
var ErrNoPreimage = errors.New("keysend payment without preimage")

// preimageOf returns the keysend preimage of inv.
func preimageOf(inv *Invoice) (lntypes.Preimage, error) {
	if raw, ok := inv.Custom[record.KeySendType]; ok {
		pre, err := lntypes.MakePreimage(raw)
		if err == nil && pre.Matches(inv.Hash) {
			return pre, nil
		}
	}
	if inv.Preimage != nil && inv.Preimage.Matches(inv.Hash) {
		return *inv.Preimage, nil
	}
	return lntypes.Preimage{}, ErrNoPreimage
}
