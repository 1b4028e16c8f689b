package common

import (
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLndConnectPortOutOfRange: url.Parse takes any digits as a port, so
// port 0 or 99999 reached the dialer and failed there with a confusing
// message (or dialed a random port for 0). Now the URI is refused naming
// the port.
func TestLndConnectPortOutOfRange(t *testing.T) {
	t.Parallel()
	macB64 := base64.RawURLEncoding.EncodeToString(
		testMacaroon(t, "info:read"))
	for _, port := range []string{"0", "65536", "99999",
		"18446744073709551617"} {

		t.Run(port, func(t *testing.T) {
			_, err := ParseLndConnect("lndconnect://h:" + port +
				"?macaroon=" + macB64)
			require.ErrorIs(t, err, ErrLndConnect)
			require.ErrorIs(t, err, ErrBadPort)
			require.ErrorContains(t, err, fmt.Sprintf(
				"port %q is not 1..65535", port))
			require.NotContains(t, err.Error(), macB64)
		})
	}
	lc, err := ParseLndConnect("lndconnect://h:65535?macaroon=" + macB64)
	require.NoError(t, err)
	require.Equal(t, "h:65535", lc.Host)
}

// TestPolarPortOutOfRange: a networks.json port outside 1..65535 was
// formatted into the host as is; now it is refused naming node and port.
func TestPolarPortOutOfRange(t *testing.T) {
	t.Parallel()
	for _, port := range []int{-1, 65536, 1 << 40} {
		t.Run(fmt.Sprint(port), func(t *testing.T) {
			data := fmt.Sprintf(`{"networks":[{"id":1,"nodes":`+
				`{"lightning":[{"name":"alice","implementation":`+
				`"LND","ports":{"grpc":%d}}]}}]}`, port)
			_, err := polarNodeFromJSON([]byte(data), "networks.json",
				&PolarNode{NetworkID: 1, Name: "alice"})
			require.ErrorIs(t, err, ErrPolar)
			require.ErrorContains(t, err, fmt.Sprintf(
				`node "alice" gRPC port %d, not 1..65535`, port))
		})
	}
}
