package common

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"
)

// APIConfig is the "api." option group of both daemons: where the REST API
// listens and its TLS pair, generated on first start.
type APIConfig struct {
	Listen     string   `long:"listen" description:"host:port of the REST API over TLS (port 0 picks a free one)"`
	TLSCert    string   `long:"tlscertpath" description:"API TLS certificate (default <datadir>/tls.cert, generated if missing)"`
	TLSKey     string   `long:"tlskeypath" description:"API TLS key (default <datadir>/tls.key)"`
	ExtraHosts []string `long:"tlsextradomain" description:"Extra host name or IP for the generated certificate (repeatable)"`

	// Timeouts and the connection cap of the API server; zero takes
	// the default (common.Default*).
	ReadTimeout  time.Duration `long:"readtimeout" description:"Longest time a client may take to send one request, body included (default 30s)"`
	WriteTimeout time.Duration `long:"writetimeout" description:"Longest time to write one response (default 30s)"`
	IdleTimeout  time.Duration `long:"idletimeout" description:"Close a keep-alive connection idle this long (default 2m)"`
	MaxConns     int           `long:"maxconns" description:"Most connections served at once; more wait (default 256)"`
}

// Resolve fills the TLS paths from the data directory, expands ~ and checks
// the listen address, naming the option in its error.
func (c *APIConfig) Resolve(dataDir string) error {
	if c.TLSCert == "" {
		c.TLSCert = filepath.Join(dataDir, "tls.cert")
	}
	if c.TLSKey == "" {
		c.TLSKey = filepath.Join(dataDir, "tls.key")
	}
	c.TLSCert = ExpandHome(c.TLSCert)
	c.TLSKey = ExpandHome(c.TLSKey)
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("--api.listen=%q: %v", c.Listen, err)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"readtimeout", c.ReadTimeout},
		{"writetimeout", c.WriteTimeout},
		{"idletimeout", c.IdleTimeout},
	} {
		if d.v < 0 {
			return fmt.Errorf("--api.%s=%v: must be positive (or 0 "+
				"for the default)", d.name, d.v)
		}
	}
	if c.MaxConns < 0 {
		return fmt.Errorf("--api.maxconns=%d: must be positive (or 0 "+
			"for the default)", c.MaxConns)
	}
	return nil
}

// Limits are the API server's timeouts and connection cap: the defaults,
// overridden by the options that are set.
func (c *APIConfig) Limits() ServerLimits {
	l := DefaultServerLimits()
	if c.ReadTimeout > 0 {
		l.ReadTimeout = c.ReadTimeout
		l.ReadHeaderTimeout = min(l.ReadHeaderTimeout, c.ReadTimeout)
	}
	if c.WriteTimeout > 0 {
		l.WriteTimeout = c.WriteTimeout
	}
	if c.IdleTimeout > 0 {
		l.IdleTimeout = c.IdleTimeout
	}
	if c.MaxConns > 0 {
		l.MaxConns = c.MaxConns
	}
	return l
}

// ParseLimit reads a list's limit= query value: 100 when absent, else an
// integer from 1 to 1000, the same on every list of both APIs.
func ParseLimit(v string) (int, error) {
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, &APIError{Code: "invalid_field", Field: "limit",
			Message: "must be between 1 and 1000"}
	}
	return n, nil
}
