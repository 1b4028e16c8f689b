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
		{"unknown backend", func(c *Config) { c.DB.Backend = "sqlite" }, "--db.backend"},
		{"postgres without dsn", func(c *Config) { c.DB.Backend = BackendPostgres }, "--db.postgres.dsn"},
		{"postgres", func(c *Config) {
			c.DB.Backend = BackendPostgres
			c.DB.Postgres.DSN = "postgres://satstream@db.internal/satstream"
		}, ""},
		{"postgres pool of zero", func(c *Config) {
			c.DB.Backend = BackendPostgres
			c.DB.Postgres.DSN = "host=/run/postgresql dbname=satstream"
			c.DB.Postgres.MaxConns = 0
		}, "--db.postgres.maxconns"},
		{"postgres min above max", func(c *Config) {
			c.DB.Backend = BackendPostgres
			c.DB.Postgres.DSN = "host=/run/postgresql dbname=satstream"
			c.DB.Postgres.MinConns = 50
		}, "--db.postgres.minconns"},
		{"postgres timeout", func(c *Config) {
			c.DB.Backend = BackendPostgres
			c.DB.Postgres.DSN = "host=/run/postgresql dbname=satstream"
			c.DB.Postgres.ConnectTimeout = 0
		}, "--db.postgres.timeout"},
		{"postgres lock timeout", func(c *Config) {
			c.DB.Backend = BackendPostgres
			c.DB.Postgres.DSN = "host=/run/postgresql dbname=satstream"
			c.DB.Postgres.LockTimeout = -time.Second
		}, "--db.postgres.locktimeout"},
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

// TestBadDSNPrintsItsPassword: a DSN the driver can't parse is named in the
// configuration error, which reaches the terminal and the logs; its
// password must not.
func TestBadDSNPrintsItsPassword(t *testing.T) {
	t.Parallel()
	for _, dsn := range []string{
		"postgres://satstream:hunter2secret@db:notaport/satstream",
		"host=db port=notaport password=hunter2secret dbname=satstream",
		"host=db port=notaport password='hunter2secret' dbname=x",
	} {
		c := validConfig(t)
		c.DB.Backend = BackendPostgres
		c.DB.Postgres.DSN = dsn
		err := c.Validate()
		require.ErrorIs(t, err, ErrConfig, dsn)
		require.Contains(t, err.Error(), "--db.postgres.dsn")
		require.NotContains(t, err.Error(), "hunter2secret")
	}
}

func TestRedactDSN(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"postgres://u:pw@h:5432/db?sslmode=disable",
			"postgres://u:xxxxx@h:5432/db?sslmode=disable"},
		{"postgres://u@h/db", "postgres://u@h/db"},
		{"postgresql://h/db?password=pw&user=u",
			"postgresql://h/db?password=xxxxx&user=u"},
		{"host=h password=pw dbname=db", "host=h password=xxxxx dbname=db"},
		{"host=h password = 'p w\\' x' dbname=db",
			"host=h password = xxxxx dbname=db"},
		{"host=/run/postgresql dbname=db", "host=/run/postgresql dbname=db"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got := RedactDSN(tc.in)
			require.Equal(t, tc.want, got)
			require.NotContains(t, got, "pw")
		})
	}
}

// TestRedactDSNOfABadURLKeepsItsPassword: an URL DSN that url.Parse
// refuses (a bad port) went through the key=value rule, which left
// user:password@ in place.
func TestRedactDSNOfABadURLKeepsItsPassword(t *testing.T) {
	t.Parallel()
	got := RedactDSN("postgres://satstream:pw@db:notaport/satstream")
	require.Equal(t, "postgres://satstream:xxxxx@db:notaport/satstream", got)
}
