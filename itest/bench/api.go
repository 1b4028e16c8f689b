package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/satstream/satstream/common"
)

// apiClient talks to a daemon's REST API over TLS with its admin token.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// newAPIClient reads the TLS certificate and admin token from a daemon's
// data directory. conns sizes the connection pool (load generators).
func newAPIClient(addr, dataDir string, conns int) (*apiClient, error) {
	pem, err := os.ReadFile(filepath.Join(dataDir, "tls.cert"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s/tls.cert", dataDir)
	}
	tok, err := os.ReadFile(filepath.Join(dataDir, common.AdminTokenFile))
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
	}
	return &apiClient{base: "https://" + addr,
		token: strings.TrimSpace(string(tok)),
		http:  &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

// do sends a JSON request and decodes a JSON answer into out (if not nil).
func (c *apiClient) do(ctx context.Context, method, path string, in,
	out any) error {

	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status,
			strings.TrimSpace(string(b)))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

func (c *apiClient) close() { c.http.CloseIdleConnections() }

// createPlan creates the benchmarks' plan at the receiver: a payment of
// one second costs amt msat, and a subscription may hold 60 days ahead so
// a sender never runs out of things to pay for. It returns the plan's id.
func (c *apiClient) createPlan(ctx context.Context, label string,
	amt uint64) (string, error) {

	var plan struct {
		ID string `json:"id"`
	}
	err := c.do(ctx, "POST", "/v1/plans", map[string]any{
		"label":                 label,
		"price_msat_per_sec":    amt,
		"min_payment_msat":      1000,
		"grace_period_sec":      60,
		"max_prepay_sec":        60 * 24 * 3600,
		"default_increment_sec": 1,
	}, &plan)
	if err != nil {
		return "", fmt.Errorf("create plan: %w", err)
	}
	return plan.ID, nil
}
