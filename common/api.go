package common

import (
	"fmt"
	"net"
	"path/filepath"
)

// APIConfig is the "api." option group of both daemons: where the REST API
// listens and its TLS pair, generated on first start.
type APIConfig struct {
	Listen     string   `long:"listen" description:"host:port of the REST API over TLS (port 0 picks a free one)"`
	TLSCert    string   `long:"tlscertpath" description:"API TLS certificate (default <datadir>/tls.cert, generated if missing)"`
	TLSKey     string   `long:"tlskeypath" description:"API TLS key (default <datadir>/tls.key)"`
	ExtraHosts []string `long:"tlsextradomain" description:"Extra host name or IP for the generated certificate (repeatable)"`
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
	return nil
}
