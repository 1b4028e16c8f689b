package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/satstream/satstream/common"
	"github.com/urfave/cli"
)

// daemonDefaults are where each daemon listens and keeps its files unless
// told otherwise (the daemons' own defaults).
var daemonDefaults = map[string]struct {
	rpcserver string
	datadir   string
}{
	"receiver": {"127.0.0.1:7321", "~/.satstream/receiver"},
	"sender":   {"127.0.0.1:7322", "~/.satstream/sender"},
}

// networkFlag picks the network directory the daemons' files are read
// from, as loop's CLI does.
var networkFlag = cli.StringFlag{
	Name:  "network",
	Value: "mainnet",
	Usage: "the daemons' --network: " + strings.Join(common.Networks, ", "),
}

// daemonFlags are the connection flags of one daemon, prefixed with its
// name so one command line can address both.
func daemonFlags(name string) []cli.Flag {
	d := daemonDefaults[name]
	return []cli.Flag{
		cli.StringFlag{
			Name:  name + ".rpcserver",
			Value: d.rpcserver,
			Usage: "host:port of satstream-" + name + "'s API",
		},
		cli.StringFlag{
			Name:  name + ".datadir",
			Value: d.datadir,
			Usage: "satstream-" + name + "'s --datadir (its " +
				"tls.cert and tokens are in <datadir>/<network>)",
		},
		cli.StringFlag{
			Name: name + ".tlscertpath",
			Usage: "API TLS certificate (default " +
				"<datadir>/<network>/tls.cert)",
		},
		cli.StringFlag{
			Name: name + ".tokenpath",
			Usage: "API token (default <datadir>/<network>/" +
				"admin.token, else readonly.token)",
		},
	}
}

// apiClient talks to one daemon's REST API over TLS with a bearer token.
type apiClient struct {
	name  string
	base  string
	token string
	http  *http.Client
}

// newClient builds the client for daemon name from the global flags.
func newClient(c *cli.Context, name string) (*apiClient, error) {
	network := c.GlobalString("network")
	if err := common.CheckNetwork(network); err != nil {
		return nil, err
	}
	datadir := common.NetworkDir(common.ExpandHome(
		c.GlobalString(name+".datadir")), network)
	certPath := c.GlobalString(name + ".tlscertpath")
	if certPath == "" {
		certPath = filepath.Join(datadir, "tls.cert")
	}
	tokenPath := c.GlobalString(name + ".tokenpath")
	if tokenPath == "" {
		tokenPath = filepath.Join(datadir, common.AdminTokenFile)
		if _, err := os.Stat(tokenPath); err != nil {
			tokenPath = filepath.Join(datadir,
				common.ReadOnlyTokenFile)
		}
	}
	return dialClient(name, c.GlobalString(name+".rpcserver"), certPath,
		tokenPath)
}

// dialClient builds a client from explicit paths (the demo uses it too).
func dialClient(name, addr, certPath, tokenPath string) (*apiClient, error) {
	pem, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("read satstream-%s's TLS certificate: "+
			"%w\n  is the daemon set up? pass --%s.datadir or "+
			"--%s.tlscertpath", name, err, name, name)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s is not a PEM certificate; pass "+
			"--%s.tlscertpath", certPath, name)
	}
	tok, err := os.ReadFile(tokenPath)
	if err != nil {
		return nil, fmt.Errorf("read satstream-%s's API token: %w\n"+
			"  pass --%s.tokenpath, or run as the user that runs "+
			"the daemon", name, err, name)
	}
	return &apiClient{
		name:  name,
		base:  "https://" + addr,
		token: strings.TrimSpace(string(tok)),
		http: &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{
				RootCAs:    pool,
				MinVersion: tls.VersionTLS12,
			}},
		},
	}, nil
}

// do sends one request and decodes the JSON answer into out (if not nil).
// Errors say which daemon answered what, and what to do about it.
func (a *apiClient) do(ctx context.Context, method, path string, in,
	out any) error {

	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := a.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("nothing listens at %s: is "+
				"satstream-%s running? (or pass --%s.rpcserver)",
				a.base, a.name, a.name)
		}
		var opErr *net.OpError
		if errors.As(err, &opErr) {
			return fmt.Errorf("reach satstream-%s at %s: %w",
				a.name, a.base, err)
		}
		return fmt.Errorf("satstream-%s: %w", a.name, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}

	if resp.StatusCode >= 300 {
		var e struct {
			Error common.APIError `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error.Code == "" {
			return fmt.Errorf("satstream-%s answered %s: %s", a.name,
				resp.Status, strings.TrimSpace(string(data)))
		}
		hint := ""
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			hint = fmt.Sprintf(" (check --%s.tokenpath)", a.name)
		case http.StatusForbidden:
			hint = " (this needs the admin token)"
		}
		return fmt.Errorf("satstream-%s: %s%s", a.name, e.Error.Error(),
			hint)
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], data...)
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("satstream-%s sent unexpected JSON: %w",
			a.name, err)
	}
	return nil
}
