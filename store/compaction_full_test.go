package store

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLedgerFillingItsDiskSIGBUSesInCompaction: the ledger itself fills
// its filesystem. Foreground writes are refused at the reserve, but
// badger's background compaction (level 0 into the base level) writes new
// tables through memory maps; a reserve that does not cover it turns that
// write into a SIGBUS that kills the process. The filling runs in a child
// process, so a SIGBUS fails this test instead of killing it.
func TestLedgerFillingItsDiskSIGBUSesInCompaction(t *testing.T) {
	if dir := os.Getenv("STORE_FILL_DIR"); dir != "" {
		fillLedger(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("fills a tmpfs for about 20 s")
	}
	mnt := mountTmpfs(t, "64m")
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$",
		"-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "STORE_FILL_DIR="+
		filepath.Join(mnt, "ledger"))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the filling process died:\n%s", tail(out))
	require.Contains(t, string(out), "refused and survived")
}

// tail returns the end of a long output.
func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// fillLedger writes through the store until it refuses for a full disk,
// keeps writing (refused) while badger compacts, and closes.
func fillLedger(t *testing.T, dir string) {
	opts := DefaultOptions()
	opts.GCInterval = 0
	// Everything scaled down (the default reserve is 64 MiB beside
	// 16 MiB memtables): 2 MiB tables, so five level-0 tables compact
	// into the base level within seconds, beside an 8 MiB floor.
	opts.MemTableSize = 2 << 20
	opts.MinFreeBytes = 8 << 20
	ctx := context.Background()
	db, err := Open(ctx, dir, opts)
	require.NoError(t, err)

	var (
		mu      sync.Mutex
		firstNo time.Time
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := db.update(ctx, func(tx *txn) error {
					for i := 0; i < 64; i++ {
						k := make([]byte, 17)
						v := make([]byte, 1024)
						_, _ = rand.Read(k[1:])
						_, _ = rand.Read(v)
						k[0] = 0xF0
						if err := tx.set(k, v); err != nil {
							return err
						}
					}
					return nil
				})
				switch {
				case err == nil:
				case errors.Is(err, ErrDiskFull):
					mu.Lock()
					if firstNo.IsZero() {
						firstNo = time.Now()
					}
					mu.Unlock()
					time.Sleep(10 * time.Millisecond)
				default:
					t.Errorf("update: %v", err)
					return
				}
			}
		}()
	}
	// Fill until refused, then give compaction time to run into the
	// reserve.
	deadline := time.Now().Add(25 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		f := firstNo
		mu.Unlock()
		if !f.IsZero() && time.Since(f) > 8*time.Second {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	refused := !firstNo.IsZero()
	mu.Unlock()
	require.True(t, refused, "the disk never filled")
	_ = db.Close()
	t.Log("refused and survived")
}
