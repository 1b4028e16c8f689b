package store

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"
)

// keyNodeBinding holds the lnd node and network a ledger belongs to,
// written on the first start that reaches lnd. It is optional: a ledger
// without it (new, or written before the binding existed) is unbound and
// binds at its next start, so adding it needs no migration and an older
// satstream that ignores it loses nothing.
var keyNodeBinding = []byte{pMeta, 0x30}

// ErrWrongNode is returned by Bind when the ledger belongs to another lnd
// node or network: its payment indices, subscriptions and held payments
// mean nothing on another node, and following that node's invoices from
// the stored indices would skip its payments.
var ErrWrongNode = errors.New("ledger belongs to another node")

// Binding names the lnd node and Bitcoin network a ledger belongs to.
type Binding struct {
	// Node is lnd's identity public key, 33 bytes compressed.
	Node [33]byte

	// Network is the network's name as given to --network.
	Network string
}

// maxNetworkName bounds the stored network name.
const maxNetworkName = 64

// encodeBinding is node(33) | network (UTF-8, the rest of the value).
func encodeBinding(b Binding) ([]byte, error) {
	if b.Network == "" || len(b.Network) > maxNetworkName ||
		!utf8.ValidString(b.Network) {

		return nil, fmt.Errorf("%w: network name %q", ErrInvalid,
			b.Network)
	}
	v := make([]byte, 0, 33+len(b.Network))
	v = append(v, b.Node[:]...)
	return append(v, b.Network...), nil
}

func decodeBinding(v []byte) (Binding, error) {
	var b Binding
	if len(v) <= 33 || len(v) > 33+maxNetworkName {
		return b, fmt.Errorf("%w: node binding of %d bytes", ErrCorrupt,
			len(v))
	}
	copy(b.Node[:], v[:33])
	b.Network = string(v[33:])
	return b, nil
}

// NodeBinding returns the node and network the ledger is bound to, and
// false if it is not bound yet.
func (db *DB) NodeBinding(ctx context.Context) (Binding, bool, error) {
	var (
		b     Binding
		found bool
	)
	err := db.view(ctx, func(t *txn) error {
		var err error
		b, found, err = readBinding(t)
		return err
	})
	return b, found, err
}

func readBinding(t *txn) (Binding, bool, error) {
	v, err := t.getRaw(keyNodeBinding)
	switch {
	case errors.Is(err, ErrNotFound):
		return Binding{}, false, nil
	case err != nil:
		return Binding{}, false, err
	}
	b, err := decodeBinding(v)
	return b, err == nil, err
}

// Bind binds an unbound ledger to want, durably, and checks a bound one
// against it: a ledger bound to another node or network returns an error
// wrapping ErrWrongNode that names both. It returns whether this call
// wrote the binding.
func (db *DB) Bind(ctx context.Context, want Binding) (bool, error) {
	v, err := encodeBinding(want)
	if err != nil {
		return false, err
	}
	var bound bool
	err = db.update(ctx, func(t *txn) error {
		have, found, err := readBinding(t)
		switch {
		case err != nil:
			return err
		case !found:
			bound = true
			return t.set(keyNodeBinding, v)
		}
		bound = false
		return CheckBinding(have, want)
	})
	return bound && err == nil, err
}

// CheckBinding compares the binding a ledger has with the one wanted and
// says in one line what differs.
func CheckBinding(have, want Binding) error {
	switch {
	case have.Network != want.Network:
		return fmt.Errorf("%w: this ledger is for %s, not %s (it "+
			"belongs to lnd node %x, lnd is node %x)", ErrWrongNode,
			have.Network, want.Network, have.Node, want.Node)
	case have.Node != want.Node:
		return fmt.Errorf("%w: this ledger belongs to lnd node %x, but "+
			"lnd is node %x", ErrWrongNode, have.Node, want.Node)
	}
	return nil
}
