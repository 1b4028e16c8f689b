//go:build itest

package itest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/satstream/satstream/itest/soak"
	"github.com/stretchr/testify/require"
)

// TestSoakQuick runs the soak command's --quick settings (about a minute,
// 10 subscriptions, 300 hostile keysends) so the soak never rots between
// full runs: every hostile keysend refused, the receiver's ledger not
// grown by them, the invariant exact at the end; RSS and goroutines are
// sampled and reported (a minute is too short to judge flatness).
func TestSoakQuick(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var log strings.Builder
	res, err := soak.Run(ctx, soak.QuickConfig(), &log)
	var table strings.Builder
	res.Print(&table)
	t.Logf("soak log:\n%s\nsummary:\n%s", log.String(), table.String())
	require.NoError(t, err)
	require.Greater(t, res.Receiver.Samples, 0)
	require.Greater(t, res.Receiver.GoroutinesEnd, 0.0)
	require.Greater(t, res.Sender.RSSEndKiB, 0.0)
}
