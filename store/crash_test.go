package store

import (
	"bufio"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The crash test runs this test binary again as a child that credits
// payments as fast as it can and prints each id once its Update returned
// (acknowledged = durable). The parent SIGKILLs the child at a random
// moment, reopens the store and checks that every acknowledged credit is
// there and that no credit is half applied.
const (
	crashDirEnv  = "SATSTREAM_STORE_CRASH_DIR"
	crashBaseEnv = "SATSTREAM_STORE_CRASH_BASE"
	crashKills   = 50
	crashWorkers = 8
	crashAmount  = 1500
)

// TestCrashChild is the child's body; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("only run as the crash test's child")
	}
	base, err := strconv.ParseUint(os.Getenv(crashBaseEnv), 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad base:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	db, err := Open(ctx, dir, DefaultOptions())
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	rs := db.Receiver()

	// The parent kills us long before this; it only stops a lost child.
	deadline := time.Now().Add(testTimeout)
	var (
		mu   sync.Mutex
		next = base
		out  = os.Stdout
	)
	var wg sync.WaitGroup
	for w := 0; w < crashWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				mu.Lock()
				n := next
				next++
				mu.Unlock()
				if err := credit(ctx, rs, subID(1), n, crashAmount); err != nil {
					fmt.Fprintln(os.Stderr, "credit:", err)
					os.Exit(2)
				}
				// One write per line: a pipe write this small is atomic.
				if _, err := fmt.Fprintf(out, "%d\n", n); err != nil {
					os.Exit(2)
				}
			}
		}()
	}
	wg.Wait()
	os.Exit(3)
}

// TestCrashSafety kills a writing child crashKills times.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	ctx := testCtx(t)
	{
		db, err := Open(ctx, dir, DefaultOptions())
		require.NoError(t, err)
		require.NoError(t, putActiveSub(ctx, db.Receiver(), subID(1)))
		require.NoError(t, db.Close())
	}

	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	acked := map[uint64]bool{}
	start := time.Now()

	for i := 0; i < crashKills; i++ {
		// The timeout guards each reopen, not the whole run: under -race
		// on a busy machine fifty kills take longer than one guard.
		ctx := testCtx(t)
		ids := runAndKill(t, dir, uint64(i+1)*1_000_000, rng)
		for _, id := range ids {
			acked[id] = true
		}

		db, err := Open(ctx, dir, DefaultOptions())
		require.NoError(t, err, "reopen after kill %d", i+1)
		s, err := summarize(ctx, db.Receiver(), subID(1))
		require.NoError(t, err)
		for id := range acked {
			p, ok := s.payments[id]
			require.True(t, ok, "kill %d: acknowledged credit %d lost", i+1, id)
			require.EqualValues(t, crashAmount, p.Amount)
			require.Equal(t, PaymentCredited, p.State)
		}
		checkConsistent(t, s)
		require.NoError(t, db.Close())
	}
	t.Logf("%d kills, %d acknowledged credits, %v", crashKills, len(acked),
		time.Since(start).Round(time.Millisecond))
	require.NotEmpty(t, acked)
}

// runAndKill starts the child, kills it at a random moment (a fifth of the
// time while it may still be opening the store, otherwise after it has
// acknowledged some credits) and returns the ids it acknowledged.
func runAndKill(t *testing.T, dir string, base uint64, rng *rand.Rand) []uint64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir,
		crashBaseEnv+"="+strconv.FormatUint(base, 10))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	firstAck := make(chan struct{})
	lines := make(chan []uint64, 1)
	go func() {
		var ids []uint64
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if id, err := strconv.ParseUint(sc.Text(), 10, 64); err == nil {
				if len(ids) == 0 {
					close(firstAck)
				}
				ids = append(ids, id)
			}
		}
		lines <- ids
	}()

	delay := time.Duration(rng.Intn(40)) * time.Millisecond
	if rng.Intn(5) != 0 {
		select {
		case <-firstAck:
		case <-time.After(testTimeout):
			_ = cmd.Process.Kill()
			t.Fatalf("child acknowledged nothing: %s", stderr.String())
		}
		delay = time.Duration(rng.Intn(30)) * time.Millisecond
	}
	// Fault injection, not synchronisation: the kill lands wherever the
	// child happens to be.
	time.Sleep(delay)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	err = cmd.Wait()
	ids := <-lines
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	require.True(t, ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL,
		"child did not die by SIGKILL (%v): %s", err, stderr.String())
	return ids
}
