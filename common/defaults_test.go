package common

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLocalLndNeedsOnlyNetwork: --lnd.tlspath and --lnd.macaroonpath were
// required even for the lnd on the same machine; they now default to
// lnd's own paths for the network, as lndclient and loop do, and an
// lndconnect URI on lnd's REST port 8080 gets a hint about gRPC's 10009.
func TestLocalLndNeedsOnlyNetwork(t *testing.T) {
	home, err := os.UserHomeDir()
	require.NoError(t, err)
	var c LndConfig
	c.SetDefaults("testnet4")
	require.Equal(t, filepath.Join(home, ".lnd", "tls.cert"), c.TLSPath)
	require.Equal(t, filepath.Join(home, ".lnd", "data", "chain",
		"bitcoin", "testnet4", "admin.macaroon"), c.MacaroonPath)

	// Named another way, nothing is filled in.
	c = LndConfig{Polar: "1/alice"}
	c.SetDefaults("regtest")
	require.Empty(t, c.TLSPath)
	require.Empty(t, c.MacaroonPath)

	// A missing default says which option to set.
	c = DefaultLndConfig()
	c.TLSPath = filepath.Join(t.TempDir(), "nope", "tls.cert")
	c.SetDefaults("mainnet")
	require.ErrorContains(t, c.Validate(), "--lnd.tlspath")

	require.Contains(t, RESTPortHint("umbrel.local:8080"), "10009")
	require.Empty(t, RESTPortHint("umbrel.local:10009"))
}
