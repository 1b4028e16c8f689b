//go:build itest

package itest

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDemo drives `satstream demo` the way a newcomer runs it, without a
// terminal: payments must flow to every business, the scripted pause,
// cancel and provider outage must show, and when it exits no process it
// started may be left.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	bin := filepath.Join(t.TempDir(), "satstream")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin,
		"../cmd/satstream")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build satstream: %s", out)

	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, "demo", "--plain",
		"--duration=75s", "--dir="+dir)
	cmd.Dir = ".." // the demo builds lnd from this module
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start())

	var (
		lines      []string
		sawWaiting bool
	)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		l := sc.Text()
		lines = append(lines, l)
		// lnd's NO_ROUTE, explained: carol's node is away.
		if strings.Contains(l, "waiting: receiver unreachable") ||
			strings.Contains(l, "waiting: receiver offline") {
			sawWaiting = true
		}
	}
	err = cmd.Wait()
	require.NoError(t, err, "demo output:\n%s", strings.Join(lines, "\n"))

	all := strings.Join(lines, "\n")
	require.True(t, sawWaiting, "the provider outage must show as "+
		"waiting:\n%s", all)

	m := regexp.MustCompile(`demo summary: subscriptions=(\d+) ` +
		`payments=(\d+) spent_msat=(\d+)`).FindStringSubmatch(all)
	require.NotNil(t, m, "no summary line:\n%s", all)
	require.Equal(t, "5", m[1])
	payments, _ := strconv.Atoi(m[2])
	require.Greater(t, payments, 20, "payments must flow")

	final := map[string]string{}
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "demo final: "); ok {
			name, _, _ := strings.Cut(rest, " |")
			final[name] = rest
		}
	}
	require.Len(t, final, 5)
	for name, l := range final {
		require.NotContains(t, l, "payments 0", "%s got no payment", name)
	}
	// Paused at 15 s, resumed at 60 s: streaming again at the end.
	require.Contains(t, final["Webflix"], "payer active")
	// Cancelled by the payer at 22 s: final on both sides.
	require.Contains(t, final["Perpetual Insurance"], "payer cancelled")
	require.Contains(t, final["Perpetual Insurance"],
		"provider cancelled_by_payer")

	// Nothing the demo started survives it.
	require.Empty(t, processesMentioning(t, dir))
}

// processesMentioning lists running processes whose command line contains
// s (the demo's directory is in every lnd and btcd command line).
func processesMentioning(t *testing.T, s string) []string {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	require.NoError(t, err)
	var found []string
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		cmdline := strings.ReplaceAll(string(data), "\x00", " ")
		if strings.Contains(cmdline, s) {
			found = append(found, p+": "+cmdline)
		}
	}
	return found
}
