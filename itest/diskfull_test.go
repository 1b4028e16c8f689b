//go:build itest

package itest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/stretchr/testify/require"
)

// diskFullTmpfsSize is each daemon's data filesystem in the disk-full
// test: room for the ledger and the store's default 64 MiB reserve.
const diskFullTmpfsSize = "160m"

// mountTmpfs mounts a tmpfs of size on a fresh directory and unmounts it
// at cleanup. It skips the test, saying why, where mounting is not
// allowed: the disk-full test needs root (or CAP_SYS_ADMIN), which CI and
// the test machine have.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "satstream-tmpfs-*")
	require.NoError(t, err)
	err = syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700")
	if err != nil {
		os.Remove(dir)
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("cannot mount a tmpfs to fill (%v): the disk-full "+
				"test needs root or CAP_SYS_ADMIN", err)
		}
		require.NoError(t, err, "mount tmpfs on %s", dir)
	}
	t.Cleanup(func() {
		// Lazily: a daemon still starting or dying may hold files.
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
		os.Remove(dir)
	})
	return dir
}

// fillDisk writes a filler file into dir until the filesystem refuses it
// with ENOSPC, and returns the file's path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 1<<20)
	for _, n := range []int{len(buf), 512} {
		for {
			_, err := f.Write(buf[:n])
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			require.NoError(t, err)
		}
	}
	return path
}

// onDataDir moves d's --datadir to dir (the receiver's webhook secret
// with it); d.dir keeps the logs.
func onDataDir(t *testing.T, d *rcv, dir string) {
	for i, a := range d.args {
		if strings.HasPrefix(a, "--datadir=") {
			d.args[i] = "--datadir=" + dir
		}
	}
	secret := filepath.Join(d.dir, "webhook.secret")
	if b, err := os.ReadFile(secret); err == nil {
		require.NoError(t, os.WriteFile(filepath.Join(dir,
			"webhook.secret"), b, 0o600))
	}
	d.dataDir = dir
}

// health returns the daemon's /v1/health body.
func (r *rcv) health() (map[string]any, error) {
	var h map[string]any
	if code := r.do("GET", "/v1/health", nil, &h); code != 200 {
		return nil, fmt.Errorf("health: HTTP %d", code)
	}
	return h, nil
}

// waitDiskFullReported waits until d's health is degraded with a ledger
// error naming the full directory and ENOSPC, and its log says so.
func waitDiskFullReported(t *testing.T, ctx context.Context, d *rcv,
	mnt string) {

	t.Helper()
	require.NoError(t, regtest.Poll(ctx, time.Minute, func() error {
		h, err := d.health()
		if err != nil {
			return err
		}
		ledger, _ := h["ledger"].(string)
		if h["status"] == "ok" || !strings.Contains(ledger, "disk full") ||
			!strings.Contains(ledger, mnt) ||
			!strings.Contains(ledger, syscall.ENOSPC.Error()) {

			return fmt.Errorf("health %v", h)
		}
		logged, err := os.ReadFile(d.proc.log)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(logged), "\n") {
			if strings.Contains(line, "Ledger disk full") &&
				strings.Contains(line, mnt) &&
				strings.Contains(line, syscall.ENOSPC.Error()) {

				t.Logf("%s health: %v", filepath.Base(d.bin), h)
				t.Logf("%s log: %s", filepath.Base(d.bin), line)
				return nil
			}
		}
		return fmt.Errorf("no disk-full line in %s", d.proc.log)
	}), "%s did not report its full disk", filepath.Base(d.bin))
}

// waitHealthy waits until d's health is "ok" again.
func waitHealthy(t *testing.T, ctx context.Context, d *rcv) {
	t.Helper()
	require.NoError(t, regtest.Poll(ctx, time.Minute, func() error {
		h, err := d.health()
		if err != nil {
			return err
		}
		if h["status"] != "ok" {
			return fmt.Errorf("health %v", h)
		}
		return nil
	}))
}

// keysendInvoices returns carol's keysend invoices by hash and state.
func (f *faultRig) keysendInvoices() map[string]lnrpc.Invoice_InvoiceState {
	resp, err := f.carol.RPC().ListInvoices(f.ctx,
		&lnrpc.ListInvoiceRequest{NumMaxInvoices: 1_000_000})
	require.NoError(f.t, err)
	out := map[string]lnrpc.Invoice_InvoiceState{}
	for _, inv := range resp.Invoices {
		if inv.IsKeysend {
			out[fmt.Sprintf("%x", inv.RHash)] = inv.State
		}
	}
	return out
}

// TestDiskFull fills the filesystem holding a daemon's data directory (a
// small tmpfs) while several subscriptions stream, first the receiver's,
// then the sender's. It reproduces what a full disk did: badger writes its
// logs through memory maps, so the daemon died of a SIGBUS at its next
// write (and again at every restart while the disk stayed full). Now:
//   - the daemon keeps running, refuses every write step, says so (health
//     "degraded" with the path and ENOSPC, an error line in its log) and
//     credits nothing: the receiver's held payments fail back to the payer
//     at the hold time, the sender sends nothing it could not record;
//   - when the filler is deleted it resumes by itself (same process) and
//     the ledger invariant holds;
//   - restarted while the disk is full it refuses to start with one clear
//     line (exit 1, no crash), and starts once space is back, with the
//     invariant holding again.
func TestDiskFull(t *testing.T) {
	rcvData := mountTmpfs(t, diskFullTmpfsSize)
	sndData := mountTmpfs(t, diskFullTmpfsSize)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	f := newFaultRig(t, ctx, 3, func(role string, d *rcv) {
		if role == "receiver" {
			onDataDir(t, d, rcvData)
		} else {
			onDataDir(t, d, sndData)
		}
	})

	t.Run("ReceiverDataDirFull", func(t *testing.T) {
		pid := f.rcv.proc.cmd.Process.Pid
		filler := fillDisk(t, rcvData)
		f.faults++
		waitDiskFullReported(t, ctx, f.rcv, rcvData)

		// From here every write is refused: nothing is credited, and
		// held payments go back to the payer when the hold time ends.
		credited := f.credited()
		before := f.keysendInvoices()
		var failedBack int
		require.NoError(t, regtest.Poll(ctx, 3*faultHold, func() error {
			failedBack = 0
			for h, st := range f.keysendInvoices() {
				if _, old := before[h]; !old &&
					st == lnrpc.Invoice_CANCELED {

					failedBack++
				}
			}
			if failedBack < 2 {
				return fmt.Errorf("%d payments failed back so far",
					failedBack)
			}
			return nil
		}), "payments made while the disk is full must fail back")
		now := f.keysendInvoices()
		for h, st := range now {
			if _, old := before[h]; !old {
				require.NotEqual(t, lnrpc.Invoice_SETTLED, st,
					"payment %s settled while the ledger's disk "+
						"was full", h)
			}
		}
		require.Equal(t, credited, f.credited(),
			"credited while the ledger's disk was full")
		t.Logf("disk full: %d payments failed back, none credited",
			failedBack)
		require.Equal(t, pid, f.rcv.proc.cmd.Process.Pid)
		select {
		case <-f.rcv.proc.done:
			t.Fatalf("receiver died with the disk full: %s",
				tail(f.rcv.proc.log, 30))
		default:
		}

		// Space returns: the same process resumes by itself.
		require.NoError(t, os.Remove(filler))
		waitHealthy(t, ctx, f.rcv)
		f.waitProgress(2)
		require.Equal(t, pid, f.rcv.proc.cmd.Process.Pid,
			"the receiver restarted")
		f.checkInvariant("after the receiver's disk was full")

		// Full again, and the receiver restarted (a supervisor would):
		// it refuses to start, clearly, instead of crashing.
		filler = fillDisk(t, rcvData)
		f.faults++
		f.rcv.kill()
		out := f.rcv.refusedStart(ctx)
		require.Contains(t, out, "disk full")
		require.Contains(t, out, rcvData)
		require.Contains(t, out, syscall.ENOSPC.Error())
		require.NoError(t, os.Remove(filler))
		f.rcv.start(ctx)
		f.waitProgress(2)
		f.checkInvariant("after restarting the receiver on a full disk")
	})

	t.Run("SenderDataDirFull", func(t *testing.T) {
		pid := f.snd.proc.cmd.Process.Pid
		filler := fillDisk(t, sndData)
		f.faults++
		waitDiskFullReported(t, ctx, f.snd, sndData)

		// Every subscription ends up waiting on the full disk: no new
		// attempt can be written, so none is sent.
		require.NoError(t, regtest.Poll(ctx, 2*time.Minute, func() error {
			for _, id := range f.subs {
				var sv struct {
					Waiting  string `json:"waiting"`
					InFlight int    `json:"in_flight"`
				}
				if f.snd.do("GET", "/v1/subscriptions/"+id, nil,
					&sv) != 200 {
					return fmt.Errorf("sender API down")
				}
				if !strings.Contains(sv.Waiting, "disk full") ||
					sv.InFlight != 0 {
					return fmt.Errorf("%s: waiting %q, %d in "+
						"flight", id, sv.Waiting, sv.InFlight)
				}
			}
			return nil
		}), "the sender did not stop paying on a full disk")
		credited := f.credited()
		select {
		case <-f.snd.proc.done:
			t.Fatalf("sender died with the disk full: %s",
				tail(f.snd.proc.log, 30))
		default:
		}

		// Restarting the sender while full: a clear refusal.
		f.snd.kill()
		out := f.snd.refusedStart(ctx)
		require.Contains(t, out, "disk full")
		require.Contains(t, out, sndData)
		require.Contains(t, out, syscall.ENOSPC.Error())
		require.Equal(t, credited, f.credited(),
			"paid while the sender's disk was full")

		// Space returns: it starts and pays again; then the running
		// sender fills up and empties again and resumes by itself.
		require.NoError(t, os.Remove(filler))
		f.snd.start(ctx)
		f.waitProgress(2)
		f.checkInvariant("after restarting the sender on a full disk")

		pid = f.snd.proc.cmd.Process.Pid
		filler = fillDisk(t, sndData)
		f.faults++
		waitDiskFullReported(t, ctx, f.snd, sndData)
		require.NoError(t, os.Remove(filler))
		waitHealthy(t, ctx, f.snd)
		f.waitProgress(2)
		require.Equal(t, pid, f.snd.proc.cmd.Process.Pid,
			"the sender restarted")
		f.checkInvariant("after the sender's disk was full")
	})

	t.Logf("TestDiskFull: %d faults injected, %d invariant checks passed",
		f.faults, f.checks)
}
