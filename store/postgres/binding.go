package postgres

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/satstream/satstream/store"
)

// NodeBinding returns the network this store's node is bound to, and false
// if the node has not been bound yet.
func (s *Store) NodeBinding(ctx context.Context) (store.Binding, bool, error) {
	b := store.Binding{Node: s.node}
	var found bool
	err := s.view(ctx, func(t *tx) error {
		err := t.queryRow("SELECT network FROM node_bindings WHERE "+
			"node = $1", []any{s.node[:]}, &b.Network)
		switch {
		case errors.Is(err, store.ErrNotFound):
			found = false
			return nil
		case err != nil:
			return err
		}
		found = true
		return nil
	})
	return b, found, err
}

// Bind binds this store's node to want.Network, durably, and checks an
// existing binding: want.Node must be the store's node (Config.NodePubkey:
// following another node's invoices from this node's resume points would
// skip payments), and every node of one ledger must be on one network.
// Mismatches wrap store.ErrWrongNode. It reports whether this call wrote
// the binding.
func (s *Store) Bind(ctx context.Context, want store.Binding) (bool, error) {
	if want.Network == "" || len(want.Network) > 64 ||
		!utf8.ValidString(want.Network) {

		return false, fmt.Errorf("%w: network name %q", store.ErrInvalid,
			want.Network)
	}
	if want.Node != s.node {
		return false, store.CheckBinding(store.Binding{Node: s.node,
			Network: want.Network}, want)
	}
	var bound bool
	err := s.update(ctx, func(t *tx) error {
		bound = false
		var other store.Binding
		var node []byte
		err := t.queryRow("SELECT node, network FROM node_bindings "+
			"WHERE network <> $1 LIMIT 1", []any{want.Network}, &node,
			&other.Network)
		switch {
		case err == nil:
			copy(other.Node[:], node)
			return store.CheckBinding(other, want)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		tag, err := t.exec("INSERT INTO node_bindings (node, network) "+
			"VALUES ($1, $2) ON CONFLICT (node) DO NOTHING",
			s.node[:], want.Network)
		if err != nil {
			return err
		}
		bound = tag.RowsAffected() == 1
		return nil
	})
	return bound && err == nil, err
}
