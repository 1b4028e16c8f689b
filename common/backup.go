package common

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/lightningnetwork/lnd/routing/route"
	"github.com/satstream/satstream/store"
)

// BackupPath is where a daemon streams an online backup of its ledger:
// POST, admin token only (the ledger is the whole business record).
const BackupPath = "/v1/backup"

// ErrDaemonRunning is returned by RestoreLedger when a daemon holds the
// ledger directory.
var ErrDaemonRunning = errors.New("daemon is running")

// WithBackup serves POST /v1/backup with the admin token by streaming
// db's checksummed backup (store.DB.Backup, a consistent snapshot taken
// while the daemon runs), and everything else from next.
func WithBackup(next http.Handler, tokens Tokens,
	db func() *store.DB) http.Handler {

	backup := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			WriteError(w, http.StatusMethodNotAllowed,
				"method_not_allowed", "", "POST "+BackupPath)
			return
		}
		if tokens.Check(r) != AccessAdmin {
			WriteError(w, http.StatusForbidden, "read_only", "",
				"a backup needs the admin token")
			return
		}
		d := db()
		if d == nil {
			WriteError(w, http.StatusServiceUnavailable,
				"unavailable", "", "the ledger is not open")
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		// A failure half way leaves the body without its checksum
		// trailer, which restore refuses.
		if err := d.Backup(r.Context(), w); err != nil {
			logger().Warnf("backup to %s failed: %v", r.RemoteAddr, err)
		}
	})
	auth := tokens.Middleware(backup)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == BackupPath {
			auth.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// RestoreLedger restores a backup into <networkDir>/ledger, checked first:
// it refuses while a daemon holds the directory, when a ledger is already
// there (a restore never merges into or replaces money records), when the
// file is damaged (checksum, truncation) and when the backup is of another
// network. node, if not nil, is the lnd node the daemon will run with: a
// backup bound to another node is refused (its indices and open payments
// mean nothing on that node), and an unbound one (made before ledgers were
// bound) is bound to it. It returns the restored ledger's binding, if it
// has one; the daemon refuses it at start if lnd is another node.
func RestoreLedger(ctx context.Context, networkDir, network string,
	node *route.Vertex, r io.Reader) (store.Binding, bool, error) {

	dir := filepath.Join(networkDir, "ledger")
	if _, err := os.Stat(dir); err == nil {
		db, err := store.Open(ctx, dir, store.DefaultOptions())
		if errors.Is(err, store.ErrLocked) {
			return store.Binding{}, false, fmt.Errorf("%w: %s is in "+
				"use; stop the daemon first", ErrDaemonRunning, dir)
		}
		if err == nil {
			_ = db.Close()
		}
		return store.Binding{}, false, fmt.Errorf("%w: %s already "+
			"holds a ledger; move it aside (mv %s %s.old) if the "+
			"backup is to replace it", store.ErrExists, dir, dir, dir)
	}
	if err := os.MkdirAll(networkDir, 0o700); err != nil {
		return store.Binding{}, false, err
	}
	check := dir + ".check"
	if err := os.RemoveAll(check); err != nil {
		return store.Binding{}, false, err
	}
	if err := store.Restore(ctx, check, r); err != nil {
		return store.Binding{}, false, err
	}
	b, bound, err := checkRestored(ctx, check, network, node)
	if err != nil {
		_ = os.RemoveAll(check)
		return store.Binding{}, false, err
	}
	if err := os.Rename(check, dir); err != nil {
		return store.Binding{}, false, err
	}
	return b, bound, nil
}

// checkRestored checks the binding of the ledger restored in dir against
// the network and node the daemon will run with, and binds an unbound one
// to node.
func checkRestored(ctx context.Context, dir, network string,
	node *route.Vertex) (store.Binding, bool, error) {

	db, err := store.Open(ctx, dir, store.DefaultOptions())
	if err != nil {
		return store.Binding{}, false, err
	}
	b, bound, err := db.NodeBinding(ctx)
	switch {
	case err != nil:
	case bound && b.Network != network:
		err = fmt.Errorf("%w: the backup is of a %s ledger (lnd node "+
			"%x), not %s", store.ErrWrongNode, b.Network, b.Node,
			network)
	case node != nil:
		want := store.Binding{Node: *node, Network: network}
		if bound {
			if b.Node != want.Node {
				err = fmt.Errorf("%w: the backup belongs to "+
					"lnd node %x, not --node %x",
					store.ErrWrongNode, b.Node, want.Node)
			}
			break
		}
		_, err = db.Bind(ctx, want)
		b, bound = want, err == nil
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return store.Binding{}, false, err
	}
	return b, bound, nil
}
