package store

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLedgerOfAnotherNodeIsRefused binds a ledger on first start and
// refuses it for another node or network (a node swap would otherwise make
// the receiver follow the new node's invoices from the old indices), also
// after a restart and in a restored backup.
func TestLedgerOfAnotherNodeIsRefused(t *testing.T) {
	t.Parallel()
	db, dir := openTestDB(t)
	ctx := testCtx(t)
	alice := Binding{Node: [33]byte{2, 1}, Network: "regtest"}

	_, found, err := db.NodeBinding(ctx)
	require.NoError(t, err)
	require.False(t, found, "a new ledger is unbound")

	bound, err := db.Bind(ctx, alice)
	require.NoError(t, err)
	require.True(t, bound)
	bound, err = db.Bind(ctx, alice)
	require.NoError(t, err)
	require.False(t, bound, "binding again to the same node writes nothing")

	tests := []struct {
		name string
		want Binding
		msg  string
	}{
		{"other node", Binding{Node: [33]byte{3, 9}, Network: "regtest"},
			"belongs to lnd node 0201"},
		{"other network", Binding{Node: alice.Node, Network: "mainnet"},
			"this ledger is for regtest, not mainnet"},
	}
	for _, tc := range tests {
		_, err := db.Bind(ctx, tc.want)
		require.ErrorIs(t, err, ErrWrongNode, tc.name)
		require.ErrorContains(t, err, tc.msg, tc.name)
	}

	// A backup carries the binding.
	var buf bytes.Buffer
	require.NoError(t, db.Backup(ctx, &buf))
	require.NoError(t, db.Close())
	restoredDir := filepath.Join(t.TempDir(), "restored")
	require.NoError(t, Restore(ctx, restoredDir, &buf))
	for _, d := range []string{dir, restoredDir} {
		db, err := Open(ctx, d, DefaultOptions())
		require.NoError(t, err)
		got, found, err := db.NodeBinding(ctx)
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, alice, got)
		_, err = db.Bind(ctx, tests[0].want)
		require.ErrorIs(t, err, ErrWrongNode)
		require.NoError(t, db.Close())
	}
}
