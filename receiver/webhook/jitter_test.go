package webhook

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRetriesOfManyEndpointsSpread: without jitter every endpoint that
// failed at once retried at the same instant.
func TestRetriesOfManyEndpointsSpread(t *testing.T) {
	t.Parallel()
	seen := map[time.Duration]bool{}
	for range 200 {
		d := equalJitter(time.Minute)
		require.GreaterOrEqual(t, d, 30*time.Second)
		require.LessOrEqual(t, d, time.Minute)
		seen[d] = true
	}
	require.Greater(t, len(seen), 100)
}
