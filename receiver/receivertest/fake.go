// Package receivertest holds the receiver's test doubles, shared by the
// unit tests of its packages.
package receivertest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/invoices"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
	"github.com/satstream/satstream/receiver/core"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
)

// ErrUnknownInvoice is returned for a hash the fake does not hold (never
// had, or deleted as lnd's gc-canceled-invoices options do). It wraps
// core.ErrInvoiceNotFound, as the lnd adapter's errors do.
var ErrUnknownInvoice = fmt.Errorf("fake lnd: %w", core.ErrInvoiceNotFound)

// Errors the fake returns where lnd refuses a settle or cancel.
var (
	ErrAlreadyCanceled = errors.New("fake lnd: invoice already canceled")
	ErrAlreadySettled  = errors.New("fake lnd: invoice already settled")
	ErrStillOpen       = errors.New("fake lnd: invoice still open")
)

// single is one SubscribeSingleInvoice stream. Like lndclient, it delivers
// updates in order on an unbuffered channel and ends after a final state
// by closing both channels (with ErrsCloseFirst, the error channel before
// the final update can be read).
type single struct {
	hash  lntypes.Hash
	queue []*core.Invoice
	wake  chan struct{}
}

// FakeLnd is an in-memory lnd with keysend hold mode (or, with AutoSettle,
// without it). It implements core.InvoiceSource.
type FakeLnd struct {
	mu       sync.Mutex
	invs     map[lntypes.Hash]*core.Invoice
	order    []lntypes.Hash
	addIdx   uint64
	setIdx   uint64
	subs     []chan *core.Invoice
	singles  map[lntypes.Hash]map[*single]struct{}
	opened   map[lntypes.Hash]int
	gates    map[lntypes.Hash]chan struct{}
	settled  map[lntypes.Hash]int
	canceled map[lntypes.Hash]int
	// openSingles counts the open single-invoice streams of every
	// hash; maxSingles is the most ever open at once.
	openSingles, maxSingles int

	// holdSettles queues settle events for the invoice stream instead of
	// delivering them (see HoldSettleEvents).
	holdSettles bool
	heldEvents  []*core.Invoice

	settleHook   func(lntypes.Hash) error
	afterSettle  func(lntypes.Hash) error
	readHook     func(lntypes.Hash)
	listFailures int

	// AutoSettle makes keysends settle on arrival (no hold time). Set it
	// before use.
	AutoSettle bool

	// GCCanceled deletes invoices as soon as they are cancelled, as lnd
	// does with --gc-canceled-invoices-on-the-fly. Set it before use.
	GCCanceled bool

	// ErrsCloseFirst makes a single-invoice stream close its error
	// channel before its final update can be read: the worst order a
	// consumer can see through the lnd adapter's relay. Set it before
	// use.
	ErrsCloseFirst bool
}

var _ core.InvoiceSource = (*FakeLnd)(nil)

// NewFakeLnd returns an empty fake.
func NewFakeLnd() *FakeLnd {
	return &FakeLnd{
		invs:     map[lntypes.Hash]*core.Invoice{},
		singles:  map[lntypes.Hash]map[*single]struct{}{},
		opened:   map[lntypes.Hash]int{},
		gates:    map[lntypes.Hash]chan struct{}{},
		settled:  map[lntypes.Hash]int{},
		canceled: map[lntypes.Hash]int{},
	}
}

func clone(inv *core.Invoice) *core.Invoice {
	c := *inv
	return &c
}

// final reports whether lnd sends no more updates after state s.
func final(s invoices.ContractState) bool {
	return s == invoices.ContractSettled || s == invoices.ContractCanceled
}

// notify sends inv to the invoice stream (add and settle events only, as
// lnd's SubscribeInvoices) and to every single-invoice subscriber of its
// hash; the caller holds mu.
func (f *FakeLnd) notify(inv *core.Invoice, stream bool) {
	if stream {
		if f.holdSettles && inv.State == invoices.ContractSettled {
			f.heldEvents = append(f.heldEvents, clone(inv))
		} else {
			f.toStream(inv)
		}
	}
	for s := range f.singles[inv.Hash] {
		s.queue = append(s.queue, clone(inv))
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// toStream delivers one invoice stream event; the caller holds mu.
func (f *FakeLnd) toStream(inv *core.Invoice) {
	for _, ch := range f.subs {
		select {
		case ch <- clone(inv):
		default:
		}
	}
}

// Keysend delivers a keysend HTLC of amt with custom records and returns
// its hash. In hold mode it becomes ACCEPTED.
func (f *FakeLnd) Keysend(amt lnwire.MilliSatoshi,
	custom map[uint64][]byte) lntypes.Hash {

	var pre lntypes.Preimage
	_, _ = rand.Read(pre[:])
	return f.KeysendWithPreimage(pre, amt, custom)
}

// KeysendWithPreimage is Keysend with a chosen preimage (replays, or a
// hash a test must know before the pipeline sees it).
func (f *FakeLnd) KeysendWithPreimage(pre lntypes.Preimage,
	amt lnwire.MilliSatoshi, custom map[uint64][]byte) lntypes.Hash {

	recs := map[uint64][]byte{record.KeySendType: pre[:]}
	for k, v := range custom {
		recs[k] = v
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	hash := pre.Hash()
	if old, ok := f.invs[hash]; ok && old.State == invoices.ContractSettled {
		// lnd accepts a new HTLC to a settled hash again and settles
		// it; be hostile and report the settle once more.
		f.notify(old, true)
		return hash
	}
	f.addIdx++
	inv := &core.Invoice{
		Hash: hash, State: invoices.ContractOpen, IsKeysend: true,
		Amount: amt, Custom: recs, AddIndex: f.addIdx,
		AcceptTime: time.Now(), HTLCs: 1,
	}
	f.invs[hash] = inv
	f.order = append(f.order, hash)
	f.notify(inv, true)
	if f.AutoSettle {
		f.setIdx++
		inv.State = invoices.ContractSettled
		inv.SettleIndex = f.setIdx
		f.notify(inv, true)
		return hash
	}
	inv.State = invoices.ContractAccepted
	f.notify(inv, false)
	return hash
}

// AddHTLC adds another HTLC of amt to the keysend invoice hash, as lnd does
// for a payer that pays one hash twice: while ACCEPTED the HTLC joins the
// held set (SettleInvoice settles it too), once SETTLED lnd settles it at
// once. Neither changes the invoice's state, so lnd sends no update.
func (f *FakeLnd) AddHTLC(hash lntypes.Hash, amt lnwire.MilliSatoshi) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inv := f.invs[hash]
	if inv.State == invoices.ContractAccepted ||
		inv.State == invoices.ContractSettled {

		inv.Amount += amt
		inv.HTLCs++
	}
}

// Subscribers counts SubscribeInvoices calls so far.
func (f *FakeLnd) Subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// SingleSubscribers counts the open SubscribeSingleInvoice streams of hash
// (ended by a final state or by the subscriber's context).
func (f *FakeLnd) SingleSubscribers(hash lntypes.Hash) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.singles[hash])
}

// SingleSubscribes counts SubscribeSingleInvoice calls for hash so far.
func (f *FakeLnd) SingleSubscribes(hash lntypes.Hash) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.opened[hash]
}

// State returns the invoice's state (ContractCanceled once deleted).
func (f *FakeLnd) State(hash lntypes.Hash) invoices.ContractState {
	f.mu.Lock()
	defer f.mu.Unlock()
	inv, ok := f.invs[hash]
	if !ok {
		return invoices.ContractCanceled
	}
	return inv.State
}

// Exists reports whether lnd still has the invoice.
func (f *FakeLnd) Exists(hash lntypes.Hash) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.invs[hash]
	return ok
}

// Settles counts SettleInvoice calls for hash that settled it.
func (f *FakeLnd) Settles(hash lntypes.Hash) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.settled[hash]
}

// Expire cancels a held invoice as lnd does when the hold time runs out
// (and deletes it with GCCanceled).
func (f *FakeLnd) Expire(hash lntypes.Hash) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancel(f.invs[hash])
}

// cancel moves inv to CANCELED; the caller holds mu.
func (f *FakeLnd) cancel(inv *core.Invoice) {
	inv.State = invoices.ContractCanceled
	f.notify(inv, false)
	if f.GCCanceled {
		delete(f.invs, inv.Hash)
	}
}

// Delete removes a cancelled invoice, as lnd's gc-canceled-invoices
// options do.
func (f *FakeLnd) Delete(hash lntypes.Hash) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if inv, ok := f.invs[hash]; ok && inv.State == invoices.ContractCanceled {
		delete(f.invs, hash)
	}
}

// HoldSettleEvents makes the invoice stream queue settle events (add
// events still flow) until ReleaseSettleEvents, as a busy lnd or a slow
// stream consumer can make them arrive after single-invoice updates.
func (f *FakeLnd) HoldSettleEvents() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.holdSettles = true
}

// ReleaseSettleEvents delivers the queued settle events in order and
// stops queueing.
func (f *FakeLnd) ReleaseSettleEvents() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.holdSettles = false
	for _, inv := range f.heldEvents {
		f.toStream(inv)
	}
	f.heldEvents = nil
}

// BlockSubscribe makes SubscribeSingleInvoice for hash wait until release
// is called (or the caller's context ends).
func (f *FakeLnd) BlockSubscribe(hash lntypes.Hash) (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	gate := make(chan struct{})
	f.gates[hash] = gate
	var once sync.Once
	return func() { once.Do(func() { close(gate) }) }
}

// SetSettleHook makes SettleInvoice call hook first, outside the fake's
// lock; a non-nil error is returned instead of settling. The hook may
// block (a slow lnd) or change the fake (an expiry racing the settle).
func (f *FakeLnd) SetSettleHook(hook func(lntypes.Hash) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.settleHook = hook
}

// SetAfterSettleHook makes SettleInvoice call hook after it settled
// (outside the fake's lock) and return its error: lnd settled but the RPC
// failed or timed out on the way back.
func (f *FakeLnd) SetAfterSettleHook(hook func(lntypes.Hash) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.afterSettle = hook
}

// MaxSingleStreams is the most SubscribeSingleInvoice streams that were
// open at once, over every hash.
func (f *FakeLnd) MaxSingleStreams() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxSingles
}

// SetReadHook makes LookupInvoice and SubscribeSingleInvoice call hook
// after they read the invoice, outside the fake's lock: a test can change
// lnd right after the receiver looked (a hold expiring meanwhile).
func (f *FakeLnd) SetReadHook(hook func(lntypes.Hash)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.readHook = hook
}

// FailListPending makes the next n ListPendingInvoices calls fail.
func (f *FakeLnd) FailListPending(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listFailures = n
}

// SubscribeInvoices implements core.InvoiceSource: the backlog of add
// events after addIndex, then of settle events after settleIndex in settle
// order (none for a zero index), then live events.
func (f *FakeLnd) SubscribeInvoices(ctx context.Context, addIndex,
	settleIndex uint64) (<-chan *core.Invoice, <-chan error, error) {

	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan *core.Invoice, 1000)
	var settled []*core.Invoice
	for _, h := range f.order {
		inv, ok := f.invs[h]
		if !ok {
			continue
		}
		if addIndex > 0 && inv.AddIndex > addIndex {
			ch <- clone(inv)
		}
		if settleIndex > 0 && inv.State == invoices.ContractSettled &&
			inv.SettleIndex > settleIndex {
			settled = append(settled, inv)
		}
	}
	sort.Slice(settled, func(i, j int) bool {
		return settled[i].SettleIndex < settled[j].SettleIndex
	})
	for _, inv := range settled {
		ch <- clone(inv)
	}
	f.subs = append(f.subs, ch)
	return ch, make(chan error), nil
}

// SubscribeSingleInvoice implements core.InvoiceSource. As lnd, it starts
// with the invoice's current state and, for a hash it does not hold,
// sends nothing (lnd waits for an invoice that may yet be added).
func (f *FakeLnd) SubscribeSingleInvoice(ctx context.Context,
	hash lntypes.Hash) (<-chan *core.Invoice, <-chan error, error) {

	f.mu.Lock()
	gate := f.gates[hash]
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}

	f.mu.Lock()
	f.opened[hash]++
	s := &single{hash: hash, wake: make(chan struct{}, 1)}
	if inv, ok := f.invs[hash]; ok {
		s.queue = append(s.queue, clone(inv))
	}
	if f.singles[hash] == nil {
		f.singles[hash] = map[*single]struct{}{}
	}
	f.singles[hash][s] = struct{}{}
	f.openSingles++
	f.maxSingles = max(f.maxSingles, f.openSingles)
	updates := make(chan *core.Invoice)
	errs := make(chan error)
	go f.deliver(ctx, s, updates, errs)
	hook := f.readHook
	f.mu.Unlock()
	if hook != nil {
		hook(hash)
	}
	return updates, errs, nil
}

// deliver feeds one single-invoice stream until a final state or ctx end.
func (f *FakeLnd) deliver(ctx context.Context, s *single,
	updates chan<- *core.Invoice, errs chan error) {

	defer func() {
		f.mu.Lock()
		delete(f.singles[s.hash], s)
		f.openSingles--
		f.mu.Unlock()
	}()
	for {
		f.mu.Lock()
		var next *core.Invoice
		if len(s.queue) > 0 {
			next, s.queue = s.queue[0], s.queue[1:]
		}
		f.mu.Unlock()
		if next == nil {
			select {
			case <-s.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		last := final(next.State)
		if last && f.ErrsCloseFirst {
			close(errs)
		}
		select {
		case updates <- next:
		case <-ctx.Done():
			return
		}
		if last {
			close(updates)
			if !f.ErrsCloseFirst {
				close(errs)
			}
			return
		}
	}
}

// LookupInvoice implements core.InvoiceSource.
func (f *FakeLnd) LookupInvoice(ctx context.Context,
	hash lntypes.Hash) (*core.Invoice, error) {

	f.mu.Lock()
	inv, ok := f.invs[hash]
	if ok {
		inv = clone(inv)
	}
	hook := f.readHook
	f.mu.Unlock()
	if hook != nil {
		hook(hash)
	}
	if !ok {
		return nil, ErrUnknownInvoice
	}
	return inv, nil
}

// ListPendingInvoices implements core.InvoiceSource.
func (f *FakeLnd) ListPendingInvoices(ctx context.Context) ([]*core.Invoice, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.listFailures > 0 {
		f.listFailures--
		return nil, errors.New("fake lnd: list invoices failed")
	}
	var out []*core.Invoice
	for _, h := range f.order {
		inv, ok := f.invs[h]
		if ok && (inv.State == invoices.ContractOpen ||
			inv.State == invoices.ContractAccepted) {
			out = append(out, clone(inv))
		}
	}
	return out, nil
}

// SettleInvoice implements core.InvoiceSource with lnd's answers: settling
// a settled invoice succeeds, a cancelled or open one fails.
// A call whose context ended fails, as an RPC does.
func (f *FakeLnd) SettleInvoice(ctx context.Context, pre lntypes.Preimage) error {
	f.mu.Lock()
	hook := f.settleHook
	f.mu.Unlock()
	if hook != nil {
		if err := hook(pre.Hash()); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.settle(pre); err != nil {
		return err
	}
	f.mu.Lock()
	after := f.afterSettle
	f.mu.Unlock()
	if after != nil {
		return after(pre.Hash())
	}
	return nil
}

// settle settles the invoice of pre if it is ACCEPTED.
func (f *FakeLnd) settle(pre lntypes.Preimage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	inv, ok := f.invs[pre.Hash()]
	if !ok {
		return ErrUnknownInvoice
	}
	switch inv.State {
	case invoices.ContractSettled:
		return nil
	case invoices.ContractCanceled:
		return ErrAlreadyCanceled
	case invoices.ContractOpen:
		return ErrStillOpen
	}
	f.settled[inv.Hash]++
	f.setIdx++
	inv.State = invoices.ContractSettled
	inv.SettleIndex = f.setIdx
	f.notify(inv, true)
	return nil
}

// CancelInvoice implements core.InvoiceSource with lnd's answers:
// cancelling a cancelled invoice succeeds, a settled one fails. A call
// whose context ended fails, as an RPC does.
func (f *FakeLnd) CancelInvoice(ctx context.Context, hash lntypes.Hash) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	inv, ok := f.invs[hash]
	if !ok {
		return ErrUnknownInvoice
	}
	switch inv.State {
	case invoices.ContractCanceled:
		return nil
	case invoices.ContractSettled:
		return ErrAlreadySettled
	}
	f.canceled[hash]++
	f.cancel(inv)
	return nil
}

// OpenStore opens a fresh ledger in a test directory, closed at cleanup.
func OpenStore(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), t.TempDir(),
		store.DefaultOptions())
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// Records encodes satstream records for tests.
func Records(t testing.TB, sub [16]byte, seq uint64, plan *[16]byte,
	cancel bool) map[uint64][]byte {

	t.Helper()
	r := tlv.Records{Version: 1, SubscriptionID: sub, Sequence: seq,
		Cancel: cancel}
	if plan != nil {
		pid := tlv.PlanID(*plan)
		r.PlanID = &pid
	}
	m, err := r.Encode()
	if err != nil {
		t.Fatalf("encode records: %v", err)
	}
	return m
}
