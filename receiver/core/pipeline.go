package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btclog/v2"
	"github.com/cenkalti/backoff/v4"
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
	// OnOutcome, if set, is told once about every decision, when lnd
	// took it (settle or cancel done) or reached a final state, with the
	// time from HTLC acceptance to then. A decision replayed after a
	// restart is not told again.
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
	// MaxFollowers caps the followers that run (each with an open
	// SubscribeSingleInvoice stream) at once; further hashes wait for a
	// slot in arrival order (DefaultMaxFollowers if 0).
	MaxFollowers int
	// Reported remembers which decisions were reported (OnOutcome), so
	// one shared by the pipelines of one process reports each decision
	// once across Run restarts (a fresh one if nil).
	Reported *Reported
	// SpaceErr, if set, reports whether the ledger's disk is full
	// (store.DB.SpaceErr): a follower whose step the store refused with
	// store.ErrDiskFull waits until it is not instead of asking lnd
	// again and again.
	SpaceErr func() error
}

// Defaults of PipelineConfig. The sweep interval must stay well below
// lnd's --keysend-hold-time (30 s recommended): after a restart, a payment
// accepted while the receiver was away may only be found by a sweep.
const (
	DefaultSweepInterval = 10 * time.Second
	DefaultRetryInterval = 500 * time.Millisecond
	DefaultMaxFollowers  = 500
)

// Pipeline turns lnd's keysend invoices into credits and refusals, exactly
// once per payment hash, surviving crashes at any point (docs/protocol.md,
// "Exactly-once crediting").
//
// Each keysend hash lnd holds, and each hash in the held table, has one
// follower (follower.go) that stays until lnd reports the invoice SETTLED
// or CANCELED (or no longer has it: deleted, so cancelled). Followers run
// side by side: the store serialises the decisions themselves (one
// read-write transaction at a time), so no lock is held across an lnd call
// or an fsync. The invoice stream (SubscribeInvoices) is read by Run
// alone; it starts followers and is the only thing that moves the stored
// settle index, so the index only advances in lnd's settle order.
type Pipeline struct {
	cfg PipelineConfig

	// followMu guards following: the hashes that have a follower.
	followMu  sync.Mutex
	following map[lntypes.Hash]struct{}
	// slots caps the running followers.
	slots *fifoSem

	autoSettleWarned atomic.Bool
	// addIndexRefused and settleRefused make a disk-full episode log
	// once in the stream's handling.
	addIndexRefused atomic.Bool
	settleRefused   atomic.Bool
}

// diskFullRetry bounds the wait before a settle record the store refused
// for a full disk is tried again.
const diskFullRetry = 2 * time.Second

// NewPipeline returns a pipeline; Run starts it.
func NewPipeline(cfg PipelineConfig) *Pipeline {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = DefaultSweepInterval
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.RetryInterval > cfg.SweepInterval {
		cfg.RetryInterval = cfg.SweepInterval
	}
	if cfg.MaxFollowers <= 0 {
		cfg.MaxFollowers = DefaultMaxFollowers
	}
	if cfg.Reported == nil {
		cfg.Reported = NewReported(0)
	}
	return &Pipeline{cfg: cfg, following: map[lntypes.Hash]struct{}{},
		slots: newFifoSem(cfg.MaxFollowers)}
}

// AutoSettleDetected reports whether lnd was seen settling a satstream
// keysend on its own (no --keysend-hold-time).
func (p *Pipeline) AutoSettleDetected() bool { return p.autoSettleWarned.Load() }

// Run follows lnd until ctx ends or the invoice stream fails; it returns
// the stream's error (nil on ctx end). One hash's trouble never ends Run:
// its follower logs it and tries again. Run can be called again after a
// reconnect: all its state is in the store and in lnd.
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
	switch {
	case err != nil && ctx.Err() != nil:
		// Stopped before it began: not an error, as everywhere else.
		return nil
	case err != nil:
		return fmt.Errorf("read stream position: %w", err)
	}

	// Subscribe first so nothing that happens during recovery is missed.
	invs, errs, err := p.cfg.Source.SubscribeInvoices(ctx, addIdx, settleIdx)
	if err != nil {
		return fmt.Errorf("subscribe to invoices: %w", err)
	}
	p.cfg.Log.Infof("following lnd invoices from add index %d, settle "+
		"index %d", addIdx, settleIdx)

	// Recovery is a sweep: every held hash and every pending keysend
	// gets a follower, which acts on what lnd says now. A failed sweep
	// is tried again soon, with backoff, not a whole interval later: a
	// payment accepted while we were away may have no other way in.
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.cfg.RetryInterval),
		backoff.WithMaxInterval(p.cfg.SweepInterval),
		backoff.WithMaxElapsedTime(0),
	)
	nextSweep := func() time.Duration {
		if p.sweep(ctx, &wg) {
			bo.Reset()
			return p.cfg.SweepInterval
		}
		return bo.NextBackOff()
	}
	timer := time.NewTimer(nextSweep())
	defer timer.Stop()

	// The stream's events are recorded beside this loop, in the
	// stream's order, so reading the next payment's add event (and
	// starting its follower) never waits for the fsync of an earlier
	// event's record.
	rec := newStreamRecorder()
	wg.Add(1)
	go func() {
		defer wg.Done()
		rec.run(ctx, p)
	}()

	for {
		select {
		case <-ctx.Done():
			return nil

		case err := <-rec.errc:
			if ctx.Err() != nil {
				return nil
			}
			return err

		case <-timer.C:
			timer.Reset(nextSweep())

		case err, ok := <-errs:
			if ctx.Err() != nil {
				return nil
			}
			if !ok {
				return errors.New("invoice stream closed")
			}
			return fmt.Errorf("invoice stream: %w", err)

		case inv, ok := <-invs:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("invoice stream closed")
			}
			batch, closed := drainStream(invs, inv)
			p.handleStream(ctx, &wg, batch)
			rec.add(ctx, batch)
			if closed {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("invoice stream closed")
			}
		}
	}
}

// sweep makes sure every hash in the held table and every pending keysend
// invoice has a follower (or waits for a follower slot). It reports
// whether it got through; what failed is logged and tried again soon.
func (p *Pipeline) sweep(ctx context.Context, wg *sync.WaitGroup) bool {
	var held []store.Hash
	err := p.cfg.Store.View(ctx, func(tx store.ReceiverTx) error {
		held = held[:0]
		return tx.ForEachHeld(func(h store.Hash) error {
			held = append(held, h)
			return nil
		})
	})
	ok := err == nil
	if err != nil && ctx.Err() == nil {
		p.cfg.Log.Warnf("listing held payments: %v; trying again soon",
			err)
	}
	for _, h := range held {
		p.follow(ctx, wg, lntypes.Hash(h))
	}

	pending, err := p.cfg.Source.ListPendingInvoices(ctx)
	if err != nil {
		if ctx.Err() == nil {
			p.cfg.Log.Warnf("listing lnd's pending invoices: %v; "+
				"trying again soon", err)
		}
		return false
	}
	for _, inv := range pending {
		if inv.IsKeysend {
			p.follow(ctx, wg, inv.Hash)
		}
	}
	return ok
}

// maxStreamBatch bounds the invoice stream events recorded in one step.
const maxStreamBatch = 256

// drainStream returns first and the events already waiting behind it (up
// to maxStreamBatch), and whether the stream closed.
func drainStream(invs <-chan *Invoice, first *Invoice) ([]*Invoice, bool) {
	batch := []*Invoice{first}
	for len(batch) < maxStreamBatch {
		select {
		case inv, ok := <-invs:
			if !ok {
				return batch, true
			}
			batch = append(batch, inv)
		default:
			return batch, false
		}
	}
	return batch, false
}

// handleStream starts the followers of the add events of batch; the
// stream recorder records the batch after.
func (p *Pipeline) handleStream(ctx context.Context, wg *sync.WaitGroup,
	batch []*Invoice) {

	for _, inv := range batch {
		if inv.State != invoices.ContractSettled && inv.IsKeysend &&
			(inv.State == invoices.ContractOpen ||
				inv.State == invoices.ContractAccepted) {

			p.follow(ctx, wg, inv.Hash)
		}
	}
}

// streamRecorder records the invoice stream's add and settle events in the
// stream's order, in steps of everything that queued up while the last one
// was being written (one fsync for many events), beside the loop that
// reads the stream. Recorded in the loop itself, each step's fsync held
// back the next add event, and with it the next payment's follower,
// decision and settle (issue 13). Order is kept, so the stored settle index
// still only advances in lnd's settle order; events not yet recorded when
// Run ends are replayed by lnd after a restart (the stored indices have
// not passed them).
type streamRecorder struct {
	mu      sync.Mutex
	pending []*Invoice
	kick    chan struct{}
	// taken is signalled when take made room in pending.
	taken chan struct{}
	// done is closed when run returns.
	done chan struct{}
	// errc gets the first step that failed; the recorder stops then.
	errc chan error
}

// maxStreamPending bounds the events waiting for their record: past it,
// add (and so the loop reading lnd's stream) waits, as it did when it
// recorded each batch itself, so a hanging fsync or a full disk holds
// lnd's stream back instead of growing memory without bound.
const maxStreamPending = 4 * maxStreamBatch

func newStreamRecorder() *streamRecorder {
	return &streamRecorder{kick: make(chan struct{}, 1),
		taken: make(chan struct{}, 1), done: make(chan struct{}),
		errc: make(chan error, 1)}
}

// add queues batch behind the events queued before it, first waiting
// while maxStreamPending events wait already (until ctx ends or the
// recorder stopped: then batch is dropped, and replayed by lnd after a
// restart, as the stored indices have not passed it).
func (r *streamRecorder) add(ctx context.Context, batch []*Invoice) {
	for {
		r.mu.Lock()
		if len(r.pending) < maxStreamPending {
			r.pending = append(r.pending, batch...)
			r.mu.Unlock()
			break
		}
		r.mu.Unlock()
		select {
		case <-r.taken:
		case <-r.done:
			return
		case <-ctx.Done():
			return
		}
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// take returns up to maxStreamBatch of the oldest queued events.
func (r *streamRecorder) take() []*Invoice {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := min(len(r.pending), maxStreamBatch)
	batch := r.pending[:n:n]
	r.pending = r.pending[n:]
	if len(r.pending) == 0 {
		r.pending = nil
	}
	select {
	case r.taken <- struct{}{}:
	default:
	}
	return batch
}

// run records queued events until ctx ends or a step fails.
func (r *streamRecorder) run(ctx context.Context, p *Pipeline) {
	defer close(r.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
		for batch := r.take(); len(batch) > 0; batch = r.take() {
			if err := p.recordStream(ctx, batch); err != nil {
				r.errc <- err
				return
			}
		}
	}
}

// recordStream records batch in one step. A batch badger finds too big for
// one transaction (a long replay on a small memtable) is split in halves,
// recorded in order: a refused step writes nothing. A step refused for a
// full disk is tried again here while the batch holds a settle (the settle
// index must not skip it; the followers carry on meanwhile), and skipped
// when it would only move the add index, which merely shortens the replay
// after a restart (sweeps find every pending keysend).
func (p *Pipeline) recordStream(ctx context.Context, batch []*Invoice) error {
	wait := p.cfg.RetryInterval
	for {
		err := p.recordBatch(ctx, batch)
		switch {
		case err == nil:
			p.addIndexRefused.Store(false)
			if p.settleRefused.Swap(false) {
				p.cfg.Log.Infof("recorded %d invoice stream "+
					"event(s) after the ledger disk had space "+
					"again", len(batch))
			}
			return nil

		case errors.Is(err, store.ErrTooBig) && len(batch) > 1:
			half := len(batch) / 2
			if err := p.recordStream(ctx, batch[:half]); err != nil {
				return err
			}
			return p.recordStream(ctx, batch[half:])

		case !errors.Is(err, store.ErrDiskFull):
			return err
		}

		if !slices.ContainsFunc(batch, func(inv *Invoice) bool {
			return inv.State == invoices.ContractSettled
		}) {
			if p.addIndexRefused.CompareAndSwap(false, true) {
				p.cfg.Log.Warnf("not moving the stored add index "+
					"while the ledger disk is full (%v); a "+
					"restart replays more of lnd's invoice "+
					"stream", err)
			}
			return nil
		}
		if p.settleRefused.CompareAndSwap(false, true) {
			p.cfg.Log.Warnf("cannot record settled invoices while the "+
				"ledger disk is full (%v); trying again until "+
				"space returns", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, diskFullRetry)
	}
}

// recordBatch records the add and settle events of batch in one store
// step, then reports each settle's outcome.
func (p *Pipeline) recordBatch(ctx context.Context, batch []*Invoice) error {
	results := make([]settledResult, len(batch))
	var failed *Invoice
	err := p.cfg.Store.Update(ctx, func(tx store.ReceiverTx) error {
		var addIdx uint64
		failed = nil
		for i, inv := range batch {
			results[i] = settledResult{}
			if inv.State != invoices.ContractSettled {
				addIdx = max(addIdx, inv.AddIndex)
				continue
			}
			r, err := p.recordSettled(tx, inv)
			if err != nil {
				failed = inv
				return err
			}
			results[i] = r
		}
		if addIdx == 0 {
			return nil
		}
		cur, err := tx.AddIndex()
		if err != nil || addIdx <= cur {
			return err
		}
		return tx.SetAddIndex(addIdx)
	})
	switch {
	case err != nil && failed != nil:
		return fmt.Errorf("record settled invoice %v: %w", failed.Hash,
			err)
	case err != nil:
		return err
	}
	for i, inv := range batch {
		if inv.State == invoices.ContractSettled {
			p.afterSettled(inv, results[i])
		}
	}
	return nil
}

// settledResult is what recording one settle event found.
type settledResult struct {
	out       Outcome
	decided   bool
	overruled bool
	excess    *store.Payment
}

// recordSettled records a settle event of the invoice stream in tx and
// moves the stored settle index to it: marks our credited payment settled,
// or, when lnd settled a satstream payment on its own, credits it (or
// records it unclaimed). Only the stream calls it, so the index advances in
// lnd's settle order and a restart resumes before every settle not yet
// recorded.
func (p *Pipeline) recordSettled(tx store.ReceiverTx, inv *Invoice) (
	settledResult, error) {

	var r settledResult
	if !inv.IsKeysend {
		return r, BumpSettleIndex(tx, inv.SettleIndex)
	}
	prev, err := tx.Payment(store.Hash(inv.Hash))
	switch {
	case err == nil:
		switch prev.State {
		case store.PaymentCredited:
			if prev.SettleIndex == 0 && inv.Amount > prev.Amount {
				r.excess = prev
			}
			return r, MarkSettled(tx, prev.Hash, inv.SettleIndex)

		case store.PaymentRefused:
			r.out, err = settledRefused(tx, prev, inv)
			if err != nil {
				return r, err
			}
			r.overruled = true
		}
		return r, BumpSettleIndex(tx, inv.SettleIndex)
	case !errors.Is(err, store.ErrNotFound):
		return r, err
	}
	r.out, err = Apply(tx, p.incoming(inv, true), p.cfg.Window)
	if err != nil {
		return r, err
	}
	r.decided = true
	return r, BumpSettleIndex(tx, inv.SettleIndex)
}

// afterSettled reports what recordSettled committed.
func (p *Pipeline) afterSettled(inv *Invoice, r settledResult) {
	if r.excess != nil {
		p.excess(inv, r.excess)
	}
	if r.overruled {
		p.cfg.Log.Warnf("lnd settled payment %v that the ledger had "+
			"refused; recorded as unclaimed", inv.Hash)
		p.report(inv, r.out)
		return
	}
	if r.decided && !r.out.NotOurs {
		if p.autoSettleWarned.CompareAndSwap(false, true) {
			p.cfg.Log.Errorf("lnd settled satstream payment %v on "+
				"its own: it runs WITHOUT --keysend-hold-time, so "+
				"payments that can't be credited can't be refused "+
				"(they are recorded as unclaimed). Restart lnd "+
				"with --keysend-hold-time=30s.", inv.Hash)
		}
		p.report(inv, r.out)
	}
}

// settledRefused records, in tx, that lnd settled a payment the ledger
// refused (lnd settled it on its own, or settled despite our cancel): the
// money is kept, so it becomes unclaimed, with its settle index, and is
// never left refused and uncounted.
func settledRefused(tx store.ReceiverTx, pay *store.Payment,
	inv *Invoice) (Outcome, error) {

	_, detail, _ := strings.Cut(pay.Reason, ": ")
	pay.State = store.PaymentUnclaimed
	pay.Amount = inv.Amount
	pay.SettleIndex = inv.SettleIndex
	if pay.SettleIndex == 0 {
		// Settled, index unknown; keep it non-zero (as MarkSettled).
		pay.SettleIndex = 1
	}
	if err := tx.PutPayment(pay); err != nil {
		return Outcome{}, err
	}
	if err := tx.ClearHeld(pay.Hash); err != nil {
		return Outcome{}, err
	}
	return Outcome{Action: ActionNone, Unclaimed: true,
		Reason: reasonCode(pay.Reason),
		Detail: redact(detail, pay.SubID), SubID: pay.SubID,
		Seq: pay.Seq, Amount: inv.Amount}, nil
}

// excess reports that lnd settled more for the credited payment pay than
// was credited (a payer added HTLCs with the same hash after the
// decision). It is called once, by whoever first records the settle.
func (p *Pipeline) excess(inv *Invoice, pay *store.Payment) {
	p.cfg.Log.Warnf("EXCESS: lnd settled %v for payment %v (sub %v seq "+
		"%d) of which %v was credited: the payer added HTLCs with the "+
		"same hash after the decision; %v was kept without credit, "+
		"refund it out of band", inv.Amount, inv.Hash, pay.SubID,
		pay.Seq, pay.Amount, inv.Amount-pay.Amount)
	if p.cfg.OnExcess != nil {
		p.cfg.OnExcess(inv.Hash, pay.Amount, inv.Amount)
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

// report logs and counts a committed decision; it is called once per
// decision.
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
