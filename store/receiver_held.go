package store

import (
	"github.com/dgraph-io/badger/v4"
)

// pRHeld indexes payments the receiver has credited but whose HTLC lnd has
// not yet reported settled. After a crash the receiver walks this small
// table to settle each such HTLC or, if lnd cancelled it meanwhile, to
// reverse the credit. The prefix value is on disk and never changes; it sits
// next to the other receiver tables in keys.go's numbering.
const pRHeld byte = 0x18 // | hash(32) -> empty

func heldKey(h Hash) []byte { return key(pRHeld, h[:]) }

// MarkHeld implements ReceiverTx.
func (t *receiverTx) MarkHeld(hash Hash) error { return t.set(heldKey(hash), nil) }

// ClearHeld implements ReceiverTx.
func (t *receiverTx) ClearHeld(hash Hash) error { return t.del(heldKey(hash)) }

// ForEachHeld implements ReceiverTx.
func (t *receiverTx) ForEachHeld(fn func(Hash) error) error {
	return t.scan([]byte{pRHeld}, nil, false, func(k []byte, _ *badger.Item) error {
		var h Hash
		copy(h[:], k[1:])
		return fn(h)
	})
}

// HeldAt implements ReceiverTx. A badger ledger belongs to one node, so no
// other node can hold a hash.
func (t *receiverTx) HeldAt(hash Hash) (bool, bool, error) {
	here, err := t.exists(heldKey(hash))
	return here, false, err
}
