package receiver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/store"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"gopkg.in/macaroon.v2"
)

// TestDaemonStartStop: the daemon comes up without lnd (it connects in the
// background), binds port 0, refuses a second daemon on the same data
// directory with a clear error and stops cleanly.
func TestDaemonStartStop(t *testing.T) {
	c := validConfig(t)
	c.API.Listen = "127.0.0.1:0"
	c.Metrics.Listen = "127.0.0.1:0"
	c.Lnd.Host = "127.0.0.1:1"
	d, err := New(c, common.NewLogManager(io.Discard))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, d.Start(ctx))
	require.ErrorIs(t, d.Start(ctx), ErrAlreadyStarted)
	require.NotEmpty(t, d.APIAddr())
	require.NotContains(t, d.APIAddr(), ":0")
	require.NotEmpty(t, d.MetricsAddr())
	require.Equal(t, "degraded", d.health()["status"])

	c2 := *c
	d2, err := New(&c2, common.NewLogManager(io.Discard))
	require.NoError(t, err)
	require.ErrorIs(t, d2.Start(ctx), store.ErrLocked)

	require.NoError(t, d.Stop())
	require.NoError(t, d.Stop())
}

// lndConfigThatWaits points the daemon at an lnd that is not there, with a
// real certificate and a macaroon holding every permission the receiver
// needs, so the daemon keeps retrying the connection in the background
// instead of stopping at once on an unusable macaroon.
func lndConfigThatWaits(t *testing.T, c *Config) {
	t.Helper()
	dir := t.TempDir()
	c.Lnd.TLSPath = filepath.Join(dir, "tls.cert")
	_, err := common.LoadOrCreateTLS(c.Lnd.TLSPath, filepath.Join(dir, "tls.key"), nil)
	require.NoError(t, err)

	byEntity := map[string]*lnrpc.Op{}
	var ops []*lnrpc.Op
	for _, rpc := range common.ReceiverMacaroonRPCs() {
		for _, p := range rpc.Perms {
			op := byEntity[p.Entity]
			if op == nil {
				op = &lnrpc.Op{Entity: p.Entity}
				byEntity[p.Entity] = op
				ops = append(ops, op)
			}
			op.Actions = append(op.Actions, p.Action)
		}
	}
	id, err := proto.Marshal(&lnrpc.MacaroonId{
		Nonce: []byte("0123456789abcdef"), StorageId: []byte("0"), Ops: ops,
	})
	require.NoError(t, err)
	m, err := macaroon.New([]byte("root key"), append([]byte{3}, id...),
		"lnd", macaroon.V2)
	require.NoError(t, err)
	b, err := m.MarshalBinary()
	require.NoError(t, err)
	c.Lnd.MacaroonPath = filepath.Join(dir, "satstream.macaroon")
	require.NoError(t, os.WriteFile(c.Lnd.MacaroonPath, b, 0o600))
	c.Lnd.Host = "127.0.0.1:1"
}

// TestLedgerFsyncFailsDaemonKeepsRunning reproduces a daemon that went on
// after its ledger failed: the failed step stayed visible and the lnd loop
// kept looping on a store that could not write. Now a failed fsync stops
// the daemon with the store's error (Main returns it and the binary exits
// non-zero); a restart re-reads the ledger from disk.
func TestLedgerFsyncFailsDaemonKeepsRunning(t *testing.T) {
	c := validConfig(t)
	c.API.Listen = "127.0.0.1:0"
	c.Metrics.Listen = ""
	lndConfigThatWaits(t, c)
	d, err := New(c, common.NewLogManager(io.Discard))
	require.NoError(t, err)
	var broken atomic.Bool
	d.storeOpts = func(o *store.Options) {
		o.FaultHook = func(p store.FaultPoint) error {
			if p == store.FaultSync && broken.Load() {
				return errors.New("disk on fire")
			}
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, d.Start(ctx))
	defer d.Stop()

	// Nothing is fatal while lnd is merely away.
	select {
	case err := <-d.Err():
		t.Fatalf("daemon stopped before the disk broke: %v", err)
	default:
	}

	broken.Store(true)
	err = d.db.Receiver().Update(ctx, func(tx store.ReceiverTx) error {
		return tx.SetSettleIndex(1)
	})
	require.ErrorIs(t, err, store.ErrFailed)

	select {
	case err := <-d.Err():
		require.ErrorIs(t, err, store.ErrFailed)
		require.ErrorIs(t, err, store.ErrSyncFailed)
		require.ErrorContains(t, err, "disk on fire")
		t.Log(err)
	case <-ctx.Done():
		t.Fatal("daemon kept running on a failed ledger")
	}
	require.ErrorIs(t, d.Stop(), store.ErrFailed)
}

// TestLedgerFailureRacingShutdownExitsZero reproduces a ledger failure that
// raced shutdown: watchStore returned on the cancelled context without
// looking, Stop returned nil and Main exited 0 with nothing logged, though
// steps in flight may be lost. Now Stop returns the failure and logs it
// once.
func TestLedgerFailureRacingShutdownExitsZero(t *testing.T) {
	c := validConfig(t)
	c.API.Listen = "127.0.0.1:0"
	c.Metrics.Listen = ""
	lndConfigThatWaits(t, c)
	logs := &lockedBuffer{}
	d, err := New(c, common.NewLogManager(logs))
	require.NoError(t, err)
	var broken atomic.Bool
	d.storeOpts = func(o *store.Options) {
		o.FaultHook = func(p store.FaultPoint) error {
			if p == store.FaultSync && broken.Load() {
				return errors.New("disk on fire")
			}
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, d.Start(ctx))
	defer d.Stop()

	// Shutdown begins (the daemon's context is cancelled, as by a
	// signal), then the last step's fsync fails.
	d.cancel()
	broken.Store(true)
	err = d.db.Receiver().Update(ctx, func(tx store.ReceiverTx) error {
		return tx.SetSettleIndex(1)
	})
	require.ErrorIs(t, err, store.ErrFailed)

	err = d.Stop()
	require.ErrorIs(t, err, store.ErrFailed)
	require.ErrorContains(t, err, "disk on fire")
	require.Equal(t, 1, strings.Count(strings.ToLower(logs.String()),
		"ledger failed"), logs.String())
}

// lockedBuffer collects a daemon's log lines from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
