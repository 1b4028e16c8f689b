// Package receivertest holds the receiver's test doubles, shared by the
// unit tests of its packages.
package receivertest

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"time"

	"github.com/lightningnetwork/lnd/invoices"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/record"
	"github.com/satstream/satstream/receiver/core"
	"github.com/satstream/satstream/store"
	"github.com/satstream/satstream/tlv"
	"testing"
)

// ErrUnknownInvoice is returned for a hash the fake does not hold.
var ErrUnknownInvoice = errors.New("fake lnd: unknown invoice")

// FakeLnd is an in-memory lnd with keysend hold mode (or, with AutoSettle,
// without it). It implements core.InvoiceSource.
type FakeLnd struct {
	mu       sync.Mutex
	invs     map[lntypes.Hash]*core.Invoice
	order    []lntypes.Hash
	addIdx   uint64
	setIdx   uint64
	subs     []chan *core.Invoice
	singles  map[lntypes.Hash][]chan *core.Invoice
	settled  map[lntypes.Hash]int
	canceled map[lntypes.Hash]int

	// AutoSettle makes keysends settle on arrival (no hold time).
	AutoSettle bool
}

var _ core.InvoiceSource = (*FakeLnd)(nil)

// NewFakeLnd returns an empty fake.
func NewFakeLnd() *FakeLnd {
	return &FakeLnd{
		invs:     map[lntypes.Hash]*core.Invoice{},
		singles:  map[lntypes.Hash][]chan *core.Invoice{},
		settled:  map[lntypes.Hash]int{},
		canceled: map[lntypes.Hash]int{},
	}
}

func clone(inv *core.Invoice) *core.Invoice {
	c := *inv
	return &c
}

// notify sends inv to every subscriber; the caller holds mu.
func (f *FakeLnd) notify(inv *core.Invoice, stream bool) {
	if stream {
		for _, ch := range f.subs {
			select {
			case ch <- clone(inv):
			default:
			}
		}
	}
	for _, ch := range f.singles[inv.Hash] {
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

// KeysendWithPreimage is Keysend with a chosen preimage (replays).
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
		AcceptTime: time.Now(),
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

// Subscribers counts SubscribeInvoices calls so far.
func (f *FakeLnd) Subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// State returns the invoice's state.
func (f *FakeLnd) State(hash lntypes.Hash) invoices.ContractState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.invs[hash].State
}

// Settles counts SettleInvoice calls for hash.
func (f *FakeLnd) Settles(hash lntypes.Hash) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.settled[hash]
}

// Expire cancels a held invoice as lnd does when the hold time runs out.
func (f *FakeLnd) Expire(hash lntypes.Hash) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inv := f.invs[hash]
	inv.State = invoices.ContractCanceled
	f.notify(inv, false)
}

// SubscribeInvoices implements core.InvoiceSource.
func (f *FakeLnd) SubscribeInvoices(ctx context.Context, addIndex,
	settleIndex uint64) (<-chan *core.Invoice, <-chan error, error) {

	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan *core.Invoice, 1000)
	for _, h := range f.order {
		inv := f.invs[h]
		if addIndex > 0 && inv.AddIndex > addIndex {
			ch <- clone(inv)
		}
		if settleIndex > 0 && inv.State == invoices.ContractSettled &&
			inv.SettleIndex > settleIndex {
			ch <- clone(inv)
		}
	}
	f.subs = append(f.subs, ch)
	return ch, make(chan error), nil
}

// SubscribeSingleInvoice implements core.InvoiceSource.
func (f *FakeLnd) SubscribeSingleInvoice(ctx context.Context,
	hash lntypes.Hash) (<-chan *core.Invoice, <-chan error, error) {

	f.mu.Lock()
	defer f.mu.Unlock()
	inv, ok := f.invs[hash]
	if !ok {
		return nil, nil, ErrUnknownInvoice
	}
	ch := make(chan *core.Invoice, 100)
	ch <- clone(inv)
	f.singles[hash] = append(f.singles[hash], ch)
	return ch, make(chan error), nil
}

// LookupInvoice implements core.InvoiceSource.
func (f *FakeLnd) LookupInvoice(ctx context.Context,
	hash lntypes.Hash) (*core.Invoice, error) {

	f.mu.Lock()
	defer f.mu.Unlock()
	inv, ok := f.invs[hash]
	if !ok {
		return nil, ErrUnknownInvoice
	}
	return clone(inv), nil
}

// ListPendingInvoices implements core.InvoiceSource.
func (f *FakeLnd) ListPendingInvoices(ctx context.Context) ([]*core.Invoice, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*core.Invoice
	for _, h := range f.order {
		inv := f.invs[h]
		if inv.State == invoices.ContractOpen ||
			inv.State == invoices.ContractAccepted {
			out = append(out, clone(inv))
		}
	}
	return out, nil
}

// SettleInvoice implements core.InvoiceSource.
func (f *FakeLnd) SettleInvoice(ctx context.Context, pre lntypes.Preimage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	inv, ok := f.invs[pre.Hash()]
	if !ok {
		return ErrUnknownInvoice
	}
	if inv.State != invoices.ContractAccepted {
		return errors.New("fake lnd: invoice not accepted")
	}
	f.settled[inv.Hash]++
	f.setIdx++
	inv.State = invoices.ContractSettled
	inv.SettleIndex = f.setIdx
	f.notify(inv, true)
	return nil
}

// CancelInvoice implements core.InvoiceSource.
func (f *FakeLnd) CancelInvoice(ctx context.Context, hash lntypes.Hash) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	inv, ok := f.invs[hash]
	if !ok {
		return ErrUnknownInvoice
	}
	f.canceled[hash]++
	inv.State = invoices.ContractCanceled
	f.notify(inv, false)
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
