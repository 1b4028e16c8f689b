//go:build itest

package itest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/satstream/satstream/common"
	"github.com/satstream/satstream/itest/regtest"
	"github.com/satstream/satstream/receiver"
	"github.com/satstream/satstream/sender"
	"github.com/stretchr/testify/require"
)

// TestHealthzFollowsLndStoppingMidRun: the sender's /healthz kept
// answering 200 after its lnd stopped mid-run (the flag behind it was
// cleared only when the engine returned, which it does not when lnd goes
// away). Both daemons beside one lnd: 200, lnd stops, 503, lnd is back,
// 200 again.
func TestHealthzFollowsLndStoppingMidRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	_, nodes := newNetwork(t, ctx, regtest.NodeConfig{Name: "alice",
		ExtraArgs: []string{"--keysend-hold-time=30s"}})
	alice := nodes[0]
	logs := common.NewLogManager(&testWriter{t: t})

	sd, err := sender.New(senderConfig(t, alice), logs)
	require.NoError(t, err)
	require.NoError(t, sd.Start(ctx))
	defer sd.Stop()

	rcfg := receiver.DefaultConfig()
	rcfg.DataDir = t.TempDir()
	rcfg.ConfigFile = ""
	rcfg.Network = "regtest"
	rcfg.Metrics.Listen = ""
	rcfg.Lnd.Host = alice.RPCAddr
	rcfg.Lnd.TLSPath = alice.TLSCertPath
	rcfg.Lnd.MacaroonPath = alice.AdminMacPath
	rcfg.API.Listen = "127.0.0.1:0"
	require.NoError(t, rcfg.Validate())
	rd, err := receiver.New(rcfg, common.NewLogManager(&testWriter{t: t}))
	require.NoError(t, err)
	require.NoError(t, rd.Start(ctx))
	defer rd.Stop()

	client := &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true}}}
	daemons := map[string]string{"sender": sd.APIAddr(),
		"receiver": rd.APIAddr()}
	waitHealthz := func(want int) {
		t.Helper()
		for name, addr := range daemons {
			require.NoError(t, regtest.Poll(ctx, 2*time.Minute,
				func() error {
					resp, err := client.Get("https://" + addr +
						common.HealthzPath)
					if err != nil {
						return err
					}
					resp.Body.Close()
					if resp.StatusCode != want {
						return fmt.Errorf("%s /healthz %d, "+
							"want %d", name,
							resp.StatusCode, want)
					}
					return nil
				}), name)
		}
	}

	waitHealthz(http.StatusOK)
	require.NoError(t, alice.Stop())
	waitHealthz(http.StatusServiceUnavailable)
	require.NoError(t, alice.Start(ctx))
	waitHealthz(http.StatusOK)

	for _, errs := range []<-chan error{sd.Err(), rd.Err()} {
		select {
		case err := <-errs:
			t.Fatalf("a daemon stopped: %v", err)
		default:
		}
	}
}
