package bins

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBuildProgressSaysOfHowMany: the cold lnd build printed "312
// packages compiled" with no idea of the end. It now counts the packages
// first and says "N of at most M".
func TestBuildProgressSaysOfHowMany(t *testing.T) {
	total := countDeps(context.Background(), ".",
		"github.com/satstream/satstream/tlv", "")
	require.Greater(t, total, 1)
	require.Equal(t, "3 of at most 10 packages compiled", progress(3, 10))
	require.Equal(t, "10 of at most 10 packages compiled", progress(12, 10))
	require.Equal(t, "3 packages compiled", progress(3, 0))
}
