package common

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
)

// boundLedger makes a ledger bound to a regtest node and returns it open
// with a backup of it.
func boundLedger(t *testing.T) (*store.DB, []byte) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "ledger"),
		store.DefaultOptions())
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	_, err = db.Bind(ctx, store.Binding{Node: [33]byte{2, 7},
		Network: "regtest"})
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, db.Backup(ctx, &buf))
	return db, buf.Bytes()
}

// TestRestoreRefusesWhatWouldLoseMoney: restoring over a running daemon's
// ledger, over an existing ledger, from a damaged file or from another
// network's ledger would lose or mix money records; each is refused and
// leaves nothing behind. A good backup restores with its binding.
func TestRestoreRefusesWhatWouldLoseMoney(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, backup := boundLedger(t)
	damaged := append([]byte(nil), backup...)
	damaged[len(damaged)/2] ^= 0xff

	// Another network: nothing is left in the data directory.
	dir := t.TempDir()
	_, _, err := RestoreLedger(ctx, dir, "mainnet", nil, bytes.NewReader(backup))
	require.ErrorIs(t, err, store.ErrWrongNode)
	require.ErrorContains(t, err, "regtest")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries)

	// A damaged file.
	_, _, err = RestoreLedger(ctx, dir, "regtest", nil, bytes.NewReader(damaged))
	require.ErrorIs(t, err, store.ErrCorrupt)
	require.ErrorIs(t, store.VerifyBackup(ctx, bytes.NewReader(damaged)),
		store.ErrCorrupt)
	require.ErrorIs(t, store.VerifyBackup(ctx,
		bytes.NewReader(backup[:len(backup)-10])), store.ErrCorrupt)
	require.NoError(t, store.VerifyBackup(ctx, bytes.NewReader(backup)))

	// A good one.
	b, bound, err := RestoreLedger(ctx, dir, "regtest", nil,
		bytes.NewReader(backup))
	require.NoError(t, err)
	require.True(t, bound)
	require.Equal(t, "regtest", b.Network)

	// Not over an existing ledger.
	_, _, err = RestoreLedger(ctx, dir, "regtest", nil, bytes.NewReader(backup))
	require.ErrorIs(t, err, store.ErrExists)

	// Not over a running daemon's.
	db, err := store.Open(ctx, filepath.Join(dir, "ledger"),
		store.DefaultOptions())
	require.NoError(t, err)
	defer db.Close()
	_, _, err = RestoreLedger(ctx, dir, "regtest", nil, bytes.NewReader(backup))
	require.ErrorIs(t, err, ErrDaemonRunning)
}

// TestBackupEndpointNeedsAdmin: the online backup is the whole ledger;
// the read-only token gets 403, the admin token a backup that verifies.
func TestBackupEndpointNeedsAdmin(t *testing.T) {
	t.Parallel()
	db, _ := boundLedger(t)
	tokens := Tokens{Admin: "a", ReadOnly: "r"}
	h := WithBackup(http.NotFoundHandler(), tokens,
		func() *store.DB { return db })
	for _, tc := range []struct {
		tok  string
		want int
	}{{"", http.StatusUnauthorized}, {"r", http.StatusForbidden},
		{"a", http.StatusOK}} {

		req := httptest.NewRequest(http.MethodPost, BackupPath, nil)
		if tc.tok != "" {
			req.Header.Set("Authorization", "Bearer "+tc.tok)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, tc.want, rec.Code, tc.tok)
		if tc.want == http.StatusOK {
			require.NoError(t, store.VerifyBackup(context.Background(),
				rec.Body))
		}
	}
}

// TestRestoreTookAnotherNodesBackup: restore checked only the network, so
// a backup of another lnd node's ledger was restored and refused only at
// the daemon's start, and an unbound backup was bound to whatever node
// the daemon met first. Given the node the daemon will run with (--node),
// restore refuses another node's backup in one line naming both pubkeys
// and leaves nothing behind, and binds an unbound backup to that node, so
// the daemon refuses any other at start.
func TestRestoreTookAnotherNodesBackup(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, bound := boundLedger(t)
	ours := route.Vertex{2, 7}
	other := route.Vertex{3, 9}

	// Another node's backup: refused, nothing left.
	dir := t.TempDir()
	_, _, err := RestoreLedger(ctx, dir, "regtest", &other,
		bytes.NewReader(bound))
	require.ErrorIs(t, err, store.ErrWrongNode)
	require.ErrorContains(t, err, fmt.Sprintf("%x", ours[:]))
	require.ErrorContains(t, err, fmt.Sprintf("%x", other[:]))
	require.NotContains(t, err.Error(), "\n")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries)

	// Its own node: restored.
	b, isBound, err := RestoreLedger(ctx, dir, "regtest", &ours,
		bytes.NewReader(bound))
	require.NoError(t, err)
	require.True(t, isBound)
	require.Equal(t, [33]byte(ours), b.Node)

	// An unbound backup (made before ledgers were bound) given --node is
	// bound to it: the daemon refuses another node at start, naming
	// both.
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "ledger"),
		store.DefaultOptions())
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, db.Backup(ctx, &buf))
	require.NoError(t, db.Close())
	unbound := buf.Bytes()

	dir = t.TempDir()
	b, isBound, err = RestoreLedger(ctx, dir, "regtest", &ours,
		bytes.NewReader(unbound))
	require.NoError(t, err)
	require.True(t, isBound)
	require.Equal(t, store.Binding{Node: ours, Network: "regtest"}, b)
	db, err = store.Open(ctx, filepath.Join(dir, "ledger"),
		store.DefaultOptions())
	require.NoError(t, err)
	_, err = BindLedger(ctx, db, other, "regtest", dir)
	require.ErrorIs(t, err, store.ErrWrongNode)
	require.ErrorContains(t, err, fmt.Sprintf("%x", ours[:]))
	require.ErrorContains(t, err, fmt.Sprintf("%x", other[:]))
	_, err = BindLedger(ctx, db, ours, "mainnet", dir)
	require.ErrorIs(t, err, store.ErrWrongNode)
	require.ErrorContains(t, err, fmt.Sprintf("%x", ours[:]))
	require.NoError(t, db.Close())

	// Without --node it stays unbound, as before (the command says the
	// daemon binds it at its first start).
	dir = t.TempDir()
	_, isBound, err = RestoreLedger(ctx, dir, "regtest", nil,
		bytes.NewReader(unbound))
	require.NoError(t, err)
	require.False(t, isBound)
}
