package common

import (
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseLndConnect(t *testing.T) {
	t.Parallel()
	mac := testMacaroon(t, "info:read", "invoices:read")
	der := testCertDER(t)
	macB64 := base64.RawURLEncoding.EncodeToString(mac)
	certB64 := base64.RawURLEncoding.EncodeToString(der)

	tests := []struct {
		name     string
		uri      string
		wantHost string
		wantCert bool
		wantErr  string
	}{
		{"valid", "lndconnect://node.example:10009?cert=" + certB64 +
			"&macaroon=" + macB64, "node.example:10009", true, ""},
		{"padded standard alphabet", "lndconnect://1.2.3.4:10009?cert=" +
			base64.StdEncoding.EncodeToString(der) + "&macaroon=" +
			base64.StdEncoding.EncodeToString(mac), "1.2.3.4:10009",
			true, ""},
		{"cert-less (CA-signed lnd)", "lndconnect://node.example:443?" +
			"macaroon=" + macB64, "node.example:443", false, ""},
		{"no port means 10009", "lndconnect://node.example?macaroon=" +
			macB64, "node.example:10009", false, ""},
		{"ipv6", "lndconnect://[::1]:10001?macaroon=" + macB64,
			"[::1]:10001", false, ""},
		{"upper-case scheme", "LNDCONNECT://h:1?macaroon=" + macB64,
			"h:1", false, ""},
		{"bad scheme", "https://h:1?macaroon=" + macB64, "", false,
			`scheme is "https"`},
		{"no host", "lndconnect://?macaroon=" + macB64, "", false,
			"no host"},
		// Found by FuzzParseLndConnect: url.Parse keeps "]" as the host.
		{"stray bracket host", "lndconnect://]?macaroon=" + macB64, "",
			false, `host "]" is not host:port`},
		{"bracket inside host", "lndconnect://a]b:1?macaroon=" + macB64,
			"", false, "is not host:port"},
		{"missing macaroon", "lndconnect://h:1?cert=" + certB64, "",
			false, "no macaroon"},
		{"bad base64 macaroon", "lndconnect://h:1?macaroon=%21%21%21",
			"", false, "macaroon is not base64url"},
		{"macaroon not a macaroon", "lndconnect://h:1?macaroon=" +
			base64.RawURLEncoding.EncodeToString([]byte("junk")), "",
			false, "macaroon does not decode"},
		{"bad base64 cert", "lndconnect://h:1?cert=***&macaroon=" +
			macB64, "", false, "cert is not base64url"},
		{"cert not DER", "lndconnect://h:1?cert=" +
			base64.RawURLEncoding.EncodeToString([]byte("junk")) +
			"&macaroon=" + macB64, "", false, "not a DER certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lc, err := ParseLndConnect(tc.uri)
			if tc.wantErr != "" {
				require.ErrorIs(t, err, ErrLndConnect)
				require.ErrorContains(t, err, tc.wantErr)
				// The macaroon is a secret: never echoed.
				require.NotContains(t, err.Error(), macB64)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantHost, lc.Host)
			require.Equal(t, mac, lc.Macaroon)
			if !tc.wantCert {
				require.Empty(t, lc.CertPEM)
				return
			}
			block, _ := pem.Decode([]byte(lc.CertPEM))
			require.NotNil(t, block)
			require.Equal(t, der, block.Bytes)
		})
	}
}

// TestLndConnectInConfig: --lnd.connect resolves without files and
// refuses to be combined with the other ways of naming a node.
func TestLndConnectInConfig(t *testing.T) {
	t.Parallel()
	uri := "lndconnect://h:10009?macaroon=" +
		base64.RawURLEncoding.EncodeToString(testMacaroon(t, "info:read"))
	c := DefaultLndConfig()
	c.Connect = uri
	require.NoError(t, c.Validate())
	require.Equal(t, "h:10009", c.Addr())
	require.True(t, c.target.systemCert)

	c.Host = "other:1"
	err := c.Validate()
	require.ErrorIs(t, err, ErrLndConfig)
	require.ErrorContains(t, err, "--lnd.connect and --lnd.host")

	c = DefaultLndConfig()
	c.Connect = strings.Replace(uri, "lndconnect", "http", 1)
	err = c.Validate()
	require.ErrorIs(t, err, ErrLndConnect)
	require.ErrorContains(t, err, "--lnd.connect")
}
