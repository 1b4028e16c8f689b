package receiver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/satstream/satstream/common"
	"github.com/stretchr/testify/require"
)

func validConfig(t *testing.T) *Config {
	dir := t.TempDir()
	for _, f := range []string{"tls.cert", "admin.macaroon"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600))
	}
	c := DefaultConfig()
	c.DataDir = filepath.Join(dir, "data")
	c.Lnd.TLSPath = filepath.Join(dir, "tls.cert")
	c.Lnd.MacaroonPath = filepath.Join(dir, "admin.macaroon")
	return c
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Config)
		errHas string
	}{
		{"defaults are valid", func(*Config) {}, ""},
		{"bad network", func(c *Config) { c.Network = "litecoin" }, "--network"},
		{"testnet4 like the sender", func(c *Config) { c.Network = "testnet4" }, ""},
		{"no tls cert", func(c *Config) { c.Lnd.TLSPath = "" }, "--lnd.tlspath"},
		{"missing macaroon", func(c *Config) { c.Lnd.MacaroonPath = "/nope" }, "--lnd.macaroonpath"},
		{"bad api listen", func(c *Config) { c.API.Listen = "7321" }, "--api.listen"},
		{"bad metrics listen", func(c *Config) { c.Metrics.Listen = "x" }, "--metrics.listen"},
		{"metrics disabled", func(c *Config) { c.Metrics.Listen = "" }, ""},
		{"bad webhook url", func(c *Config) { c.Webhook.URLs = []string{"ftp://x"} }, "--webhook.url"},
		{"bad backoff", func(c *Config) { c.Webhook.InitialBackoff = 0 }, "--webhook.initialbackoff"},
		{"bad expiry", func(c *Config) { c.ExpiryInterval = -time.Second }, "--expiryinterval"},
		{"empty datadir", func(c *Config) { c.DataDir = "" }, "--datadir"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig(t)
			tc.mutate(c)
			err := c.Validate()
			if tc.errHas == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrConfig)
			require.Contains(t, err.Error(), tc.errHas)
		})
	}
}

func TestMainConfigFile(t *testing.T) {
	t.Parallel()
	c := validConfig(t)
	require.NoError(t, os.MkdirAll(c.DataDir, 0o700))
	conf := filepath.Join(c.DataDir, "receiver.conf")

	// A corrupt config file is a clear error naming the file.
	require.NoError(t, os.WriteFile(conf, []byte("[Application Options]\nnetwork=regtest\nbogus=1\n"), 0o600))
	err := Main([]string{"--datadir=" + c.DataDir})
	require.ErrorIs(t, err, ErrConfig)
	require.Contains(t, err.Error(), conf)

	// An unknown value on the command line too.
	err = Main([]string{"--datadir=" + c.DataDir, "--network=bitcoin"})
	require.ErrorIs(t, err, ErrConfig)

	// A bad debug level is refused before anything starts.
	require.NoError(t, os.WriteFile(conf, []byte(
		"[Application Options]\nnetwork=regtest\n"+
			"lnd.tlspath="+c.Lnd.TLSPath+"\n"+
			"lnd.macaroonpath="+c.Lnd.MacaroonPath+"\n"), 0o600))
	err = Main([]string{"--datadir=" + c.DataDir, "--debuglevel=loud"})
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "debuglevel"), err.Error())
}

// TestMetricsSectionInConfigFile: the sender's config file takes a
// [metrics] section, the receiver's refused one ("unknown option"). Both
// now do; the old metrics.listen in [Application Options] still works.
func TestMetricsSectionInConfigFile(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		"[metrics]\nmetrics.listen=127.0.0.1:9998\n",
		"[Application Options]\nmetrics.listen=127.0.0.1:9998\n",
	} {
		path := filepath.Join(t.TempDir(), "receiver.conf")
		require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
		c := DefaultConfig()
		require.NoError(t, common.LoadConfig(c,
			[]string{"--configfile=" + path}, &c.ConfigFile, "x"), body)
		require.Equal(t, "127.0.0.1:9998", c.Metrics.Listen, body)
	}
}
